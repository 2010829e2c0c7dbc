"""A chat over its context budget keeps its compaction summary: later turns reuse it, summarise only what is
newer, and a fork inside the summarised turns makes a new one. Calls are counted at the fake upstream."""

from __future__ import annotations

import re

from bmo.agent.context import SUMMARY_PROMPT
from bmo.testing.fake_upstream import reply

# About 500 tokens a message at ~4 bytes a token, ~900 for the system prompt and tools: a 2,900-token budget
# holds two turns, or the summary and two turns more.
CONTEXT = "[agent.context]\ncontext_window = 3200\nreserve_tokens = 300\n"
PAD = 2000
MARK = re.compile(r"\[[ua]\d+'?\]")


def user(n: int | str) -> str:
    return f"[u{n}] " + "x" * PAD


def model(body: dict):
    """A summary call names the turns it was given; any other call answers the last user turn."""
    messages = body["messages"]
    if messages[0]["content"] == SUMMARY_PROMPT:
        return reply("summary of " + " ".join(MARK.findall(messages[1]["content"])))
    asked = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    return reply(MARK.match(asked).group().replace("[u", "[a") + " " + "y" * PAD)


def summary_calls(up) -> list[str]:
    """What every compaction call so far was given to summarise."""
    return [r.body["messages"][1]["content"] for r in up.chat_requests if r.body["messages"][0]["content"] == SUMMARY_PROMPT]


def marks(text: str) -> list[str]:
    return MARK.findall(text)


def last_model_call(up) -> str:
    """The messages of the newest answering call, joined."""
    body = next(r.body for r in reversed(up.chat_requests) if r.body["messages"][0]["content"] != SUMMARY_PROMPT)
    return "\n".join(str(m.get("content")) for m in body["messages"])


async def chat(native, session_id: str, *turns, **body) -> None:
    for n in turns:
        events = await native.run(session_id, user(n), **body)
        assert events[-1]["outcome"] == "final_answer", events[-1]
        body = {}


async def test_the_next_over_budget_turn_reuses_the_summary_and_makes_no_summary_call(agent, fake_upstream, tmp_path):
    fake_upstream.default = model
    native = await agent(toml=CONTEXT, data_dir=tmp_path / "data")
    session = (await native.create_session())["id"]
    await chat(native, session, 1, 2, 3)
    assert [marks(c) for c in summary_calls(fake_upstream)] == [["[u1]", "[a1]", "[u2]", "[a2]"]]
    await native.stop()  # the summary is kept with the session, not in the process
    native = await agent(toml=CONTEXT, data_dir=tmp_path / "data")
    await chat(native, session, 4)
    assert len(summary_calls(fake_upstream)) == 1  # turn 4 reused it: no second call over the same turns
    sent = last_model_call(fake_upstream)
    assert "summary of [u1] [a1] [u2] [a2]" in sent and "[u3]" in sent and "[a3]" in sent and "[u4]" in sent
    assert "[u1]" not in sent.replace("summary of [u1]", "")


async def test_only_the_newer_overflow_is_summarised_given_the_summary_so_far(agent, fake_upstream):
    fake_upstream.default = model
    native = await agent(toml=CONTEXT)
    session = (await native.create_session())["id"]
    await chat(native, session, 1, 2, 3, 4, 5)
    first, second = summary_calls(fake_upstream)
    assert marks(first) == ["[u1]", "[a1]", "[u2]", "[a2]"]
    # The second call gets the first summary and turns 3-4, never turns 1-2 themselves again.
    earlier, newer = second.split("What followed:", 1)
    assert "summary of [u1] [a1] [u2] [a2]" in earlier and "x" * 100 not in earlier
    assert marks(newer) == ["[u3]", "[a3]", "[u4]", "[a4]"]
    await chat(native, session, 6)
    assert len(summary_calls(fake_upstream)) == 2


async def test_a_fork_inside_the_summarised_turns_makes_a_new_summary(agent, fake_upstream):
    fake_upstream.default = model
    native = await agent(toml=CONTEXT)
    session = (await native.create_session())["id"]
    await chat(native, session, 1, 2, 3)
    assert len(summary_calls(fake_upstream)) == 1
    # Start over from the first message: as many turns, other messages; the stored summary covers none of them.
    await chat(native, session, "1'", "2'", "3'", fork_at=0)
    assert [marks(c) for c in summary_calls(fake_upstream)[1:]] == [["[u1']", "[a1']", "[u2']", "[a2']"]]
    assert "summary of [u1] " not in last_model_call(fake_upstream)


async def test_a_chat_under_budget_makes_no_summary_call_and_keeps_no_summary(agent, fake_upstream):
    fake_upstream.default = model
    native = await agent(toml=CONTEXT)
    session = (await native.create_session())["id"]
    await chat(native, session, 1, 2)
    assert summary_calls(fake_upstream) == []
    assert await native.host.db.fetchall("SELECT * FROM session_summaries") == []
