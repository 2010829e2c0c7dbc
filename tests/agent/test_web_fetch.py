"""web_fetch inside the network boundary, against servers the test starts on 127.0.0.1."""

from __future__ import annotations

import ipaddress

import pytest
import pytest_asyncio
from aiohttp import web

from bmo.agent.config import AgentOptions, PermissionRule, WebFetchOptions
from bmo.agent.tools.base import ToolFailed
from bmo.agent.tools.web import WebFetch
from bmo.agent.tools.web.addresses import refusal
from tests.agent.test_tools import ctx_for

BIG = 2 * 1024 * 1024
LIMIT = 1024 * 1024


@pytest_asyncio.fixture
async def site():
    """A small site on 127.0.0.1: ``site.url(path)``, ``site.hits`` lists the paths it served."""
    hits: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        path = request.path
        if path == "/big":
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await resp.prepare(request)
            line = b"0123456789abcdef" * 4 + b"\n"  # 65 bytes
            for _ in range(BIG // len(line) + 1):
                await resp.write(line)
            await resp.write_eof()
            return resp
        if path == "/latin1":
            body = "<html><body><h1>Caf\u00e9</h1><p>cr\u00e8me br\u00fbl\u00e9e for everyone at the caf\u00e9 today.</p></body></html>"
            return web.Response(body=body.encode("iso-8859-1"), headers={"Content-Type": "text/html; charset=ISO-8859-1"})
        if path == "/meta":
            body = ("<html><head><meta charset=\"windows-1251\"><title>t</title></head><body><article>"
                    "<p>\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! This page declares its charset in a meta tag only.</p>"
                    "</article></body></html>")
            return web.Response(body=body.encode("windows-1251"), headers={"Content-Type": "text/html"})
        if path == "/page":
            body = ("<html><head><style>p{}</style><script>var secret = 1;</script></head><body><nav>Home | About</nav>"
                    "<main><h1>Title</h1><p>The first paragraph of the page, long enough to be content.</p>"
                    "<pre><code>line one\nline two</code></pre></main></body></html>")
            return web.Response(text=body, content_type="text/html")
        if path.startswith("/to/"):
            raise web.HTTPFound(request.query["where"])
        return web.Response(text=f"served {path}")

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = tcp._server.sockets[0].getsockname()[1]

    class Site:
        def url(self, path: str, host: str = "127.0.0.1") -> str:
            return f"http://{host}:{port}{path}"

    s = Site()
    s.hits, s.port = hits, port
    yield s
    await runner.cleanup()


def ctx(workspace, *, allow: list[str] | None = None, rules: list[PermissionRule] | None = None, **agent):
    sections = {"agent": AgentOptions(web_fetch_max_bytes=LIMIT, permission_rules=rules or [], **agent)}
    if allow is not None:
        sections["agent.web_fetch"] = WebFetchOptions(allow_hosts=allow)
    return ctx_for(workspace, **sections)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "0x7f000001", "2130706433", "[::ffff:127.0.0.1]", "127.1"])
async def test_loopback_in_any_spelling_is_refused_before_connecting(workspace, site, host):
    with pytest.raises(ToolFailed, match="loopback address.*allow_hosts or allow_cidrs"):
        await WebFetch().run({"url": site.url("/x", host=host)}, ctx(workspace))
    assert site.hits == []


