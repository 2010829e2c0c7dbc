"""The posture snapshot, built by one function, and every surface that shows it.

``build_snapshot`` is the only place the numbers come from: the HTTP route, the
``get_openai_compat_status`` agent tool, the ``/openai-compat`` slash command and the
``OpenAI compat:`` sidebar indicator all call it and only format what it returns.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from bmo.agent.tools.base import READ, Tool, ToolContext
from bmo_openai_compat.config import OpenAICompatOptions
from bmo_openai_compat.observe import outcomes
from bmo_openai_compat.state import advertised_model_ids, state_of

DISABLED = "disabled"
DEGRADED = "degraded — persist failures"


def sidebar_label(options: OpenAICompatOptions, degraded: bool) -> str:
    """The ``OpenAI compat:`` value: a pure function of the config and the ledger's degraded flag."""
    if not options.enabled:
        return DISABLED
    if degraded:
        return DEGRADED
    return f"enabled ({options.tool_policy})"


async def build_snapshot(host) -> dict[str, Any]:
    """Configuration, advertised models, ledger size and aggregates, and the degraded flag."""
    state = state_of(host)
    options = state.options
    ledger = state.ledger
    degraded = bool(ledger and ledger.degraded)
    snapshot: dict[str, Any] = {
        "enabled": options.enabled,
        "tool_policy": options.tool_policy,
        "ambiguity_action": options.ambiguity_action,
        "model_override_policy": options.model_override_policy,
        "advertised_models": advertised_model_ids(host),
        "sidebar": sidebar_label(options, degraded),
        "degraded": degraded,
        "persist_failures": ledger.failures if ledger else 0,
        "last_persist_error": ledger.last_error if ledger and ledger.degraded else "",
        "ledger": {"runs": 0, "events": 0},
        "routes": {route: 0 for route in outcomes.ROUTES},
        # chat: a conversation turn; task: a client's background task (one direct model call)
        "kinds": {"chat": 0, "task": 0, "completion": 0},  # completion: POST /v1/completions
        "top_user_agents": [],
        "last_outcomes": [],
    }
    if ledger is None:
        return snapshot
    try:
        summary = await ledger.summary()
    except Exception as exc:  # noqa: BLE001 - posture must answer even when the store does not
        snapshot["ledger_error"] = f"{type(exc).__name__}: {exc}"
        return snapshot
    snapshot["ledger"] = {"runs": summary["runs"], "events": summary["events"]}
    snapshot["routes"].update(summary["routes"])
    snapshot["kinds"].update(summary["kinds"])
    snapshot["top_user_agents"] = summary["top_user_agents"]
    snapshot["last_outcomes"] = summary["last_outcomes"]
    return snapshot


async def sidebar_value(host) -> str:
    return (await build_snapshot(host))["sidebar"]


def render_report(snapshot: dict[str, Any]) -> Group:
    """The read-only ``/openai-compat`` report as a Rich renderable."""
    parts: list[Any] = []
    head = Text("OpenAI compat: ", style="bold")
    head.append(snapshot["sidebar"], style="red" if snapshot["degraded"] else "green" if snapshot["enabled"] else "dim")
    parts.append(head)
    settings = Table.grid(padding=(0, 2))
    settings.add_row("tool_policy", snapshot["tool_policy"])
    settings.add_row("ambiguity_action", snapshot["ambiguity_action"])
    settings.add_row("model_override_policy", snapshot["model_override_policy"])
    settings.add_row("advertised models", ", ".join(snapshot["advertised_models"]) or "(none)")
    ledger = snapshot["ledger"]
    settings.add_row("run ledger", f"{ledger['runs']} runs, {ledger['events']} events")
    settings.add_row("requests by kind", ", ".join(f"{kind} {count}" for kind, count in snapshot["kinds"].items()))
    parts.append(settings)
    routes = Table(title="Requests per route", title_justify="left", show_edge=False)
    routes.add_column("route")
    routes.add_column("requests", justify="right")
    for route, count in snapshot["routes"].items():
        routes.add_row(route, str(count))
    parts.append(routes)
    agents = Table(title="Top client User-Agents", title_justify="left", show_edge=False)
    agents.add_column("User-Agent")
    agents.add_column("requests", justify="right")
    for row in snapshot["top_user_agents"]:
        agents.add_row(row["client_ua"] or "(none)", str(row["count"]))
    parts.append(agents)
    last = Table(title="Last terminal outcomes", title_justify="left", show_edge=False)
    last.add_column("request")
    last.add_column("elapsed", justify="right")
    last.add_column("outcome")
    for row in snapshot["last_outcomes"]:
        last.add_row(_short_id(row["request_id"]), f"{row['elapsed_ms']} ms", row["outcome"] or "")
    parts.append(last)
    if snapshot["degraded"]:
        parts.append(Text(f"⚠ {DEGRADED}: the run ledger refused writes ({snapshot['last_persist_error']}); "
                          "requests are still served and the flag clears at the next successful write.",
                          style="bold red"))
    if snapshot.get("ledger_error"):
        parts.append(Text(f"ledger unreadable: {snapshot['ledger_error']}", style="red"))
    if not snapshot["enabled"]:
        parts.append(Text("Enable it in bmo.toml: [options.openai_compat] enabled = true", style="dim"))
    return Group(*parts)


def _short_id(request_id: str) -> str:
    return request_id if len(request_id) <= 14 else request_id[:13] + "…"


async def slash_openai_compat(host, args: str = ""):
    return render_report(await build_snapshot(host))


class OpenAICompatStatusTool(Tool):
    """The agent tool ``get_openai_compat_status``: the posture snapshot as JSON."""

    name = "get_openai_compat_status"
    description = (
        "Report the live posture of BMO's OpenAI-compatible API: whether it is enabled, its tool, "
        "ambiguity and model-override policies, advertised models, run-ledger size, requests per route, "
        "top client User-Agents, the last terminal outcomes and whether ledger writes are failing."
    )
    parameters = {"type": "object", "properties": {}, "additionalProperties": False}
    tool_class = READ

    async def run(self, args: dict, ctx: ToolContext) -> str:
        return json.dumps(await build_snapshot(ctx.host), indent=1, ensure_ascii=False)
