"""The run ledger: pagination and filters, timelines, and surviving a store that refuses writes."""

from __future__ import annotations

import apsw
import openai
import pytest
from compat_support import MODEL

from bmo.agent import coordinator_of
from bmo.testing.fake_upstream import reply, tool_call
from bmo.testing.fixtures import sqlite_only

BLOCK = "CREATE TRIGGER block_runs BEFORE INSERT ON openai_compat_runs BEGIN SELECT RAISE(ABORT, 'disk full'); END"


async def get(compat, path: str, **params):
    client = compat.aclient()
    try:
        return await client.get(path, cast_to=object, options={"params": params})
    finally:
        await client.close()


async def test_runs_list_paginates_newest_first(compat):
    client = compat.aclient()
    for _ in range(5):
        await client.models.list()
    page1 = await get(compat, "/openai-compat/runs", limit=2)
    page2 = await get(compat, "/openai-compat/runs", limit=2, after=page1["last_id"])
    page3 = await get(compat, "/openai-compat/runs", limit=2, after=page2["last_id"], route="models_list")
    assert page1["object"] == "list" and page1["has_more"] is True
    assert [r["request_id"] for r in page1["data"]] == [page1["first_id"], page1["last_id"]]
    ids = [r["request_id"] for p in (page1, page2, page3) for r in p["data"]]
    assert len(ids) == len(set(ids))
    # The two list calls before page3 are runs_list rows; route=models_list skips them.
    assert all(r["route"] == "models_list" for r in page3["data"])
    everything = await get(compat, "/openai-compat/runs", limit=100)
    assert everything["has_more"] is False
    starts = [r["started_at"] for r in everything["data"]]
    assert starts == sorted(starts, reverse=True)
    await client.close()


async def test_runs_list_filters_by_outcome_and_session(compat):
    client = compat.aclient()
    await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                         extra_headers={"X-BMO-Session-Id": "s-filter"})
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], n=3)
    by_session = await get(compat, "/openai-compat/runs", session_id="s-filter")
    assert [r["session_id"] for r in by_session["data"]] == ["s-filter"]
    row = by_session["data"][0]
    assert row["route"] == "chat_completions" and row["outcome"] == "final_answer" and row["http_status"] == 200
    assert row["model"] == MODEL and row["kind"] == "chat" and row["elapsed_ms"] >= 0 and row["finished_at"]
    errors = await get(compat, "/openai-compat/runs", outcome="error_500")
    assert [r["http_status"] for r in errors["data"]] == [400]
    await client.close()


async def test_runs_list_refuses_bad_parameters(compat):
    client = compat.aclient()
    for params, param in (({"limit": 0}, "limit"), ({"route": "nope"}, "route"), ({"outcome": "won"}, "outcome"),
                          ({"after": "req_missing"}, "after")):
        with pytest.raises(openai.BadRequestError) as err:
            await client.get("/openai-compat/runs", cast_to=object, options={"params": params})
        assert err.value.body["param"] == param
    await client.close()


async def test_run_events_timeline_and_unknown_id(compat):
    client = compat.aclient()
    raw = await client.chat.completions.with_raw_response.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    request_id = raw.headers["x-request-id"]
    events = await get(compat, f"/openai-compat/runs/{request_id}/events")
    names = [e["event"] for e in events["data"]]
    assert events["request_id"] == request_id
    assert names[0] == "received" and names[-1] == "terminal"
    assert {"session", "router", "run_started"} <= set(names)
    assert events["data"][-1]["outcome"] == "final_answer" and events["data"][-1]["detail"]["status"] == 200
    assert [e["seq"] for e in events["data"]] == list(range(1, len(names) + 1))
    with pytest.raises(openai.NotFoundError) as err:
        await client.get("/openai-compat/runs/req_nope/events", cast_to=object)
    assert err.value.body["code"] == "run_not_found"
    await compat.assert_outcome(err.value.request_id, "error_500", 404, level="info")  # a client error (error_class client)
    await client.close()


@sqlite_only("an SQLite trigger breaks the writes; PostgreSQL's own case: test_compat_ledger_outage.py")
async def test_unwritable_ledger_still_serves_flips_sidebar_and_recovers(compat):
    client = compat.aclient()
    await client.models.list()
    assert dict(await compat.host.sidebar())["OpenAI compat"] == "enabled (chat_only)"
    saboteur = apsw.Connection(str(compat.host.db_path))
    saboteur.setbusytimeout(5000)
    saboteur.execute(BLOCK)
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "still there?"}])
        assert raw.parse().choices[0].message.content == "echo: still there?"
        failed_id = raw.headers["x-request-id"]
        assert dict(await compat.host.sidebar())["OpenAI compat"] == "degraded — persist failures"
        assert (await compat.ledger.get_run(failed_id)) is None
        action = (await compat.records("openai_compat.action", request_id=failed_id))[0]
        assert action["outcome"] == "persist_failed" and action["level"] == "warn"
        assert action["served_outcome"] == "final_answer"
        assert (await compat.records("openai_compat.ledger_degraded"))[0]["outcome"] == "persist_failed"
        posture = await compat.host.posture()
        assert posture["openai_compat"]["degraded"] is True
    finally:
        saboteur.execute("DROP TRIGGER block_runs")
        saboteur.close()
    # The next good write lands, replays what was kept, and clears the flag.
    await client.models.list()
    assert dict(await compat.host.sidebar())["OpenAI compat"] == "enabled (chat_only)"
    await compat.assert_outcome(failed_id, "persist_failed", 200, level="warn")
    terminal = (await compat.timeline(failed_id))[-1]
    assert terminal["detail"]["served_outcome"] == "final_answer"
    assert await compat.records("openai_compat.ledger_recovered")
    await client.close()


