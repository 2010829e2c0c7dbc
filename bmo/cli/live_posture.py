"""Reading a running server's posture for a ``bmo config show-<name>`` that shows live state."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import click


@dataclass(frozen=True)
class LivePosture:
    """The posture of the server at ``url``, or ``reason`` saying why there is none."""

    url: str
    posture: dict[str, Any] | None = None
    reason: str = ""

    def section(self, name: str) -> dict[str, Any] | None:
        return None if self.posture is None else self.posture.get(name)


def fetch_posture(url: str, token: str | None, timeout_s: float) -> LivePosture:
    """``GET {url}/v1/bmo/posture``; every failure becomes a reason a person can act on, never a traceback."""
    base = url.rstrip("/").removesuffix("/v1")
    request = urllib.request.Request(base + "/v1/bmo/posture", headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:  # noqa: S310 - an operator-given URL
            return LivePosture(base, posture=json.loads(resp.read()))
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            return LivePosture(base, reason=f"the server at {base} refused the token (401): pass the right one "
                                            "with --auth-token or BMO_AUTH_TOKEN")
        return LivePosture(base, reason=f"the server at {base} answered {exc.code} to GET /v1/bmo/posture")
    except (urllib.error.URLError, OSError) as exc:
        why = getattr(exc, "reason", exc)
        return LivePosture(base, reason=f"no BMO server answered at {base} ({why}); start one with `bmo serve`, "
                                        "or pass --url and --auth-token (BMO_URL, BMO_AUTH_TOKEN)")
    except ValueError:
        return LivePosture(base, reason=f"{base}/v1/bmo/posture did not answer JSON; is --url a BMO server?")


def live_options(command):
    """``--url``, ``--auth-token`` and ``--timeout``, the way ``bmo tui`` and ``bmo mcp serve`` take them."""
    command = click.option("--timeout", "live_timeout_s", type=float, default=3.0, show_default=True,
                           help="Seconds to wait for the running server's posture.")(command)
    command = click.option("--auth-token", "live_token", envvar="BMO_AUTH_TOKEN", default=None, show_envvar=True,
                           help="That server's bearer token.")(command)
    return click.option("--url", "live_url", envvar="BMO_URL", default=None, show_envvar=True,
                        help="The running server whose live state to show "
                             "(default: [options.http_server] addr of the config).")(command)
