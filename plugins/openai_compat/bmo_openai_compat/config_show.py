"""``bmo config show-openai-compat``: the resolved section, what /v1/models would list, the bind boundary."""

from __future__ import annotations

import json
import os
from typing import Any

import msgspec

from bmo.net import is_loopback_host, split_addr
from bmo.server.serve import NON_LOOPBACK_WARNING
from bmo_openai_compat.config import SECTION, options_of

CHECK_AT_SERVE = "(check at serve-time)"
LIVE_POSTURE = ("/openai-compat (TUI slash)", "GET /v1/openai-compat/posture", "get_openai_compat_status (agent tool)")

HELP = (
    "Show the resolved [options.openai_compat] configuration, the model ids GET /v1/models advertises, "
    "and the bind boundary (auth token, loopback). Live counts are in the posture surfaces."
)

EXAMPLE = """\
[options.openai_compat]
enabled = true
tool_policy = "auto_approve"
ambiguity_action = "ask"
model_override_policy = "reject"
advertised_models = []
keepalive_interval_s = 15.0
permission_timeout_s = 120.0
client_tools = "all"
advertised model ids (what GET /v1/models returns):
  local/qwen2.5-coder
bind boundary:
  addr: 127.0.0.1:9000 (loopback)
  auth token: (check at serve-time)
live posture: /openai-compat (TUI slash), GET /v1/openai-compat/posture,
  get_openai_compat_status (agent tool)"""


def _provider_models(config) -> tuple[list[str], list[str]]:
    """Statically listed ``NAME/model`` ids, and the providers whose models are only known at serve-time."""
    providers = config.sections.get("providers") or {}
    if not isinstance(providers, dict):
        providers = msgspec.to_builtins(providers) if providers else {}
    ids, discovered = [], []
    for name, provider in sorted(providers.items()):
        models = provider.get("models") if isinstance(provider, dict) else getattr(provider, "models", None)
        if models:
            ids.extend(f"{name}/{m}" for m in models)
        else:
            discovered.append(name)
    return ids, discovered


def client_sections(config) -> dict[str, Any]:
    """Config sections of client plugins built on this surface (their struct sets ``openai_compat_client``).

    They are part of this report, so a client-named alias of this command shows them with the same output.
    """
    return {path: s for path, s in sorted(config.sections.items()) if getattr(s, "openai_compat_client", "")}


def describe(config, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything the command prints, as data (``--json`` prints exactly this)."""
    env = dict(os.environ if env is None else env)
    options = options_of(config)
    static_ids, discovered = _provider_models(config)
    advertised = list(options.advertised_models) or static_ids
    addr = config.section("options.http_server").addr
    try:
        loopback: bool | None = is_loopback_host(split_addr(addr)[0])
    except ValueError:
        loopback = None
    token = "set (BMO_AUTH_TOKEN)" if env.get("BMO_AUTH_TOKEN", "").strip() else CHECK_AT_SERVE
    warning = NON_LOOPBACK_WARNING.format(addr=addr) if loopback is False else None
    return {
        "section": SECTION,
        **msgspec.to_builtins(options),
        "advertised_model_ids": advertised,
        "discovered_at_serve_time": [] if options.advertised_models else discovered,
        "bind": {"addr": addr, "loopback": loopback, "auth_token": token, "warning": warning},
        "live_posture": list(LIVE_POSTURE),
        "client_sections": {path: msgspec.to_builtins(s) for path, s in client_sections(config).items()},
    }


def render(config, as_json: bool, env: dict[str, str] | None = None) -> str:
    """The ``show-openai-compat`` output (text, or JSON with ``--json``)."""
    info = describe(config, env)
    if as_json:
        return json.dumps(info, indent=2)
    options = options_of(config)
    lines = [f"[{SECTION}]"]
    for key, value in msgspec.to_builtins(options).items():
        lines.append(f"{key} = {json.dumps(value)}")
    for path, values in info["client_sections"].items():
        lines += ["", f"[{path}]"] + [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    lines += ["", "advertised model ids (what GET /v1/models returns):"]
    lines += [f"  {m}" for m in info["advertised_model_ids"]] or ["  (none listed in config)"]
    for name in info["discovered_at_serve_time"]:
        lines.append(f"  {name}/*: discovered from the provider at serve-time {CHECK_AT_SERVE}")
    bind = info["bind"]
    where = {True: "loopback", False: "NOT loopback", None: "unparseable"}[bind["loopback"]]
    lines += ["bind boundary:", f"  addr: {bind['addr']} ({where})", f"  auth token: {bind['auth_token']}"]
    if bind["warning"]:
        lines.append(f"  {bind['warning']}")
    lines.append("live posture: " + ", ".join(LIVE_POSTURE[:2]) + ",\n  " + LIVE_POSTURE[2])
    return "\n".join(lines)
