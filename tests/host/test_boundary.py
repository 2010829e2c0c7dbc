"""The browser boundary: a web page cannot drive BMO through the user's browser (issue 11, point 1)."""

from __future__ import annotations

import aiohttp
import pytest
import pytest_asyncio

from bmo.server.boundary import host_name, json_depth
from bmo.testing.fake_upstream import FakeUpstream, reply, tool_call
from bmo.testing.fixtures import provider_toml
from bmo.testing.harness import start_server

TOKEN = "tok-boundary"
EVIL = "http://evil.example"
CHAT = {"model": "fake/fake-model", "messages": [{"role": "user", "content": "write pwned.txt"}]}


@pytest_asyncio.fixture
async def start(tmp_path):
    """``await start(token, toml)``: BMO with the compat plugin on a fake model that would write a file if asked."""
    servers, ups = [], []

    async def go(token: str | None = TOKEN, toml: str = ""):
        up = await FakeUpstream().start()
        ups.append(up)
        up.script(reply(tool_calls=[tool_call("write_file", {"path": "pwned.txt", "content": "x"})]), reply("done"))
        ws = tmp_path / f"ws{len(servers)}"
        ws.mkdir()
        text = (f'[options.openai_compat]\nenabled = true\ntool_policy = "auto_approve"\n'
                f'ambiguity_action = "code"\n[agent]\nworkspace = "{ws}"\nmax_permission_mode = "ask"\n'
                f'{toml}\n' + provider_toml(up))
        server = await start_server(tmp_path / f"data{len(servers)}", config_toml=text, token=token,
                                    load_plugins="openai_compat")
        server.workspace, server.up = ws, up
        servers.append(server)
        return server

    yield go
    for server in servers:
        await server.stop()
    for up in ups:
        await up.stop()


def auth(server, **extra: str) -> dict[str, str]:
    return {**server.headers(), **extra}


