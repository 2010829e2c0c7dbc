"""Finished runs: what the coordinator keeps of them, for how long, and what a late subscriber replays."""

from __future__ import annotations

import asyncio

from bmo.agent import run_outcomes
from bmo.agent.coordinator import RunPolicy
from bmo.agent.events import ReasoningDelta, RunFinished, StepStarted, TextDelta, ToolFinished, ToolStarted
from bmo.agent.messages import ChatMessage
from bmo.agent.run import Run, compact
from bmo.testing.fake_upstream import reply


async def collect(run: Run) -> list:
    async with asyncio.timeout(20):
        return [e async for e in run.events()]


async def start(bmo, text: str) -> Run:
    session = await bmo.co.create_session(model=bmo.co.default_model())
    return await bmo.co.start_run(session, [ChatMessage(role="user", content=text)], policy=RunPolicy())


def test_compact_merges_each_stretch_of_deltas_and_keeps_the_order():
    fin = RunFinished(outcome=run_outcomes.FINAL_ANSWER, finish_reason="stop", text="Let me look. It is 42.")
    events = [StepStarted(step=1, model="m"), TextDelta(text="Let me "), TextDelta(text="look. "),
              ToolStarted(call_id="c", name="read_file", arguments="{}"), ReasoningDelta(text="running "),
              ReasoningDelta(text="read_file…\n"), ToolFinished(call_id="c", name="read_file", ok=True, summary="42"),
              StepStarted(step=2, model="m"), TextDelta(text="It is "), TextDelta(text="42."), fin]
    assert compact(events, fin) == [
        StepStarted(step=1, model="m"), TextDelta(text="Let me look. "),
        ToolStarted(call_id="c", name="read_file", arguments="{}"), ReasoningDelta(text="running read_file…\n"),
        ToolFinished(call_id="c", name="read_file", ok=True, summary="42"),
        StepStarted(step=2, model="m"), TextDelta(text="It is 42."), fin,
    ]


def test_a_one_stretch_answer_shares_the_string_of_run_finished():
    fin = RunFinished(outcome=run_outcomes.FINAL_ANSWER, finish_reason="stop", text="abc")
    kept = compact([TextDelta(text="a"), TextDelta(text="b"), TextDelta(text="c"), fin], fin)
    assert kept == [TextDelta(text="abc"), fin] and kept[0].text is fin.text


async def test_a_finished_run_keeps_one_delta_and_a_late_subscriber_gets_the_whole_answer(agent, fake_upstream):
    bmo = await agent()
    fake_upstream.script(reply("one two three four five six seven eight", chunks=8))
    run = await start(bmo, "count")
    live = asyncio.create_task(collect(run))  # subscribed before the end: sees every chunk
    await asyncio.wait_for(run.wait(), 20)
    streamed = await live
    assert len([e for e in streamed if isinstance(e, TextDelta)]) == 8

    late = await collect(bmo.co.get_run(run.id))
    assert [type(e) for e in late] == [StepStarted, TextDelta, RunFinished]
    assert late[1].text == late[-1].text == "one two three four five six seven eight"
    assert run.history == late


async def test_a_finished_run_is_forgotten_after_the_ttl(agent):
    bmo = await agent()
    run = await start(bmo, "hi")
    await asyncio.wait_for(run.wait(), 20)
    assert bmo.co.get_run(run.id) is run
    bmo.co.finished_run_ttl_s = 0
    assert bmo.co.get_run(run.id) is None


async def test_only_the_newest_finished_runs_are_kept_past_the_cap(agent):
    bmo = await agent()
    bmo.co.max_finished_runs = 2
    runs = []
    for text in ("a", "b", "c"):
        run = await start(bmo, text)
        await asyncio.wait_for(run.wait(), 20)
        runs.append(run)
    assert bmo.co.get_run(runs[0].id) is None
    assert [bmo.co.get_run(r.id) for r in runs[1:]] == runs[1:]


async def test_a_running_run_is_never_pruned(agent, fake_upstream):
    bmo = await agent()
    fake_upstream.script(reply("slow", stall=True))
    run = await start(bmo, "wait")
    bmo.co.finished_run_ttl_s = 0
    bmo.co.max_finished_runs = 0
    async with asyncio.timeout(20):
        async for event in run.events():
            if isinstance(event, TextDelta):
                break
    assert bmo.co.get_run(run.id) is run
    run.cancel("test over")
    assert (await asyncio.wait_for(run.wait(), 20)).outcome == run_outcomes.CANCELLED
    assert bmo.co.get_run(run.id) is None


async def test_a_listener_gets_what_events_yields_live_and_after_the_end():
    run = Run("run_listen", "sess_listen", "fake/fake-model")
    fin = RunFinished(outcome=run_outcomes.FINAL_ANSWER, finish_reason="stop", text="ab")
    run.emit(StepStarted(step=1, model="fake/fake-model"))
    early, ended = [], []
    run.listen(early.append, lambda: ended.append(len(early)))  # joins mid-run: the first event is replayed
    stopped = []
    stop = run.listen(stopped.append, lambda: stopped.append("end"))
    follower = asyncio.ensure_future(collect(run))
    await asyncio.sleep(0)
    run.emit(TextDelta(text="a"))
    stop()  # a listener that stops hears nothing more, not even the end
    run.emit(TextDelta(text="b"))
    run.emit(fin)
    run.emit(TextDelta(text="after the end"))  # ignored, as for events()
    assert early == await follower == [StepStarted(step=1, model="fake/fake-model"), TextDelta(text="a"),
                                       TextDelta(text="b"), fin]
    assert ended == [4] and stopped == [StepStarted(step=1, model="fake/fake-model"), TextDelta(text="a")]
    late, late_end = [], []
    run.listen(late.append, lambda: late_end.append(True))  # after the end: the compacted replay, then the end
    assert late == [StepStarted(step=1, model="fake/fake-model"), TextDelta(text="ab"), fin] == await collect(run)
    assert late_end == [True]