class CountingStore:
    """The host's database as the ledger sees it, counting the write jobs the ledger hands it."""

    def __init__(self, db):
        self.db = db
        self.jobs = 0

    def __getattr__(self, name):
        return getattr(self.db, name)

    async def run_write(self, job):
        self.jobs += 1
        return await self.db.run_write(job)


async def test_a_request_costs_two_ledger_writes_and_waits_for_one(compat):
    client = compat.aclient()
    store = compat.ledger.db = CountingStore(compat.ledger.db)
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "count"}])
    await compat.ledger.drain()
    # The in-flight row at entry (not awaited), then the timeline, terminal event and outcome together.
    assert store.jobs == 2
    request_id = raw.headers["x-request-id"]
    await compat.assert_outcome(request_id, "final_answer", 200)
    names = [e["event"] for e in await compat.timeline(request_id)]
    assert names[0] == "received" and {"session", "router", "run_started"} <= set(names)
    await client.close()


async def test_the_row_says_running_and_shows_the_wait_while_a_permission_is_pending(start_compat):
    compat = await start_compat(permission_timeout_s=30.0)
    compat.model.answer(reply(tool_calls=[tool_call("write_file", {"path": "out.txt", "content": "x"})]),
                        reply("Not written."))
    client = compat.aclient()
    stream = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "write"}],
                                                  stream=True)
    request_id = stream.response.headers["x-request-id"]
    chunks = []
    async for chunk in stream:
        chunks.append(chunk)
        if "permission to run write_file" in (getattr(chunk.choices[0].delta, "reasoning_content", None) or ""):
            break
    # While the run waits on a person, the ledger already tells an operator so.
    row = await compat.row(request_id)
    assert row["status"] == "running" and row["outcome"] is None
    events = await compat.timeline(request_id)
    assert events[-1]["event"] == "permission_requested" and not any(e["terminal"] for e in events)
    assert await coordinator_of(compat.host).decide_permission(events[-1]["detail"]["permission_id"], "deny")
    chunks += [c async for c in stream]
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    # Issue 12: the wait is also said in the answer (a chat shows no reasoning block by default).
    assert content.endswith("Not written.") and "waiting up to" in content
    await compat.assert_outcome(request_id, "final_answer", 200)
    names = [e["event"] for e in await compat.timeline(request_id)]
    assert names.index("permission_requested") < names.index("permission_decided")
    await client.close()


async def test_no_ledger_switch_writes_no_rows_but_keeps_records(start_compat):
    compat = await start_compat(env={"BMO_TEST_NO_LEDGER": "1"})
    warned = await compat.records("openai_compat.ledger_disabled")
    assert len(warned) == 1 and warned[0]["level"] == "warn" and warned[0]["env"] == "BMO_TEST_NO_LEDGER"
    store = compat.ledger.db = CountingStore(compat.ledger.db)
    client = compat.aclient()
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "unledgered"}])
    assert raw.parse().choices[0].message.content == "echo: unledgered"
    request_id = raw.headers["x-request-id"]
    await client.models.list()
    await compat.ledger.drain()
    assert store.jobs == 0
    assert (await compat.host.db.fetchone("SELECT COUNT(*) AS n FROM openai_compat_runs"))["n"] == 0
    assert (await compat.host.db.fetchone("SELECT COUNT(*) AS n FROM openai_compat_run_events"))["n"] == 0
    action = (await compat.records("openai_compat.action", request_id=request_id))[0]
    assert action["outcome"] == "final_answer" and action["status"] == 200
    assert len(await compat.records("openai_compat.fired", request_id=request_id)) == 1
    assert dict(await compat.host.sidebar())["OpenAI compat"] == "enabled (chat_only)"
    await client.close()


async def test_ledger_writes_stay_on_without_the_switch(start_compat):
    compat = await start_compat(env={"BMO_TEST_NO_LEDGER": "0"})
    assert await compat.records("openai_compat.ledger_disabled") == []
    client = compat.aclient()
    raw = await client.models.with_raw_response.list()
    await compat.assert_outcome(raw.headers["x-request-id"], "final_answer", 200)
    await client.close()