async def envelope(resp: aiohttp.ClientResponse, status: int) -> dict:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    error = (await resp.json())["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def nothing_ran(server) -> None:
    assert not server.up.chat_requests, "the model was called: a run started"
    assert not (server.workspace / "pwned.txt").exists()


@pytest.mark.parametrize("token", [TOKEN, None], ids=["token", "no-auth"])
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
async def test_a_simple_cross_site_body_type_is_415_and_starts_no_run(start, token, content_type):
    import json

    server = await start(token)
    async with aiohttp.ClientSession() as http:
        async with http.post(server.api + "/chat/completions", data=json.dumps(CHAT),
                             headers=auth(server, **{"Content-Type": content_type})) as resp:
            error = await envelope(resp, 415)
    assert error["param"] == "Content-Type" and "application/json" in error["message"]
    nothing_ran(server)


async def test_json_with_a_charset_parameter_is_accepted(start):
    server = await start()
    async with aiohttp.ClientSession() as http:
        async with http.post(server.api + "/sessions", data=b"{}",
                             headers=auth(server, **{"Content-Type": "Application/JSON; charset=utf-8"})) as resp:
            assert resp.status == 201, await resp.text()


async def test_a_body_without_a_content_type_is_415(start):
    server = await start()
    async with aiohttp.ClientSession(skip_auto_headers=["Content-Type"]) as http:
        async with http.post(server.api + "/sessions", data=b"{}", headers=auth(server)) as resp:
            await envelope(resp, 415)


@pytest.mark.parametrize("token", [TOKEN, None], ids=["token", "no-auth"])
async def test_a_foreign_origin_is_403_even_with_json_and_the_token(start, token):
    server = await start(token)
    async with aiohttp.ClientSession() as http:
        async with http.post(server.api + "/chat/completions", json=CHAT, headers=auth(server, Origin=EVIL)) as resp:
            error = await envelope(resp, 403)
            assert "Access-Control-Allow-Origin" not in resp.headers
    assert error["code"] == "origin_not_allowed" and "allowed_origins" in error["message"]
    nothing_ran(server)


@pytest.mark.parametrize("token", [TOKEN, None], ids=["token", "no-auth"])
@pytest.mark.parametrize("method,path", [("GET", "/sessions"), ("GET", "/openai-compat/runs"), ("POST", "/chat/completions")])
async def test_a_dns_rebinding_host_is_403_whatever_the_auth_mode(start, token, method, path):
    server = await start(token)
    async with aiohttp.ClientSession() as http:
        port = server.url.rsplit(":", 1)[1]
        async with http.request(method, server.api + path, json=CHAT if method == "POST" else None,
                                headers=auth(server, Host=f"evil.example:{port}")) as resp:
            error = await envelope(resp, 403)
    assert error["code"] == "host_not_allowed" and "allowed_hosts" in error["message"]
    nothing_ran(server)


async def test_a_pages_no_cors_get_is_refused_by_its_fetch_metadata(start):
    server = await start(token=None)
    async with aiohttp.ClientSession() as http:
        for site in ("cross-site", "same-site"):  # an <img src> on another site, or on localhost:3000
            async with http.get(server.api + "/sessions", headers={"Sec-Fetch-Site": site}) as resp:
                assert (await envelope(resp, 403))["param"] == "Sec-Fetch-Site"
        for site in ("none", "same-origin"):  # typed in the address bar; BMO's own origin
            async with http.get(server.api + "/sessions", headers={"Sec-Fetch-Site": site}) as resp:
                assert resp.status == 200


async def test_loopback_names_with_or_without_a_port_are_accepted(start):
    server = await start()
    port = server.url.rsplit(":", 1)[1]
    async with aiohttp.ClientSession() as http:
        for name in ("localhost", f"localhost:{port}", f"127.0.0.1:{port}", "[::1]", f"[::1]:{port}", "LOCALHOST"):
            async with http.get(server.api + "/sessions", headers=auth(server, Host=name)) as resp:
                assert resp.status == 200, (name, await resp.text())


async def test_allowed_hosts_adds_names_and_healthz_answers_any_name(start):
    server = await start(toml='[options.http_server]\nallowed_hosts = ["bmo.internal"]\n')
    async with aiohttp.ClientSession() as http:
        async with http.get(server.api + "/sessions", headers=auth(server, Host="BMO.internal:443")) as resp:
            assert resp.status == 200
        async with http.get(server.api + "/sessions", headers=auth(server, Host="other.internal")) as resp:
            await envelope(resp, 403)
        async with http.get(server.url + "/healthz", headers={"Host": "10.1.2.3:9000"}) as resp:
            assert resp.status == 200


ORIGIN_TOML = '[options.http_server]\nallowed_origins = ["https://app.example"]\n'


async def test_an_allowed_origin_gets_a_preflight_for_that_origin_only(start):
    server = await start(toml=ORIGIN_TOML)
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type, x-bmo-session-id"}
    async with aiohttp.ClientSession() as http:
        async with http.options(server.api + "/chat/completions", headers=preflight) as resp:  # no token: browsers send none
            assert resp.status == 204, await resp.text()
            assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
            assert "POST" in resp.headers["Access-Control-Allow-Methods"]
            allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
            assert {"authorization", "content-type", "x-bmo-session-id", "x-bmo-resume"} <= allowed
            assert resp.headers["Vary"] == "Origin"
        async with http.options(server.api + "/chat/completions", headers={**preflight, "Origin": EVIL}) as resp:
            await envelope(resp, 403)
            assert "Access-Control-Allow-Origin" not in resp.headers


async def test_an_allowed_origins_answers_name_it_and_expose_the_id_headers(start):
    server = await start(toml=ORIGIN_TOML)
    async with aiohttp.ClientSession() as http:
        async with http.get(server.api + "/openai-compat/runs", headers=auth(server, Origin="https://app.example")) as resp:
            assert resp.status == 200
            assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
            assert "Origin" in resp.headers["Vary"]
            exposed = {h.strip() for h in resp.headers["Access-Control-Expose-Headers"].split(",")}
            assert {"X-Request-Id", "X-BMO-Session-Id"} <= exposed
        # A refused token still reaches the page as a readable 401, not as an opaque CORS failure.
        async with http.get(server.api + "/sessions", headers={"Origin": "https://app.example"}) as resp:
            await envelope(resp, 401)
            assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
        async with http.get(server.api + "/sessions", headers=auth(server)) as resp:  # no Origin: no CORS headers
            assert resp.status == 200 and "Access-Control-Allow-Origin" not in resp.headers


async def test_a_native_request_cannot_raise_permission_mode_above_the_servers_policy(start):
    server = await start(token=None)
    async with aiohttp.ClientSession() as http:
        async with http.post(server.api + "/sessions", json={}) as resp:
            session = await resp.json()
        body = {"content": "write pwned.txt", "permission_mode": "auto_approve", "stream": False}
        async with http.post(server.api + f"/sessions/{session['id']}/messages", json=body) as resp:
            error = await envelope(resp, 403)
    assert error["param"] == "permission_mode" and "max_permission_mode" in error["message"]
    nothing_ran(server)


@pytest.mark.parametrize("header,name", [
    ("127.0.0.1:9000", "127.0.0.1"), ("[::1]:9000", "::1"), ("[::1]", "::1"), ("Example.COM.", "example.com"),
    ("localhost", "localhost"), ("host:notaport", "host:notaport"),
])
def test_host_name_strips_the_port_and_brackets(header, name):
    assert host_name(header) == name


def test_json_depth_ignores_brackets_inside_strings():
    assert json_depth(b'{"a": [1, {"b": []}]}', 0) == 4
    assert json_depth(b'{"a": "[[[[[[[[[[\\"[[[["}', 0) == 1
    assert json_depth(b"[" * 70 + b"]" * 70, 64) == 70
    assert json_depth(b"[" * 10 + b"]" * 10, 64) == 0  # too few brackets to matter: not scanned


async def test_each_refusal_leaves_a_request_refused_record(start):
    import asyncio
    import json

    server = await start()
    async with aiohttp.ClientSession() as http:
        async with http.post(server.api + "/chat/completions", data=b"{}",
                             headers=auth(server, **{"Content-Type": "text/plain"})) as resp:
            assert resp.status == 415
        async with http.get(server.api + "/sessions", headers=auth(server, Origin=EVIL)) as resp:
            assert resp.status == 403
    await asyncio.to_thread(server.host.records.flush)
    records = [json.loads(line) for line in server.host.records.path.read_text().splitlines()]
    refused = [(r["status"], r["code"], r["method"], r["path"]) for r in records if r["msg"] == "bmo.request_refused"]
    assert refused == [(415, "unsupported_media_type", "POST", "/v1/chat/completions"),
                       (403, "origin_not_allowed", "GET", "/v1/sessions")]


def test_the_bind_address_and_a_star_are_allowed_hosts():
    from bmo.defaults.core_config import HttpServerOptions
    from bmo.server.boundary import Boundary

    bound = Boundary.from_options(HttpServerOptions(), "10.0.0.5")
    assert bound.host_allowed("10.0.0.5:9000") and bound.host_allowed("127.0.0.1:9000")
    assert not bound.host_allowed("10.0.0.6:9000") and not bound.host_allowed("evil.example")
    assert bound.host_allowed(None)  # HTTP/1.0 without Host: never a browser
    anything = Boundary.from_options(HttpServerOptions(allowed_hosts=["*"]), "127.0.0.1")
    assert anything.host_allowed("evil.example")
