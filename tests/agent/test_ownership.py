"""A session and its runs belong to whoever made them, once a trusted proxy forwards identities (issue 11, point 2)."""

from __future__ import annotations

import asyncio

import pytest

from bmo.agent.ownership import may_reach, owner_filter
from bmo.testing.fake_upstream import reply, tool_call

PROXY = {"BMO_REQUESTER_TRUSTED_PROXIES": "127.0.0.1"}


def as_user(bmo, user: str | None) -> dict[str, str]:
    headers = bmo.server.headers()
    return {**headers, "X-Auth-Request-User": user} if user else headers


async def call(bmo, method: str, path: str, user: str | None, body: dict | None = None) -> tuple[int, dict | str]:
    async with bmo.http.request(method, bmo.url(path), json=body, headers=as_user(bmo, user)) as resp:
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, await resp.text()


@pytest.fixture
async def alices(agent, fake_upstream):
    """A server behind a trusted proxy, and a session alice created, with one finished run."""
    bmo = await agent(env=PROXY)
    bmo.http.headers.update({"X-Auth-Request-User": "alice"})
    session = await bmo.create_session()
    fake_upstream.script(reply("hello alice"))
    await bmo.run(session["id"], "hi")
    bmo.http.headers.pop("X-Auth-Request-User")
    return bmo, session["id"]


ROUTES = [
    ("GET", "/sessions/{id}", None),
    ("DELETE", "/sessions/{id}", None),
    ("POST", "/sessions/{id}/messages", {"content": "let me in", "stream": False}),
    ("POST", "/sessions/{id}/cancel", {}),
    ("GET", "/sessions/{id}/events", None),
    ("GET", "/sessions/{id}/permissions", None),
    ("POST", "/sessions/{id}/permissions/perm_x", {"decision": "allow_once"}),
]


@pytest.mark.parametrize("method,path,body", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_another_requester_gets_404_on_every_session_route(alices, fake_upstream, method, path, body):
    bmo, sid = alices
    calls_before = len(fake_upstream.chat_requests)
    status, answer = await call(bmo, method, path.format(id=sid), "bob", body)
    assert status == 404, answer
    assert answer["error"]["code"] == "session_not_found" and "alice" not in answer["error"]["message"]
    status_missing, missing = await call(bmo, method, path.format(id="sess_nope"), "bob", body)
    assert (status_missing, missing["error"]["message"].replace("sess_nope", sid)) == (404, answer["error"]["message"])
    assert len(fake_upstream.chat_requests) == calls_before  # nothing ran for bob
    session = await bmo.co.get_session(sid)
    assert session is not None and len(await session.messages()) == 2  # nothing deleted or appended


async def test_the_owner_and_the_operator_still_reach_the_session(alices, fake_upstream):
    bmo, sid = alices
    for user in ("alice", None):
        status, answer = await call(bmo, "GET", f"/sessions/{sid}", user)
        assert status == 200 and [m["content"] for m in answer["messages"]] == ["hi", "hello alice"]
        status, _ = await call(bmo, "GET", f"/sessions/{sid}/permissions", user)
        assert status == 200
        status, answer = await call(bmo, "POST", f"/sessions/{sid}/cancel", user, {})
        assert (status, answer["error"]["code"]) == (409, "no_active_run")  # reached it: nothing to cancel
    fake_upstream.script(reply("again"))
    status, answer = await call(bmo, "POST", f"/sessions/{sid}/messages", "alice", {"content": "more", "stream": False})
    assert status == 200 and answer["result"]["text"] == "again"
    status, _ = await call(bmo, "DELETE", f"/sessions/{sid}", "alice")
    assert status == 200 and await bmo.co.get_session(sid) is None


async def test_the_session_list_shows_a_requester_only_their_own(alices):
    bmo, alice_sid = alices
    bmo.http.headers.update({"X-Auth-Request-User": "bob"})
    bob_sid = (await bmo.create_session())["id"]
    bmo.http.headers.pop("X-Auth-Request-User")
    operator_sid = (await bmo.create_session())["id"]

    async def listed(user: str | None, query: str = "") -> list[str]:
        status, answer = await call(bmo, "GET", "/sessions" + query, user)
        assert status == 200
        return [s["id"] for s in answer["data"]]

    assert await listed("alice") == [alice_sid]
    assert await listed("bob") == [bob_sid]
    assert await listed(None) == [operator_sid, bob_sid, alice_sid]
    assert await listed("bob", f"?after={alice_sid}") == []  # another's id as a cursor reveals nothing
    assert await listed("carol") == []


async def test_another_requester_cannot_cancel_a_running_run(agent, fake_upstream):
    bmo = await agent(env=PROXY)
    bmo.http.headers.update({"X-Auth-Request-User": "alice"})
    session = await bmo.create_session()
    fake_upstream.script(reply("slow " * 10, chunks=10, chunk_delay_s=0.2))
    run = asyncio.ensure_future(bmo.run(session["id"], "go"))
    async with asyncio.timeout(10):
        while bmo.co.active_run(session["id"]) is None:
            await asyncio.sleep(0.02)
    status, _ = await call(bmo, "POST", f"/sessions/{session['id']}/cancel", "bob", {})
    assert status == 404
    events = await run
    assert events[-1]["outcome"] == "final_answer"


async def test_a_requester_cannot_answer_another_sessions_challenge(agent, workspace, fake_upstream):
    bmo = await agent(env=PROXY)
    bmo.http.headers.update({"X-Auth-Request-User": "alice"})
    session = await bmo.create_session()
    fake_upstream.script(reply(tool_calls=[tool_call("write_file", {"path": "a.txt", "content": "1"})]), reply("ok"))
    refused = None
    async with asyncio.timeout(30):
        async for event in bmo.events(session["id"], content="write"):
            if event["type"] == "permission.requested":
                path = f"/sessions/{session['id']}/permissions/{event['permission_id']}"
                refused, _ = await call(bmo, "POST", path, "bob", {"decision": "allow_once"})
                await bmo.decide(session["id"], event["permission_id"], "deny")
    assert refused == 404 and not (workspace / "a.txt").exists()


def test_the_rule_the_operator_reaches_all_a_requester_only_their_own():
    assert may_reach("alice", "alice") and may_reach("alice", "") and may_reach("", "")
    assert not may_reach("alice", "bob") and not may_reach("", "bob")
    assert owner_filter("") is None and owner_filter("bob") == "bob"
