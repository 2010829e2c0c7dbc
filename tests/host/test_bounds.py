"""Everything a client sends is bounded: JSON depth, body time, idle connections, malformed HTTP (issue 11, point 3)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
import pytest_asyncio

from bmo.testing.fake_upstream import FakeUpstream
from bmo.testing.fixtures import provider_toml
from bmo.testing.harness import start_server

TOKEN = "tok-bounds"
# A guard against a hang, far above every limit configured here; never a measured assertion.
HANG_GUARD_S = 30


@pytest_asyncio.fixture
async def server(tmp_path):
    async with FakeUpstream() as up:
        text = ('[options.openai_compat]\nenabled = true\n[options.http_server]\nbody_read_timeout_s = 0.5\n'
                f'keepalive_timeout_s = 0.5\n[agent]\nworkspace = "{tmp_path}"\n' + provider_toml(up))
        running = await start_server(tmp_path / "data", config_toml=text, token=TOKEN, load_plugins="openai_compat")
        running.up = up
        yield running
        await running.stop()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


async def post_raw(server, path: str, body: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.post(server.api + path, data=body.encode(),
                             headers={**server.headers(), "Content-Type": "application/json"}) as resp:
            return resp.status, await resp.json()


@pytest.mark.parametrize("depth", [1_000, 100_000])
async def test_deep_json_in_chat_content_is_a_400_naming_the_limit(server, depth):
    body = '{"model": "fake/fake-model", "messages": [{"role": "user", "content": ' + nested(depth) + "}]}"
    status, body = await post_raw(server, "/chat/completions", body)
    assert status == 400, body
    assert "64" in body["error"]["message"] and "max_json_depth" in body["error"]["message"]
    assert not server.up.chat_requests


async def test_a_deeply_nested_metadata_object_is_a_400(server):
    deep = '{"a": ' * 50_000 + "1" + "}" * 50_000
    status, body = await post_raw(
        server, "/chat/completions",
        '{"model": "fake/fake-model", "messages": [{"role": "user", "content": "hi"}], "metadata": ' + deep + "}")
    assert status == 400 and body["error"]["code"] == "json_too_deep", body


async def test_a_deep_array_to_the_slash_route_is_a_400(server):
    status, body = await post_raw(server, "/bmo/slash", '{"command": ' + nested(5_000) + "}")
    assert status == 400 and body["error"]["code"] == "json_too_deep", body


async def test_nesting_at_the_limit_is_judged_by_the_route_not_refused(server):
    status, body = await post_raw(server, "/bmo/slash", '{"command": ' + nested(63) + "}")
    assert status == 400 and body["error"]["param"] == "command", body  # a wrong type, not a depth refusal


async def exchange(server, raw: bytes, *, read_all: bool = True) -> bytes:
    """Send raw bytes to the server and read until it closes the connection."""
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(raw)
        await writer.drain()
        async with asyncio.timeout(HANG_GUARD_S):
            return await reader.read() if read_all else await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def auth_line() -> bytes:
    return f"Authorization: Bearer {TOKEN}\r\n".encode()


async def test_a_body_that_stops_arriving_is_cut_with_408_and_the_connection_closed(server):
    raw = (b"POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth_line()
           + b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"model\": ")
    status, headers, body = split_response(await exchange(server, raw))  # read() returns: the server closed it
    assert status == 408 and headers["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert error["code"] == "request_timeout" and "body_read_timeout_s" in error["message"]


async def test_half_open_connections_are_reaped_while_normal_requests_keep_working(server):
    host, port = server.url.removeprefix("http://").split(":")
    stalled = []
    for _ in range(20):  # slowloris: headers that never end
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        stalled.append((reader, writer))
    idle_reader, idle_writer = await asyncio.open_connection(host, int(port))  # silent from the start
    async with aiohttp.ClientSession() as http:
        async with http.get(server.api + "/sessions", headers=server.headers()) as resp:
            assert resp.status == 200
    async with asyncio.timeout(HANG_GUARD_S):
        for reader, _ in [*stalled, (idle_reader, idle_writer)]:
            assert await reader.read() == b""  # closed by the server, with nothing sent
    for _, writer in [*stalled, (idle_reader, idle_writer)]:
        writer.close()


async def test_an_idle_keep_alive_connection_is_closed_after_the_timeout(server):
    raw = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"  # keep-alive by default in HTTP/1.1
    answer = await exchange(server, raw)  # read() returns only when the server closes the idle connection
    assert answer.startswith(b"HTTP/1.1 200")


MALFORMED = {
    "nul-in-header": b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Evil: a\x00<script>ECHO</script>\r\n\r\n",
    "long-header": b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: " + b"ECHO" * 5000 + b"\r\n\r\n",
    "long-path": b"GET /v1/" + b"ECHO" * 5000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "bad-chunk-size": (b"POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\nECHOzz\r\n{}\r\n0\r\n\r\n"),
    "cl-and-te": (b"POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\nECHO"),
}


# What the answer says is wrong with each (never the bytes themselves).
PROBLEMS = {"nul-in-header": "character HTTP forbids", "long-header": "longer than", "long-path": "longer than",
            "bad-chunk-size": "chunked body framing", "cl-and-te": "Content-Length and Transfer-Encoding are both set"}


@pytest.mark.parametrize("name", MALFORMED)
async def test_malformed_http_is_answered_in_the_error_envelope_without_echoing_it(server, name):
    status, headers, body = split_response(await exchange(server, MALFORMED[name]))
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    assert PROBLEMS[name] in error["message"]
    assert "ECHO" not in body.decode("latin-1") and "aiohttp" not in body.decode("latin-1")


async def test_bmo_serve_itself_answers_malformed_http_in_the_envelope_and_reaps_idle_connections(tmp_path):
    from types import SimpleNamespace

    from bmo.testing.harness import free_port, spawn_serve

    port = free_port()
    proc = spawn_serve(["--addr", f"127.0.0.1:{port}", "--auth-token", TOKEN], data_dir=tmp_path / "d",
                       env={"BMO_LOAD_PLUGINS": "", "BMO_OPTIONS__HTTP_SERVER__KEEPALIVE_TIMEOUT_S": "0.5"})
    try:
        assert proc.url, proc.stderr()
        served = SimpleNamespace(url=proc.url)
        status, headers, body = split_response(await exchange(served, MALFORMED["nul-in-header"]))
        assert (status, headers["content-type"].split(";")[0]) == (400, "application/json")
        assert "ECHO" not in body.decode("latin-1")
        assert await exchange(served, b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ") == b""
    finally:
        proc.terminate()
