"""The native API's forks: continue a session from a given message, and list what each fork set aside."""

from __future__ import annotations

from bmo.testing.fake_upstream import reply


async def test_continuing_from_a_message_sets_the_rest_aside_and_lists_it_as_a_branch(agent, fake_upstream):
    bmo = await agent()
    session = await bmo.create_session(id="s-branches")
    await bmo.run("s-branches", "one")
    await bmo.run("s-branches", "two")
    got = await bmo.request("GET", "/sessions/s-branches", status=200)
    assert [m["content"] for m in got["messages"]] == ["one", "echo: one", "two", "echo: two"]
    after_first_answer = got["message_seqs"][1]
    fake_upstream.script(reply("a different two"))
    body = await bmo.request("POST", "/sessions/s-branches/messages",
                             {"content": "two, again", "stream": False, "fork_at": after_first_answer}, status=200)
    assert body["result"]["text"] == "a different two"
    assert [m["content"] for m in fake_upstream.chat_requests[-1].messages if m["role"] != "system"] == [
        "one", "echo: one", "two, again"]
    got = await bmo.request("GET", "/sessions/s-branches", status=200)
    assert [m["content"] for m in got["messages"]] == ["one", "echo: one", "two, again", "a different two"]
    branches = await bmo.request("GET", "/sessions/s-branches/branches", status=200)
    assert branches["object"] == "list" and len(branches["data"]) == 1
    fork = branches["data"][0]
    assert fork["at_seq"] == after_first_answer and fork["reason"] == "native" and fork["set_aside"] == 2
    assert [m["message"]["content"] for m in fork["messages"]] == ["two", "echo: two"]
    assert session["id"] == "s-branches"


async def test_fork_at_an_unknown_message_names_the_field(agent):
    bmo = await agent()
    await bmo.create_session(id="s-bad-fork")
    error = await bmo.request("POST", "/sessions/s-bad-fork/messages", {"content": "x", "fork_at": 99}, status=400)
    assert error["error"]["param"] == "fork_at"
