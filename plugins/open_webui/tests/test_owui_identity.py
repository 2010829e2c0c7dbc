"""Open WebUI's forwarded user identity counts only when a trusted proxy forwards it."""

from __future__ import annotations

import aiohttp
import openai
from owui_server import MODEL, TOKEN, ledger_row, serve

from bmo.agent import coordinator_of
from bmo_open_webui.config import OpenWebUIOptions
from bmo_open_webui.identity import forwarded_identity, requester_label

USER_HEADERS = {
    "X-OpenWebUI-User-Name": "Ada%20L%C3%B6velace",
    "X-OpenWebUI-User-Id": "5e2c0d8a-user",
    "X-OpenWebUI-User-Email": "ada@example.org",
    "X-OpenWebUI-User-Role": "admin",
    "X-OpenWebUI-Chat-Id": "who-asked",
}


async def _ask(server) -> dict:
    sdk = openai.AsyncOpenAI(base_url=server.api, api_key=TOKEN, max_retries=0)
    raw = await sdk.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], extra_headers=USER_HEADERS)
    async with aiohttp.ClientSession() as http:
        return await ledger_row(http, server, raw.headers["x-request-id"])


async def test_identity_headers_from_an_untrusted_peer_are_ignored(bmo):
    row = await _ask(bmo)  # 127.0.0.1 is not a trusted proxy by default
    assert row["requester"] == ""
    session = await coordinator_of(bmo.host).get_session("openwebui-who-asked@fake:fake-model")
    assert session.created_by == ""


async def test_identity_headers_from_a_trusted_proxy_name_the_requester(tmp_path, upstream, workspace):
    server = await serve(tmp_path, upstream, workspace, env={"BMO_REQUESTER_TRUSTED_PROXIES": "127.0.0.1/32"})
    try:
        row = await _ask(server)
        assert row["requester"] == "ada@example.org"
        session = await coordinator_of(server.host).get_session("openwebui-who-asked@fake:fake-model")
        assert session.created_by == "ada@example.org"
    finally:
        await server.stop()


async def test_the_hosts_own_proxy_identity_wins_over_open_webuis(tmp_path, upstream, workspace):
    server = await serve(tmp_path, upstream, workspace, env={"BMO_REQUESTER_TRUSTED_PROXIES": "127.0.0.1"})
    try:
        sdk = openai.AsyncOpenAI(base_url=server.api, api_key=TOKEN, max_retries=0)
        raw = await sdk.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}],
            extra_headers={**USER_HEADERS, "X-Auth-Request-User": "proxy-user"})
        async with aiohttp.ClientSession() as http:
            row = await ledger_row(http, server, raw.headers["x-request-id"])
        assert row["requester"] == "proxy-user"
    finally:
        await server.stop()


def test_forwarded_identity_decodes_the_name_and_prefers_the_email():
    options = OpenWebUIOptions()
    identity = forwarded_identity(USER_HEADERS, options)
    assert identity == {"email": "ada@example.org", "name": "Ada Lövelace", "id": "5e2c0d8a-user", "role": "admin"}
    assert requester_label(identity) == "ada@example.org"
    assert requester_label(forwarded_identity({"X-OpenWebUI-User-Name": "Ada"}, options)) == "Ada"
    assert forwarded_identity({}, options) is None
