"""The HTTP boundary of an in-process server on a real socket: auth, envelopes, body limit, requester identity."""

from __future__ import annotations

import json

import aiohttp
import pytest

from bmo.hookspecs import hookimpl
from bmo.testing.harness import start_server


@pytest.fixture
async def server(tmp_path):
    srv = await start_server(tmp_path / "data", token="s3cret", load_plugins="hello",
                             config_toml="[options.http_server]\nmax_body_bytes = 1024\n")
    yield srv
    await srv.stop()


@pytest.fixture
async def client():
    async with aiohttp.ClientSession() as session:
        yield session


def records(srv, msg: str) -> list[dict]:
    srv.host.records.flush()
    lines = (srv.host.log_dir / "bmo.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["msg"] == msg]


def assert_envelope(body: dict, code: str) -> dict:
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code and isinstance(error["message"], str) and error["message"]
    return error


async def test_no_token_is_401_in_the_openai_envelope(server, client):
    async with client.get(server.api + "/bmo/plugins") as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        error = assert_envelope(await resp.json(), "invalid_api_key")
        assert "Authorization: Bearer" in error["message"]


async def test_wrong_token_is_401(server, client):
    for header in ("Bearer nope", "Basic s3cret", "s3cret", "Bearer s3cret-and-more"):
        async with client.get(server.api + "/bmo/plugins", headers={"Authorization": header}) as resp:
            assert resp.status == 401, header


async def test_the_right_token_is_200(server, client):
    async with client.get(server.api + "/bmo/plugins", headers=server.headers()) as resp:
        assert resp.status == 200
        names = {row["name"] for row in (await resp.json())["data"]}
        assert {"bmo.defaults.host_routes", "hello"} <= names
    # The scheme is case-insensitive, as HTTP says.
    async with client.get(server.api + "/bmo/plugins", headers={"Authorization": "bearer s3cret"}) as resp:
        assert resp.status == 200


async def test_healthz_needs_no_token(server, client):
    async with client.get(server.url + "/healthz") as resp:
        assert (resp.status, await resp.json()) == (200, {"status": "ok"})


async def test_a_body_over_the_limit_is_413_in_the_envelope(server, client):
    body = json.dumps({"command": "/hello " + "x" * 4000})
    async with client.post(server.api + "/bmo/slash", data=body, headers=server.headers(**{"Content-Type": "application/json"})) as resp:
        assert resp.status == 413
        error = assert_envelope(await resp.json(), "request_too_large")
        assert "max_body_bytes" in error["message"]
    # Under the limit the same route works.
    async with client.post(server.api + "/bmo/slash", json={"command": "/hello Ada"}, headers=server.headers()) as resp:
        assert (resp.status, (await resp.json())["text"]) == (200, "Hello, Ada!")


async def test_an_unknown_v1_route_is_404_in_the_envelope(server, client):
    async with client.get(server.api + "/no/such/route", headers=server.headers()) as resp:
        assert resp.status == 404
        assert_envelope(await resp.json(), "not_found")
    # Without the token the answer is 401: an anonymous caller learns nothing about routes.
    async with client.get(server.api + "/no/such/route") as resp:
        assert resp.status == 401


async def test_a_wrong_method_is_405_in_the_envelope(server, client):
    async with client.delete(server.api + "/bmo/plugins", headers=server.headers()) as resp:
        assert resp.status == 405
        assert_envelope(await resp.json(), "method_not_allowed")


async def test_malformed_json_is_400_naming_the_field(server, client):
    async with client.post(server.api + "/bmo/slash", data="{not json", headers=server.headers()) as resp:
        assert resp.status == 400
        assert assert_envelope(await resp.json(), "invalid_request")["param"] == "command"


class Crashes:
    @hookimpl
    def bmo_routes(self, register):
        async def boom(request):
            raise KeyError("secret internals")

        register("GET", "/v1/test/boom", boom)


async def test_a_handler_crash_is_a_500_envelope_and_a_record(tmp_path, client):
    srv = await start_server(tmp_path / "data", token="t", load_plugins="", plugins=[Crashes()])
    try:
        async with client.get(srv.api + "/test/boom", headers=srv.headers()) as resp:
            assert resp.status == 500
            text = await resp.text()
            assert "Traceback" not in text and "secret internals" not in text
            assert_envelope(json.loads(text), "internal_error")
        [crash] = records(srv, "bmo.http_error")
        assert crash["path"] == "/v1/test/boom" and "KeyError" in crash["error"]
    finally:
        await srv.stop()


class Identity:
    @hookimpl
    def bmo_routes(self, register):
        async def whoami(request):
            from aiohttp import web

            return web.json_response({"requester": request["requester"]})

        register("GET", "/v1/test/whoami", whoami)


FORWARDED = {"X-Auth-Request-User": "alice", "X-Auth-Request-Email": "alice@example.org",
             "X-Auth-Request-Groups": "ops,dev"}


async def visits(srv) -> list[dict]:
    return await srv.host.db.fetchall("SELECT name, requester FROM hello_visits ORDER BY id")


async def test_requester_headers_from_an_untrusted_peer_are_not_recorded(tmp_path, client):
    srv = await start_server(tmp_path / "data", token="t", load_plugins="hello", plugins=[Identity()],
                             env={"BMO_REQUESTER_TRUSTED_PROXIES": "10.0.0.0/8"})
    try:
        async with client.get(srv.api + "/test/whoami", headers=srv.headers(**FORWARDED)) as resp:
            assert (await resp.json()) == {"requester": None}
        async with client.get(srv.api + "/hello?name=x", headers=srv.headers(**FORWARDED)) as resp:
            assert (await resp.json())["requester"] == ""
        assert await visits(srv) == [{"name": "x", "requester": ""}]
        assert {r["requester"] for r in records(srv, "bmo.http_request")} == {""}
    finally:
        await srv.stop()


async def test_requester_headers_from_a_trusted_peer_are_recorded(tmp_path, client):
    srv = await start_server(tmp_path / "data", token="t", load_plugins="hello", plugins=[Identity()],
                             env={"BMO_REQUESTER_TRUSTED_PROXIES": "192.0.2.1, 127.0.0.0/8"})
    try:
        async with client.get(srv.api + "/test/whoami", headers=srv.headers(**FORWARDED)) as resp:
            assert (await resp.json()) == {"requester": {"user": "alice", "email": "alice@example.org", "groups": "ops,dev"}}
        async with client.get(srv.api + "/hello?name=x", headers=srv.headers(**FORWARDED)) as resp:
            assert (await resp.json())["requester"] == "alice"
        assert await visits(srv) == [{"name": "x", "requester": "alice"}]
        logged = records(srv, "bmo.http_request")
        assert [(r["http_route"], r["requester"], r["status"]) for r in logged] == [
            ("/v1/test/whoami", "alice", 200), ("/v1/hello", "alice", 200)]
        # Still no identity without the token: the proxy headers never replace auth.
        async with client.get(srv.api + "/test/whoami", headers=FORWARDED) as resp:
            assert resp.status == 401
    finally:
        await srv.stop()


async def test_trusted_proxies_can_come_from_config(tmp_path, client):
    srv = await start_server(tmp_path / "data", token="t", load_plugins="", plugins=[Identity()],
                             config_toml='[options.http_server]\nrequester_trusted_proxies = ["127.0.0.1"]\n')
    try:
        async with client.get(srv.api + "/test/whoami", headers=srv.headers(**FORWARDED)) as resp:
            assert (await resp.json())["requester"]["user"] == "alice"
    finally:
        await srv.stop()


async def test_a_bad_trusted_proxy_entry_is_refused_with_an_example():
    from bmo.net import TrustedProxies

    with pytest.raises(ValueError, match="10.0.0.0/8"):
        TrustedProxies.parse(["not-an-ip"])


def test_trusted_proxies_match_ips_cidrs_and_ipv4_mapped_peers():
    from bmo.net import TrustedProxies

    proxies = TrustedProxies.parse(["10.0.0.0/8", "192.0.2.7", "fd00::/8"])
    assert proxies.trusts("10.1.2.3") and proxies.trusts("192.0.2.7") and proxies.trusts("fd00::1")
    assert proxies.trusts("::ffff:10.1.2.3")  # an IPv4 client seen through a dual-stack socket
    assert not proxies.trusts("192.0.2.8") and not proxies.trusts("127.0.0.1") and not proxies.trusts(None)
    assert not TrustedProxies.parse([]).trusts("127.0.0.1")  # nobody is trusted by default


class Surfaces:
    """A posture section built asynchronously, a slash command with an alias."""

    @hookimpl
    def bmo_posture(self, register):
        async def build(host):
            return {"ready": True, "plugins": len(host.pm.list_name_plugin())}

        register("test_surface", build)

    @hookimpl
    def bmo_slash_commands(self, register):
        register("echo", lambda host, args: args.upper(), help="Echo loudly", aliases=("/shout",))


async def test_posture_slash_and_sidebar_routes(tmp_path, client):
    srv = await start_server(tmp_path / "data", token="t", load_plugins="hello", plugins=[Surfaces()])
    try:
        async with client.get(srv.api + "/bmo/posture", headers=srv.headers()) as resp:
            section = (await resp.json())["test_surface"]
            assert section["ready"] is True and section["plugins"] >= 4
        async with client.get(srv.api + "/bmo/slash", headers=srv.headers()) as resp:
            commands = {c["name"]: c for c in (await resp.json())["data"]}
            assert commands["echo"]["aliases"] == ["shout"] and commands["hello"]["plugin"] == "hello"
        async with client.post(srv.api + "/bmo/slash", json={"command": "/shout hi"}, headers=srv.headers()) as resp:
            assert (await resp.json())["text"] == "HI"
        async with client.post(srv.api + "/bmo/slash", json={"command": "/nope"}, headers=srv.headers()) as resp:
            text = (await resp.json())["text"]
            assert text.startswith("Unknown command /nope. Known: ") and "/echo" in text and "/hello" in text
        async with client.post(srv.api + "/bmo/slash", json={"command": 3}, headers=srv.headers()) as resp:
            assert resp.status == 400 and (await resp.json())["error"]["param"] == "command"
    finally:
        await srv.stop()
