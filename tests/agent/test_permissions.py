"""Write, exec and network tools need a decision; every decision is audited with who made it."""

from __future__ import annotations

import asyncio

from bmo.agent import run_outcomes
from bmo.testing.fake_upstream import reply, tool_call
from tests.agent.native_client import of_type


def write(path: str, content: str, id: str = "") -> object:
    return reply(tool_calls=[tool_call("write_file", {"path": path, "content": content}, id=id)])


async def answer_challenges(bmo, session_id: str, decisions: list[str], sink: list[dict], **body) -> list[dict]:
    """Run a message, answering each permission.requested with the next decision."""
    pending = list(decisions)
    async with asyncio.timeout(30):
        async for event in bmo.events(session_id, **body):
            sink.append(event)
            if event["type"] == "permission.requested":
                await bmo.decide(session_id, event["permission_id"], pending.pop(0))
    return sink


async def test_write_denied_by_a_config_rule_leaves_the_file_and_tells_the_model(agent, workspace, fake_upstream):
    (workspace / "keep.txt").write_text("original")
    bmo = await agent('[[agent.permission_rules]]\ntool = "write_file"\ntarget = "*"\ndecision = "deny"\n')
    session = await bmo.create_session()
    fake_upstream.script(write("keep.txt", "overwritten"), reply("I could not write it."))
    events = await bmo.run(session["id"], content="overwrite keep.txt")
    assert (workspace / "keep.txt").read_text() == "original"
    told = fake_upstream.chat_requests[1].messages[-1]["content"]
    assert told.startswith("Permission denied") and "denied (rule)" in told
    assert not of_type(events, "permission.requested")
    assert of_type(events, "permission.decided")[0]["decision"] == "deny"
    assert events[-1]["outcome"] == run_outcomes.FINAL_ANSWER


async def test_write_denied_by_the_person_is_not_run(agent, workspace, fake_upstream):
    bmo = await agent()
    session = await bmo.create_session()
    fake_upstream.script(write("new.txt", "data"), reply("OK, not written."))
    events = await answer_challenges(bmo, session["id"], ["deny"], [], content="write new.txt")
    assert not (workspace / "new.txt").exists()
    requested = of_type(events, "permission.requested")[0]
    assert requested["tool"] == "write_file" and requested["tool_class"] == "write"
    assert of_type(events, "permission.decided")[0]["decided_by"].startswith("user:")
    assert "Permission denied" in fake_upstream.chat_requests[1].messages[-1]["content"]


async def test_an_always_decision_lets_later_writes_through_without_a_challenge(agent, workspace, fake_upstream):
    bmo = await agent()
    session = await bmo.create_session()
    fake_upstream.script(write("a.txt", "one"), reply("wrote a"), write("b.txt", "two"), reply("wrote b"))
    first = await answer_challenges(bmo, session["id"], ["always"], [], content="write a")
    assert (workspace / "a.txt").read_text() == "one"
    assert len(of_type(first, "permission.requested")) == 1
    second = await bmo.run(session["id"], "write b")
    assert (workspace / "b.txt").read_text() == "two"
    assert not of_type(second, "permission.requested")
    assert of_type(second, "permission.decided")[0]["decided_by"] == "always"
    decisions = await bmo.co.store.decision_rows(session["id"])
    assert [(d["decision"], d["decided_by"].split(":")[0]) for d in decisions] == [("always", "user"), ("allow_once", "always")]


async def test_an_unanswered_challenge_is_denied_after_the_timeout(agent, workspace, fake_upstream):
    bmo = await agent()
    session = await bmo.create_session()
    fake_upstream.script(write("late.txt", "x"), reply("Nobody answered, so I did not write."))
    events = await bmo.run(session["id"], "write late.txt", permission_timeout_s=0.2)
    assert not (workspace / "late.txt").exists()
    assert of_type(events, "permission.requested")[0]["timeout_s"] == 0.2
    decided = of_type(events, "permission.decided")[0]
    assert (decided["decision"], decided["decided_by"]) == ("deny", "timeout")
    assert "nobody answered" in fake_upstream.chat_requests[1].messages[-1]["content"]
    assert events[-1]["outcome"] == run_outcomes.FINAL_ANSWER


AUTO_APPROVE_ALLOWED = 'max_permission_mode = "auto_approve"\n'


