"""A read repeated with the same arguments and the same result: the result again, with a note to answer.

Small local models often call ``read_file`` again after getting its result; without the note
they repeat it until loop detection stops the run (``test_loop.py`` keeps that limit).
"""

from __future__ import annotations

from bmo.agent import run_outcomes
from bmo.testing.fake_upstream import reply, tool_call
from bmo.testing.fixtures import provider_toml
from tests.agent.native_client import of_type

NOTE = "Do not call read_file again with these arguments; answer the user now"


async def test_a_read_repeated_once_gets_its_earlier_result_with_a_note_and_the_run_answers(agent, workspace,
                                                                                           fake_upstream):
    (workspace / "notes.txt").write_text("The secret word is PINEAPPLE.")
    bmo = await agent()
    session = await bmo.create_session()
    read = lambda i: reply(tool_calls=[tool_call("read_file", {"path": "notes.txt"}, id=f"call_{i}")])  # noqa: E731
    fake_upstream.script(read(1), read(2), reply("The secret word is PINEAPPLE."))
    events = await bmo.run(session["id"], "What is the secret word in notes.txt?")

    first, second = (fake_upstream.chat_requests[i].messages[-1] for i in (1, 2))
    assert first == {"role": "tool", "tool_call_id": "call_1", "content": "The secret word is PINEAPPLE."}
    assert second["tool_call_id"] == "call_2"
    assert second["content"].startswith("The secret word is PINEAPPLE.\n\n[") and NOTE in second["content"]
    assert events[-1]["outcome"] == run_outcomes.FINAL_ANSWER and "PINEAPPLE" in events[-1]["text"]
    history = await (await bmo.co.get_session(session["id"])).messages()
    assert NOTE in history[4].content  # what the model saw is what the session keeps


async def test_a_repeated_read_whose_result_changed_gets_no_note(agent, workspace, fake_upstream):
    (workspace / "x.txt").write_text("old")
    bmo = await agent('[[agent.permission_rules]]\ntool = "write_file"\ntarget = "*"\n')
    session = await bmo.create_session()
    read_x = lambda: reply(tool_calls=[tool_call("read_file", {"path": "x.txt"})])  # noqa: E731
    fake_upstream.script(read_x(), reply(tool_calls=[tool_call("write_file", {"path": "x.txt", "content": "new"})]),
                         read_x(), reply("x.txt now says new"))
    events = await bmo.run(session["id"], "rewrite x.txt and check it")
    assert fake_upstream.chat_requests[3].messages[-1]["content"] == "new"
    assert events[-1]["outcome"] == run_outcomes.FINAL_ANSWER


async def test_a_read_repeated_after_a_write_with_the_same_result_gets_no_note(agent, workspace, fake_upstream):
    # After a write BMO cannot know the file is as it was, so the read is a fresh look, not a repeat.
    (workspace / "x.txt").write_text("same")
    bmo = await agent('[[agent.permission_rules]]\ntool = "write_file"\ntarget = "*"\n')
    session = await bmo.create_session()
    read_x = lambda: reply(tool_calls=[tool_call("read_file", {"path": "x.txt"})])  # noqa: E731
    fake_upstream.script(read_x(), reply(tool_calls=[tool_call("write_file", {"path": "x.txt", "content": "same"})]),
                         read_x(), reply("unchanged"))
    await bmo.run(session["id"], "rewrite x.txt with the same text and check it")
    assert fake_upstream.chat_requests[3].messages[-1]["content"] == "same"


async def test_a_model_that_keeps_repeating_a_noted_read_is_still_stopped_by_loop_detection(agent, workspace,
                                                                                            fake_upstream):
    (workspace / "x.txt").write_text("x")
    bmo = await agent()  # the default limit: 3 identical calls in a row
    session = await bmo.create_session()
    fake_upstream.script(*[reply(tool_calls=[tool_call("read_file", {"path": "x.txt"})]) for _ in range(5)])
    events = await bmo.run(session["id"], "loop please")
    assert events[-1]["outcome"] == run_outcomes.LOOP_DETECTED
    sent = [r.messages[-1]["content"] for r in fake_upstream.chat_requests[1:]]
    assert sent[0] == "x" and all(NOTE in s for s in sent[1:]) and len(sent) == 3
    assert len(of_type(events, "tool.finished")) == 3  # the fourth identical call never ran


async def test_a_provider_tools_list_limits_what_the_model_is_offered_and_may_call(agent, workspace, fake_upstream):
    (workspace / "x.txt").write_text("x")
    bmo = await agent(providers=False, toml=provider_toml(fake_upstream, extra='tools = ["read_file", "list_*"]\n'))
    session = await bmo.create_session()
    fake_upstream.script(reply(tool_calls=[tool_call("write_file", {"path": "y.txt", "content": "y"})]), reply("ok"))
    await bmo.run(session["id"], "write y.txt")
    offered = [t["function"]["name"] for t in fake_upstream.chat_requests[0].body["tools"]]
    assert offered == ["read_file", "list_dir"]
    refused = fake_upstream.chat_requests[1].messages[-1]["content"]
    assert "no tool named 'write_file'" in refused and "list_dir, read_file" in refused
    assert not (workspace / "y.txt").exists()


async def test_an_empty_provider_tools_list_offers_no_tools(agent, fake_upstream):
    bmo = await agent(providers=False, toml=provider_toml(fake_upstream, extra="tools = []\n"))
    session = await bmo.create_session()
    await bmo.run(session["id"], "hello")
    assert "tools" not in fake_upstream.chat_requests[0].body