@pytest.mark.parametrize("address, why", [
    ("10.1.2.3", "private"), ("192.168.0.1", "private"), ("172.16.0.1", "private"), ("100.64.0.1", "not globally"),
    ("169.254.169.254", "metadata"), ("fe80::1", "link-local"), ("fc00::1", "private"), ("224.0.0.1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("64:ff9b::7f00:1", "loopback"), ("2002:7f00:1::", "loopback"),
])
def test_non_public_addresses_are_refused(address, why):
    assert why in refusal(ipaddress.ip_address(address))


def test_public_addresses_pass():
    assert refusal(ipaddress.ip_address("93.184.215.14")) is None and refusal(ipaddress.ip_address("2606:4700::1")) is None


async def test_an_allow_listed_cidr_opens_an_address(workspace, site):
    opened = ctx_for(workspace, **{"agent.web_fetch": WebFetchOptions(allow_cidrs=["127.0.0.0/8"])})
    assert (await WebFetch().run({"url": site.url("/ok", host="localhost")}, opened)).endswith("served /ok")


async def test_a_redirect_from_an_allowed_host_to_a_refused_one_is_not_followed(workspace, site):
    for target in [site.url("/inner", host="localhost"), site.url("/inner", host="0x7f000001"),
                   "http://169.254.169.254/latest/meta-data/"]:
        with pytest.raises(ToolFailed, match="redirect to .* refused"):
            await WebFetch().run({"url": site.url(f"/to/?where={target}")}, ctx(workspace, allow=["127.0.0.1"]))
    assert "/inner" not in site.hits


async def test_a_redirect_is_checked_against_the_permission_rules(workspace, site):
    deny = [PermissionRule(tool="web_fetch", target="*/secret*", decision="deny")]
    with pytest.raises(ToolFailed, match="refused by a permission rule"):
        await WebFetch().run({"url": site.url("/to/?where=/secret")}, ctx(workspace, allow=["127.0.0.1"], rules=deny))
    followed = await WebFetch().run({"url": site.url("/to/?where=/public")}, ctx(workspace, allow=["127.0.0.1"]))
    assert followed.endswith("served /public")
    assert "/secret" not in site.hits


async def test_a_redirect_to_another_origin_is_handed_back_to_the_model(workspace, site):
    other = site.url("/elsewhere", host="localhost")
    out = await WebFetch().run({"url": site.url(f"/to/?where={other}")}, ctx(workspace, allow=["127.0.0.1", "localhost"]))
    assert "not followed" in out and other in out and "/elsewhere" not in site.hits


async def test_a_large_page_is_read_in_full_up_to_the_limit_and_marked_truncated(workspace, site):
    out = await WebFetch().run({"url": site.url("/big")}, ctx(workspace, allow=["127.0.0.1"], max_tool_output_bytes=BIG))
    head, body = out.split("\n", 1)
    assert head == "HTTP 200 text/plain"
    assert body.startswith("[truncated: showing the first 1048576 bytes")
    text = body.split("\n", 1)[1].rsplit("\n[truncated", 1)[0]
    assert len(text.encode()) == LIMIT and text.startswith("0123456789abcdef")
    assert out.endswith(f"the page is larger than web_fetch_max_bytes ({LIMIT})]")


async def test_a_declared_non_utf8_charset_is_decoded(workspace, site):
    out = await WebFetch().run({"url": site.url("/latin1")}, ctx(workspace, allow=["127.0.0.1"]))
    assert "cr\u00e8me br\u00fbl\u00e9e for everyone at the caf\u00e9" in out and "\ufffd" not in out
    meta = await WebFetch().run({"url": site.url("/meta")}, ctx(workspace, allow=["127.0.0.1"]))
    assert "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!" in meta


async def test_html_becomes_markdown_without_scripts_or_styles(workspace, site):
    out = await WebFetch().run({"url": site.url("/page")}, ctx(workspace, allow=["127.0.0.1"]))
    assert "# Title" in out and "The first paragraph" in out and "line one\nline two" in out
    assert "var secret" not in out and "p{}" not in out


def test_the_web_fetch_section_is_shown_and_a_bad_cidr_is_a_config_error_naming_it(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from bmo.cli.main import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "bmo.toml").write_text('[agent.web_fetch]\nallow_hosts = ["intranet.example"]\n')
    shown = CliRunner().invoke(cli, ["config", "show-web-fetch"])
    assert shown.exit_code == 0, shown.output
    assert "[agent.web_fetch]" in shown.output and 'allow_hosts = ["intranet.example"]' in shown.output
    (tmp_path / "bmo.toml").write_text('[agent.web_fetch]\nallow_cidrs = ["10.0.0.0/33"]\n')
    bad = CliRunner().invoke(cli, ["config", "show-web-fetch"])
    assert bad.exit_code != 0 and "allow_cidrs" in bad.output and "10.0.0.0/33" in bad.output


async def test_the_connection_goes_only_to_addresses_that_were_checked():
    from bmo.agent.tools.web.addresses import AddressPolicy, PinnedResolver

    resolver = PinnedResolver()
    with pytest.raises(OSError, match="was not checked"):
        await resolver.resolve("example.org", 80)
    checked = await AddressPolicy(["localhost"], []).resolve("localhost", 8080)
    resolver.pin("localhost", 8080, checked)
    assert {r["host"] for r in await resolver.resolve("localhost", 8080)} <= {"127.0.0.1", "::1"}
    with pytest.raises(OSError, match="was not checked"):
        await resolver.resolve("localhost", 8081)