async def test_auto_approve_policy_runs_exec_tools_and_is_audited_as_policy(agent, workspace, fake_upstream):
    bmo = await agent(AUTO_APPROVE_ALLOWED)
    session = await bmo.create_session()
    fake_upstream.script(reply(tool_calls=[tool_call("run_shell", {"command": "echo hi > out.txt; echo done"})]), reply("ran"))
    events = await bmo.run(session["id"], "run it", permission_mode="auto_approve")
    assert (workspace / "out.txt").read_text().strip() == "hi"
    assert fake_upstream.chat_requests[1].messages[-1]["content"] == "exit code 0\ndone\n"
    assert of_type(events, "permission.decided")[0]["decided_by"] == "policy"
    audit = await bmo.co.store.audit_rows(session["id"])
    actions = [a["action"] for a in audit]
    assert "permission.decided" in actions and "tool.executed" in actions
    executed = next(a for a in audit if a["action"] == "tool.executed")
    assert executed["detail"]["tool"] == "run_shell" and executed["detail"]["arguments_digest"].startswith("sha256:")


async def test_a_path_glob_rule_allows_only_matching_paths(agent, workspace, fake_upstream):
    bmo = await agent('[[agent.permission_rules]]\ntool = "write_file"\ntarget = "notes/*"\n')
    session = await bmo.create_session()
    fake_upstream.script(write("notes/today.md", "ok"), reply("done"))
    events = await bmo.run(session["id"], "note it")
    assert (workspace / "notes" / "today.md").read_text() == "ok"
    assert of_type(events, "permission.decided")[0]["decided_by"] == "rule"
    fake_upstream.script(write("other.md", "no"), reply("denied"))
    events = await bmo.run(session["id"], "elsewhere", permission_timeout_s=0.1)
    assert of_type(events, "permission.requested")  # not covered by the rule: challenged
    assert not (workspace / "other.md").exists()


async def test_a_read_only_run_refuses_write_tools_without_asking(agent, workspace, fake_upstream):
    bmo = await agent(AUTO_APPROVE_ALLOWED)
    session = await bmo.create_session()
    fake_upstream.script(write("x.txt", "x"), reply("read-only, sorry"))
    events = await bmo.run(session["id"], "write", allowed_classes=["read"], permission_mode="auto_approve")
    assert not (workspace / "x.txt").exists()
    offered = {t["function"]["name"] for t in fake_upstream.chat_requests[0].body["tools"]}
    assert "write_file" not in offered and "read_file" in offered
    assert "only allows read tools" in fake_upstream.chat_requests[1].messages[-1]["content"]
    assert not of_type(events, "permission.requested")


async def test_decisions_are_audited_with_the_requester(agent, workspace, fake_upstream):
    bmo = await agent(env={"BMO_REQUESTER_TRUSTED_PROXIES": "127.0.0.1"})
    bmo.http.headers.update({"X-Auth-Request-User": "alice"})
    session = await bmo.create_session()
    assert session["created_by"] == "alice"
    fake_upstream.script(write("a.txt", "1"), reply("ok"))
    await answer_challenges(bmo, session["id"], ["allow_once"], [], content="write")
    decision = (await bmo.co.store.decision_rows(session["id"]))[0]
    assert (decision["decision"], decision["decided_by"], decision["requester"]) == ("allow_once", "user:alice", "alice")
    audit = await bmo.co.store.audit_rows(session["id"])
    assert {(a["action"], a["actor"]) for a in audit} >= {("session.created", "alice"), ("permission.decided", "alice"),
                                                          ("tool.executed", "alice")}


async def test_only_the_sessions_owner_or_the_operator_may_answer_its_challenges(agent, workspace, fake_upstream):
    bmo = await agent(env={"BMO_REQUESTER_TRUSTED_PROXIES": "127.0.0.1"})
    bmo.http.headers.update({"X-Auth-Request-User": "alice"})
    session = await bmo.create_session()
    fake_upstream.script(write("a.txt", "1"), reply("ok"))
    events = []
    async with asyncio.timeout(30):
        async for event in bmo.events(session["id"], content="write"):
            events.append(event)
            if event["type"] != "permission.requested":
                continue
            url = bmo.url(f"/sessions/{session['id']}/permissions/{event['permission_id']}")
            as_bob = {**bmo.server.headers(), "X-Auth-Request-User": "bob"}
            async with bmo.http.post(url, json={"decision": "allow_once"}, headers=as_bob) as resp:
                refused = (resp.status, (await resp.json())["error"]["code"])
            await bmo.decide(session["id"], event["permission_id"], "allow_once")  # alice herself
    # Another requester's session answers like a missing one (bmo.agent.ownership), on every session route.
    assert refused == (404, "session_not_found")
    assert (workspace / "a.txt").read_text() == "1"
    assert of_type(events, "permission.decided")[0]["decided_by"] == "user:alice"


async def test_answering_an_unknown_permission_is_a_404(agent):
    bmo = await agent()
    session = await bmo.create_session()
    body = await bmo.request("POST", f"/sessions/{session['id']}/permissions/perm_nope", {"decision": "deny"}, status=404)
    assert body["error"]["code"] == "permission_not_found"
    bad = await bmo.request("POST", f"/sessions/{session['id']}/permissions/perm_nope", {"decision": "maybe"}, status=400)
    assert bad["error"]["param"] == "decision"
