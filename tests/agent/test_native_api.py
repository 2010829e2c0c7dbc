"""The native session API: sessions, SSE runs, follow, cancel, and errors in the OpenAI envelope."""

from __future__ import annotations

import asyncio

import aiohttp

from bmo.testing.fake_upstream import reply
from tests.agent.native_client import of_type, read_sse


async def test_sessions_are_created_listed_fetched_and_deleted(agent, fake_upstream):
    bmo = await agent()
    first = await bmo.create_session()
    second = await bmo.create_session(id="my-session", model="fake/fake-model")
    assert first["model"] == "fake/fake-model" and second["id"] == "my-session"
    listed = await bmo.request("GET", "/sessions?limit=1", status=200)
    assert listed["object"] == "list" and listed["has_more"] is True and len(listed["data"]) == 1
    rest = await bmo.request("GET", f"/sessions?limit=10&after={listed['last_id']}", status=200)
    assert {s["id"] for s in listed["data"] + rest["data"]} == {first["id"], "my-session"}
    await bmo.run("my-session", "hello")
    got = await bmo.request("GET", "/sessions/my-session", status=200)
    assert [m["content"] for m in got["messages"]] == ["hello", "echo: hello"] and got["active_run"] is None
    deleted = await bmo.request("DELETE", "/sessions/my-session", status=200)
    assert deleted["deleted"] is True
    await bmo.request("GET", "/sessions/my-session", status=404)
    audit = await bmo.co.store.audit_rows("my-session")
    assert [a["action"] for a in audit][0] == "session.created" and audit[-1]["action"] == "session.deleted"


async def test_a_non_streamed_message_returns_the_run_result(agent, fake_upstream):
    bmo = await agent()
    session = await bmo.create_session()
    fake_upstream.script(reply("plain answer"))
    body = await bmo.request("POST", f"/sessions/{session['id']}/messages", {"content": "q", "stream": False}, status=200)
    assert body["result"]["outcome"] == "final_answer" and body["result"]["text"] == "plain answer"
    assert body["run"]["session_id"] == session["id"]


async def test_sse_events_carry_their_type_and_the_run(agent, fake_upstream):
    bmo = await agent()
    session = await bmo.create_session()
    events = await bmo.run(session["id"], "hi")
    assert [e["type"] for e in events] == ["step.started", "text.delta", "text.delta", "text.delta", "run.finished"]
    assert len({e["run_id"] for e in events}) == 1 and all(e["session_id"] == session["id"] for e in events)


async def test_bad_requests_name_the_field_in_the_openai_envelope(agent):
    bmo = await agent()
    session = await bmo.create_session()
    sid = session["id"]
    cases = [
        ({"content": 5}, "content"),
        ({"content": "x", "colour": "red"}, "colour"),
        ({"content": "x", "permission_mode": "yolo"}, "permission_mode"),
        ({"content": "x", "allowed_classes": ["magic"]}, "allowed_classes"),
        ({}, "content"),
    ]
    for body, param in cases:
        error = await bmo.request("POST", f"/sessions/{sid}/messages", body, status=400)
        assert error["error"]["param"] == param, (body, error)
        assert error["error"]["type"] == "invalid_request_error" and isinstance(error["error"]["code"], str)
    async with bmo.http.post(bmo.url(f"/sessions/{sid}/messages"), data=b"{nope",
                             headers={**bmo.server.headers(), "Content-Type": "application/json"}) as resp:
        assert resp.status == 400 and "not valid JSON" in (await resp.json())["error"]["message"]
    unknown = await bmo.request("POST", "/sessions", {"model": "fake/nope"}, status=404)
    assert unknown["error"]["code"] == "model_not_found" and "fake/fake-model" in unknown["error"]["message"]
    missing = await bmo.request("POST", "/sessions/nope/messages", {"content": "x"}, status=404)
    assert missing["error"]["code"] == "session_not_found"
    await bmo.request("POST", "/sessions", {"id": "bad id!"}, status=400)


async def test_the_native_api_needs_the_token(agent):
    bmo = await agent()
    async with aiohttp.ClientSession() as http:
        async with http.get(bmo.url("/sessions")) as resp:
            assert resp.status == 401 and "error" in await resp.json()


async def test_following_a_session_streams_each_new_run(agent, fake_upstream):
    bmo = await agent()
    session = await bmo.create_session()
    sid = session["id"]
    async with bmo.http.get(bmo.url(f"/sessions/{sid}/events"), headers=bmo.server.headers()) as resp:
        assert resp.status == 200
        first = await resp.content.readline()  # the ": following" comment: the follower is in place
        assert first.startswith(b": following")
        fake_upstream.script(reply("one"), reply("two"))
        await bmo.run(sid, "a")
        await bmo.run(sid, "b")
        finished = []
        async with asyncio.timeout(15):
            async for event in read_sse(resp):
                if event["type"] == "run.finished":
                    finished.append(event["text"])
                    if len(finished) == 2:
                        break
    assert finished == ["one", "two"]


async def test_cancel_without_an_active_run_is_a_409(agent):
    bmo = await agent()
    session = await bmo.create_session()
    body = await bmo.request("POST", f"/sessions/{session['id']}/cancel", {}, status=409)
    assert body["error"]["code"] == "no_active_run"


async def test_pending_permissions_are_listed_for_the_session(agent, fake_upstream, workspace):
    from bmo.testing.fake_upstream import tool_call

    bmo = await agent()
    session = await bmo.create_session()
    sid = session["id"]
    fake_upstream.script(reply(tool_calls=[tool_call("write_file", {"path": "p.txt", "content": "x"})]), reply("ok"))
    events = []
    async with asyncio.timeout(20):
        async for event in bmo.events(sid, "write"):
            events.append(event)
            if event["type"] == "permission.requested":
                pending = await bmo.request("GET", f"/sessions/{sid}/permissions", status=200)
                assert [p["id"] for p in pending["data"]] == [event["permission_id"]]
                assert pending["data"][0]["tool"] == "write_file"
                await bmo.decide(sid, event["permission_id"], "allow_once")
    assert (workspace / "p.txt").read_text() == "x"
    assert of_type(events, "permission.decided")[0]["decision"] == "allow_once"


def test_a_real_bmo_serve_without_providers_starts_and_explains_how_to_add_one(tmp_path):
    import json as _json
    import urllib.error
    import urllib.request

    from bmo.testing.harness import free_port, spawn_serve

    port = free_port()
    proc = spawn_serve(["--addr", f"127.0.0.1:{port}", "--auth-token", "tok"], data_dir=tmp_path / "d",
                       env={"BMO_LOAD_PLUGINS": ""})
    try:
        assert proc.url, proc.stderr()
        req = urllib.request.Request(proc.url + "/v1/sessions", data=b"{}", method="POST",
                                     headers={"Authorization": "Bearer tok", "Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=10)
        except urllib.error.HTTPError as exc:
            status, body = exc.code, _json.loads(exc.read())
        else:
            raise AssertionError("expected an error")
        assert status == 503 and "[providers." in body["error"]["message"]
    finally:
        assert proc.terminate() == 0
