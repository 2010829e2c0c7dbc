"""The golden contract cases: run them against a live server, normalise, render as reference-doc examples.

Each ``golden/NN_name.json`` holds a request (and the fake model's script for it) and the exact
response it must produce once volatile values (ids, timestamps, durations) are replaced by
placeholders. ``BMO_UPDATE_GOLDEN=1`` rewrites the responses and the reference doc's blocks.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiohttp

from bmo.agent import coordinator_of
from bmo.streaming.sse_parser import SseParser
from bmo.testing.fake_upstream import Reply

GOLDEN_DIR = Path(__file__).parent / "golden"
REFERENCE_DOC = Path(__file__).resolve().parents[3] / "docs" / "reference" / "openai-compat.md"
KEPT_HEADERS = ("content-type", "x-request-id", "x-bmo-session-id", "x-should-retry")
USER_AGENT = "curl/8.5.0"
_VOLATILE_STRINGS = (
    (re.compile(r"req_[0-9a-f]{24}"), "<request_id>"),
    (re.compile(r"chatcmpl-[0-9a-f]{24}"), "chatcmpl-<id>"),
    (re.compile(r"\bcmpl-[0-9a-f]{24}"), "cmpl-<id>"),
    (re.compile(r"call_fake\d+"), "<call_id>"),
    (re.compile(r"sess_[0-9a-f]{24}"), "<session_id>"),
    (re.compile(r"\b(resp|msg|rs|fc)_[0-9a-f]{24}"), r"\1_<id>"),
)
_VOLATILE_KEYS = {"created": "<created>", "elapsed_ms": "<elapsed_ms>", "started_at": "<time>",
                  "finished_at": "<time>", "at": "<time>", "created_at": "<created>"}
_REF = re.compile(r"\{request_id:([^}]+)\}")
# A Responses API case names an earlier case's response: resp_ + that request id's hex.
_RESP_REF = re.compile(r"\{response_id:([^}]+)\}")


def load_cases() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(GOLDEN_DIR.glob("*.json"))]


def normalise(value, key: str = ""):
    if isinstance(value, dict):
        return {k: normalise(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if key in _VOLATILE_KEYS and value is not None:
        return _VOLATILE_KEYS[key]
    if isinstance(value, str):
        for pattern, placeholder in _VOLATILE_STRINGS:
            value = pattern.sub(placeholder, value)
    return value


def parse_sse(text: str) -> list:
    return [e.data if e.data == "[DONE]" else json.loads(e.data) for e in SseParser().feed(text.encode())]


async def run_case(compat, case: dict, ids: dict[str, str]) -> dict:
    """Play one case against ``compat`` (see conftest.Compat); returns the normalised response."""
    setup, request = case["setup"], case["request"]
    for answer in setup.get("answers", []):
        compat.model.answer(Reply(**_reply_args(answer)))
    for route in setup.get("routes", []):
        compat.model.route(Reply(**_reply_args(route)))
    path = _REF.sub(lambda m: ids[m.group(1)], request["path"])
    path = _RESP_REF.sub(lambda m: "resp_" + ids[m.group(1)].removeprefix("req_"), path)
    headers = {"User-Agent": USER_AGENT, **request.get("headers", {})}
    if not setup.get("no_auth"):
        headers["Authorization"] = "Bearer test-token"
    async with aiohttp.ClientSession() as http:
        background = await _hold_session(compat, http, setup["busy_session"]) if setup.get("busy_session") else None
        try:
            body = request.get("body")
            if body is not None:  # a body may name an earlier case's response too
                body = json.loads(_RESP_REF.sub(lambda m: "resp_" + ids[m.group(1)].removeprefix("req_"),
                                                json.dumps(body)))
            async with http.request(request["method"], compat.server.url + path, headers=headers,
                                    json=body) as response:
                text = await response.text()
                out = {"status": response.status,
                       "headers": {h: response.headers[h] for h in KEPT_HEADERS if h in response.headers}}
                out["headers"]["content-type"] = out["headers"].get("content-type", "").split(";")[0]
                if out["headers"]["content-type"] == "text/event-stream":
                    out["events"] = parse_sse(text)
                else:
                    out["body"] = json.loads(text)
                ids[case["name"]] = response.headers.get("X-Request-Id", "")
        finally:
            if background is not None:
                await _release(compat, *background)
    return normalise(out)


def _reply_args(spec: dict) -> dict:
    from bmo.testing.fake_upstream import ScriptedToolCall

    args = dict(spec)
    if "tool_calls" in args:
        args["tool_calls"] = [ScriptedToolCall(**c) for c in args["tool_calls"]]
    return args


async def _hold_session(compat, http, session_id: str):
    """Start a streamed request that never finishes on ``session_id``, so the case meets a busy session."""
    compat.model.answer(Reply(text="working on it", stall=True))
    response = await http.post(
        compat.api + "/chat/completions", headers={"Authorization": "Bearer test-token", "User-Agent": USER_AGENT,
                                                   "X-BMO-Session-Id": session_id},
        json={"model": "fake/fake-model", "messages": [{"role": "user", "content": "Take your time."}], "stream": True})
    async with asyncio.timeout(10):
        while coordinator_of(compat.host).active_run(session_id) is None:
            await asyncio.sleep(0.02)
    return response, response.headers["X-Request-Id"]


async def _release(compat, response, request_id: str) -> None:
    response.close()
    async with asyncio.timeout(15):
        while (row := await compat.row(request_id)) is None or row["status"] != "finished":
            await asyncio.sleep(0.05)


# -- the reference doc's examples -----------------------------------------------------------


def render_example(case: dict) -> str:
    """The curl command and the response, as the reference doc shows them."""
    request, response = case["request"], case["response"]
    path = _RESP_REF.sub("$RESPONSE_ID", _REF.sub("$REQUEST_ID", request["path"]))
    url = f"http://127.0.0.1:9000{path}"
    quote = '"' if "$" in url else "'"  # a shell variable in the URL only expands inside double quotes
    parts = [f"curl -sS{' -N' if (request.get('body') or {}).get('stream') else ''}"
             f"{' -X ' + request['method'] if request['method'] != 'GET' else ''} {quote}{url}{quote}"]
    if not case["setup"].get("no_auth"):
        parts.append('-H "Authorization: Bearer $BMO_AUTH_TOKEN"')
    for name, value in request.get("headers", {}).items():
        parts.append(f'-H "{name}: {value}"')
    if request.get("body") is not None:
        parts.append('-H "Content-Type: application/json"')
        # Close the single quotes around a response id variable, so the shell expands it.
        data = _RESP_REF.sub(lambda m: "'\"$RESPONSE_ID\"'", json.dumps(request["body"]))
        parts.append(f"-d '{data}'")
    curl = " \\\n  ".join(parts)
    head = [f"HTTP {response['status']}"] + [f"{k}: {v}" for k, v in response["headers"].items()]
    if "events" in response:
        # Responses API events carry an ``event:`` line naming their type; chat chunks do not.
        named = path.startswith("/v1/responses")
        body = "\n\n".join((f"event: {e['type']}\n" if named else "")
                           + f"data: {e if e == '[DONE]' else json.dumps(e)}" for e in response["events"])
    else:
        body = json.dumps(response["body"], indent=2, ensure_ascii=False)
    return f"```bash\n{curl}\n```\n\n```http\n" + "\n".join(head) + f"\n\n{body}\n```"


def doc_blocks(text: str) -> dict[str, str]:
    """``<!-- golden:NAME -->`` … ``<!-- /golden -->`` blocks of the reference doc, by name."""
    return {m.group(1): m.group(2).strip() for m in
            re.finditer(r"<!-- golden:(\S+) -->\n(.*?)<!-- /golden -->", text, flags=re.S)}


def rewrite_doc_blocks(text: str, cases: list[dict]) -> str:
    rendered = {c["name"]: render_example(c) for c in cases}
    return re.sub(r"(<!-- golden:(\S+) -->\n)(.*?)(<!-- /golden -->)",
                  lambda m: m.group(1) + rendered.get(m.group(2), m.group(3).strip()) + "\n" + m.group(4),
                  text, flags=re.S)
