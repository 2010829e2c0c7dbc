"""Sessions across servers sharing one store (``[store] shared = true``): the 409, resume, cancel and a
crashed holder's take-over work from whichever server a request lands on (issue 14 point 2).

Two real servers over one store — one data dir (SQLite WAL), or one throw-away PostgreSQL (the
``store_url`` fixture parameter) — and the real ``openai`` SDK as the client; a server that must die
with kill -9 is a ``bmo serve`` process.
"""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import openai
import pytest
import pytest_asyncio
from compat_support import MODEL, TOKEN, Compat, ScriptedModel, compat_toml

from bmo.agent import coordinator_of
from bmo.agent.errors import SessionBusy
from bmo.agent.messages import ChatMessage
from bmo.agent.run import RunPolicy
from bmo.testing.fake_upstream import FakeUpstream, reply
from bmo.testing.harness import clean_env, spawn_serve, start_server

SHARED = "[store]\nshared = true\nlease_ttl_s = {ttl}\n"
SLOW = "the quick brown fox jumps over the lazy dog again and again"


def headers(session_id: str, **extra: str) -> dict:
    return {"X-BMO-Session-Id": session_id, **extra}


@pytest_asyncio.fixture
async def pair(tmp_path, store_url):
    """``await pair(ttl=...)`` -> one more server on the test's shared store, all in front of one fake model."""
    started: list[Compat] = []
    model = ScriptedModel()
    up = await FakeUpstream(models=["fake-model"], default=model).start()
    workspace = tmp_path / "ws"
    workspace.mkdir()

    async def start(ttl: float = 10.0) -> Compat:
        toml = compat_toml(up, workspace, SHARED.format(ttl=ttl), ambiguity_action="code")
        server = await start_server(tmp_path / "data", config_toml=toml, token=TOKEN, load_plugins="openai_compat",
                                    store_url=store_url)
        started.append(Compat(server, up, model, workspace))
        return started[-1]

    yield start
    for compat in reversed(started):
        await compat.server.stop()
    await up.stop()


async def first_chunk(stream) -> list:
    """Read ``stream`` until its first content chunk; the chunks read so far."""
    seen = []
    async for chunk in stream:
        seen.append(chunk)
        if chunk.choices and chunk.choices[0].delta.content:
            return seen
    raise AssertionError("the stream ended before any content")


def shape(chunks) -> list[tuple]:
    """What a client sees of each chunk: its role, content and finish reason."""
    return [(c.choices[0].delta.role, c.choices[0].delta.content, c.choices[0].finish_reason)
            for c in chunks if c.choices]


async def db_rows(compat: Compat, sql: str, params=()) -> list[tuple]:
    """Rows of the shared store, read through one server's own store (either backend)."""
    return [tuple(row.values()) for row in await compat.host.db.fetchall(sql, params)]


async def test_a_turn_on_one_server_makes_the_same_session_queued_on_the_other(pair):
    a, b = await pair(), await pair()
    a.model.answer(reply(SLOW, chunks=10, chunk_delay_s=0.2))
    client_a, client_b = a.aclient(), b.aclient(max_retries=3)
    stream = await client_a.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "go"}],
                                                    stream=True, extra_headers=headers("s-409"))
    running = stream.response.headers["x-request-id"]
    await first_chunk(stream)
    with pytest.raises(openai.ConflictError) as err:
        await client_b.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "me too"}],
                                               extra_headers=headers("s-409"))
    assert err.value.body["code"] == "queued" and err.value.body["running_request_id"] == running
    assert err.value.response.headers["x-should-retry"] == "false"
    await b.assert_outcome(err.value.request_id, "queued", 409)
    async for _ in stream:
        pass
    # A's run ended: its lease is gone, and B now serves the session.
    after = await client_b.chat.completions.create(
        model=MODEL, extra_headers=headers("s-409"),
        messages=[{"role": "user", "content": "go"}, {"role": "assistant", "content": SLOW},
                  {"role": "user", "content": "next"}])
    assert after.choices[0].message.content == "echo: next"
    await client_a.close()
    await client_b.close()


async def test_a_refused_claim_on_the_other_server_writes_nothing(pair):
    a, b = await pair(), await pair()
    a.model.answer(reply(SLOW, chunks=10, chunk_delay_s=0.2))
    client_a = a.aclient()
    stream = await client_a.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "go"}],
                                                    stream=True, extra_headers=headers("s-claim"))
    await first_chunk(stream)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        # The native API starts its run without the compat busy check: the lease claim itself refuses it.
        async with http.post(f"{b.api}/sessions/s-claim/messages", json={"content": "me too", "stream": False}) as r:
            assert r.status == 409
            assert (await r.json())["error"]["code"] == "session_busy"
            assert r.headers["X-BMO-Run-Id"] == stream.response.headers["x-request-id"]
    async for _ in stream:
        pass
    assert await db_rows(a, "SELECT COUNT(*) FROM runs WHERE session_id = 's-claim'") == [(1,)]
    contents = await db_rows(a, "SELECT message FROM session_messages WHERE session_id = 's-claim'")
    assert not [c for (c,) in contents if "me too" in c]
    await client_a.close()


async def test_resume_on_the_other_server_streams_what_the_starter_got(pair):
    a, b = await pair(), await pair()
    a.model.answer(reply(SLOW, chunks=12, chunk_delay_s=0.15))
    client_a, client_b = a.aclient(), b.aclient()
    stream = await client_a.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "go"}], stream=True,
        stream_options={"include_usage": True}, extra_headers=headers("s-resume"))
    running = stream.response.headers["x-request-id"]
    got_a = await first_chunk(stream)
    resumed = await client_b.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "go"}], stream=True, stream_options={"include_usage": True},
        extra_headers=headers("s-resume", **{"X-BMO-Resume": running}))
    got_b = [c async for c in resumed]
    got_a += [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in got_b if c.choices) == SLOW
    assert shape(got_b) == shape(got_a)
    assert got_b[-1].usage == got_a[-1].usage and got_a[-1].usage is not None
    await b.assert_outcome(resumed.response.headers["x-request-id"], "resumed", 200)
    await a.assert_outcome(running, "final_answer", 200)
    # Finished, the run is still resumable from the other server (within the log's grace period).
    again = await client_b.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "go"}],
                                                   extra_headers={"X-BMO-Resume": running})
    assert again.choices[0].message.content == SLOW
    await client_a.close()
    await client_b.close()


async def test_a_cancel_on_the_other_server_stops_the_run(pair):
    a, b = await pair(), await pair()
    a.model.answer(reply(SLOW, chunks=40, chunk_delay_s=0.25))
    client_a = a.aclient()
    stream = await client_a.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "go"}],
                                                    stream=True, extra_headers=headers("s-cancel"))
    running = stream.response.headers["x-request-id"]
    await first_chunk(stream)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        async with http.post(f"{b.api}/sessions/s-cancel/cancel", json={"reason": "stop from B"}) as r:
            assert r.status == 200
            body = await r.json()
    assert body["outcome"] == "cancelled" and body["run"]["id"] == running and body["run"]["done"] is True
    with pytest.raises(openai.APIError):  # the stream ends with the cancel's error event
        async for _ in stream:
            pass
    assert await a.up.wait_disconnect(timeout=10) >= 1  # the upstream call was stopped, not left running
    row = await db_rows(a, "SELECT outcome, cancel_reason FROM runs WHERE id = ?", (running,))
    assert row == [("cancelled", "stop from B")]
    audit = await db_rows(a, "SELECT action FROM operation_audit WHERE run_id = ? ORDER BY id", (running,))
    assert ("run.cancel_requested",) in audit and ("run.cancelled",) in audit
    await client_a.close()


async def test_starting_a_server_on_a_shared_store_leaves_a_live_peers_run_alone(pair):
    first = await pair()
    b = await pair()  # B never held the data dir's lock: first did
    await first.server.stop()
    b.model.answer(reply(SLOW, chunks=10, chunk_delay_s=0.2))
    client_b = b.aclient()
    stream = await client_b.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "go"}],
                                                    stream=True, extra_headers=headers("s-peer"))
    running = stream.response.headers["x-request-id"]
    await first_chunk(stream)
    c = await pair()  # takes the now free lock: its start-up recovery must not close B's running run
    assert await db_rows(c, "SELECT outcome FROM runs WHERE id = ?", (running,)) == [(None,)]
    rest = [ch async for ch in stream]
    assert rest[-1].choices[0].finish_reason == "stop"
    await b.assert_outcome(running, "final_answer", 200)
    assert await db_rows(c, "SELECT outcome FROM runs WHERE id = ?", (running,)) == [("final_answer",)]
    await client_b.close()


async def test_a_killed_holder_frees_its_session_after_the_lease_expires_with_its_run_closed(tmp_path, pair,
                                                                                              store_url):
    ttl = 2.0
    b = await pair(ttl=ttl)
    b.model.answer(reply(SLOW, chunks=200, chunk_delay_s=0.1))
    toml = compat_toml(b.up, b.workspace, SHARED.format(ttl=ttl), ambiguity_action="code")
    data_dir = b.host.data_dir
    config = tmp_path / "a.toml"
    config.write_text(toml)
    a = spawn_serve(["--addr", "127.0.0.1:0", "--config", str(config), "--auth-token", TOKEN],
                    data_dir=data_dir, env=clean_env(tmp_path, BMO_LOAD_PLUGINS="openai_compat", BMO_WORKER_ID="a",
                                  **({"BMO_STORE_URL": store_url} if store_url else {})))
    try:
        assert a.url, a.stderr()
        client_a = openai.AsyncOpenAI(base_url=a.url + "/v1", api_key=TOKEN, max_retries=0, timeout=20)
        client_b = b.aclient()
        stream = await client_a.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "go"}],
                                                        stream=True, extra_headers=headers("s-kill"))
        running = stream.response.headers["x-request-id"]
        await first_chunk(stream)
        follower = await client_b.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "go"}], stream=True,
            extra_headers=headers("s-kill", **{"X-BMO-Resume": running}))
        await first_chunk(follower)
        a.terminate(signal.SIGKILL)
        killed = time.monotonic()
        # The follower on B ends as a crash ends a run, once the lease expired: an error event, not a hang.
        with pytest.raises(openai.APIError) as err:
            async with asyncio.timeout(ttl * 6):
                async for _ in follower:
                    pass
        assert "interrupted" in str(err.value)
        assert time.monotonic() - killed >= ttl * 0.5
        # The session is B's now, and the dead run is closed as start-up recovery closes one.
        again = await client_b.chat.completions.create(
            model=MODEL, extra_headers=headers("s-kill"), messages=[{"role": "user", "content": "again"}])
        assert again.choices[0].message.content
        assert await db_rows(b, "SELECT outcome, error, error_status FROM runs WHERE id = ?", (running,)) == [
            ("error", "interrupted: the server stopped", 500)]
        assert await db_rows(b, "SELECT status, outcome FROM openai_compat_runs WHERE request_id = ?",
                       (running,)) == [("interrupted", "error_500")]
        repaired = await db_rows(b, "SELECT actor FROM operation_audit WHERE session_id = 's-kill'"
                                     " AND action = 'session.repaired'")
        assert repaired == [("bmo",)]
        assert await db_rows(b, "SELECT COUNT(*) FROM session_leases WHERE run_id = ?", (running,)) == [(0,)]
        await client_a.close()
        await client_b.close()
    finally:
        if a.proc.poll() is None:
            a.terminate(signal.SIGKILL)


async def test_a_run_longer_than_the_lease_keeps_its_session_by_renewing(pair):
    ttl = 2.0
    a, b = await pair(ttl=ttl), await pair(ttl=ttl)
    a.model.answer(reply(SLOW, chunks=30, chunk_delay_s=0.2))
    client_a, client_b = a.aclient(), b.aclient()
    started = time.monotonic()
    stream = await client_a.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "go"}],
                                                    stream=True, extra_headers=headers("s-renew"))
    running = stream.response.headers["x-request-id"]
    await first_chunk(stream)
    await asyncio.sleep(max(0.0, ttl * 2 - (time.monotonic() - started)))  # past two TTLs: only renewals kept it
    with pytest.raises(openai.ConflictError) as err:
        await client_b.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "me too"}],
                                               extra_headers=headers("s-renew"))
    assert err.value.body["running_request_id"] == running
    rest = [c async for c in stream]
    assert rest[-1].choices[0].finish_reason == "stop"
    await a.assert_outcome(running, "final_answer", 200)
    assert await db_rows(a, "SELECT outcome FROM runs WHERE id = ?", (running,)) == [("final_answer",)]
    await client_a.close()
    await client_b.close()


async def test_a_finished_runs_event_log_goes_after_the_grace_period(pair):
    from bmo.cluster import run_log

    a, b = await pair(), await pair()
    client_a, client_b = a.aclient(), b.aclient()
    done = await client_a.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hello"}], extra_headers=headers("s-prune"))
    run_id = done.headers["x-request-id"]
    await b.host.db.run_write(run_log.prune_job(time.time()))  # within the grace period: kept
    again = await client_b.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                                   extra_headers={"X-BMO-Resume": run_id})
    assert again.choices[0].message.content == "echo: hello"
    await b.host.db.run_write(run_log.prune_job(time.time() + run_log.KEEP_FINISHED_S + 1))
    assert await db_rows(a, "SELECT COUNT(*) FROM run_event_log WHERE run_id = ?", (run_id,)) == [(0,)]
    with pytest.raises(openai.NotFoundError):
        await client_b.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                               extra_headers={"X-BMO-Resume": run_id})
    await client_a.close()
    await client_b.close()


async def test_claiming_a_session_whose_lease_expired_closes_the_dead_run_first(pair):
    b = await pair(ttl=30.0)  # sweeps a second after start, then every 30 s: this claim comes in between
    await asyncio.sleep(1.5)
    past = time.time() - 60
    await b.host.db.run_write(lambda conn: [conn.execute(sql, params) for sql, params in (
        ("INSERT INTO sessions (id, model, created_by, origin, ephemeral, created_at, updated_at)"
         " VALUES ('s-stale', ?, '', 'openai_compat', 0, ?, ?)", (MODEL, past, past)),
        ("INSERT INTO runs (id, session_id, model, origin, requester, permission_mode, started_at)"
         " VALUES ('req_dead', 's-stale', ?, 'openai_compat', '', 'ask', ?)", (MODEL, past)),
        ("INSERT INTO session_messages (session_id, seq, role, message, run_id, created_at)"
         " VALUES ('s-stale', 1, 'user', '{\"role\":\"user\",\"content\":\"lost\"}', 'req_dead', ?)", (past,)),
        ("INSERT INTO session_leases (session_id, run_id, request_id, holder, claimed_at, expires_at)"
         " VALUES ('s-stale', 'req_dead', 'req_dead', 'gone', ?, ?)", (past, past + 10)),
    )])
    client = b.aclient()
    answer = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hello again"}], extra_headers=headers("s-stale"))
    assert answer.parse().choices[0].message.content == "echo: hello again"
    assert await db_rows(b, "SELECT outcome, error FROM runs WHERE id = 'req_dead'") == [
        ("error", "interrupted: the server stopped")]
    assert await db_rows(b, "SELECT run_id, holder FROM session_leases WHERE session_id = 's-stale'") == []
    assert await db_rows(b, "SELECT kind FROM run_event_log WHERE run_id = 'req_dead'") == [("run.finished",)]
    repaired = await db_rows(b, "SELECT action FROM operation_audit WHERE session_id = 's-stale'"
                                " AND action = 'session.repaired'")
    assert repaired == [("session.repaired",)]
    await client.close()


async def test_a_follower_ends_with_the_run_row_when_the_runs_end_never_reached_the_log(pair):
    b = await pair()
    past = time.time() - 60
    delta = '{"type":"text.delta","text":"partly logged"}'
    await b.host.db.run_write(lambda conn: [conn.execute(sql, params) for sql, params in (
        ("INSERT INTO sessions (id, model, created_by, origin, ephemeral, created_at, updated_at)"
         " VALUES ('s-lost-end', ?, '', 'openai_compat', 0, ?, ?)", (MODEL, past, past)),
        ("INSERT INTO runs (id, session_id, model, origin, requester, permission_mode, started_at, finished_at,"
         " outcome, finish_reason) VALUES ('req_lost_end', 's-lost-end', ?, 'openai_compat', '', 'ask', ?, ?,"
         " 'final_answer', 'stop')", (MODEL, past, past + 1)),
        ("INSERT INTO run_event_log (run_id, seq, kind, event, at) VALUES ('req_lost_end', 1, 'text.delta', ?, ?)",
         (delta, past)),
    )])
    client = b.aclient()
    resumed = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                                   extra_headers={"X-BMO-Resume": "req_lost_end"})
    assert resumed.choices[0].message.content == "partly logged"
    assert resumed.choices[0].finish_reason == "stop"
    await client.close()


async def test_a_start_during_a_claim_the_other_server_refuses_names_the_other_servers_run(pair):
    # Found by bench/two_instances.py: a 409 named a run of this process whose lease claim was still in flight,
    # and that claim was then refused, so the id the client was told to resume never ran.
    a, b = await pair(), await pair()
    a.model.answer(reply(SLOW, chunks=10, chunk_delay_s=0.2))
    client_a = a.aclient()
    stream = await client_a.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "go"}],
                                                    stream=True, extra_headers=headers("s-inflight"))
    await first_chunk(stream)
    running = stream.response.headers["x-request-id"]
    coordinator = coordinator_of(b.host)
    session = await coordinator.get_session("s-inflight")

    async def start(text: str):
        return await coordinator.start_run(session, [ChatMessage(role="user", content=text)], policy=RunPolicy())

    # The first start awaits its claim in the writer; the second one checks the session meanwhile.
    results = await asyncio.gather(start("one"), start("two"), return_exceptions=True)
    assert [type(r) for r in results] == [SessionBusy, SessionBusy]
    assert [r.run_id for r in results] == [running, running]
    async for _ in stream:
        pass
    await client_a.close()


async def test_a_runs_lease_is_gone_by_the_time_its_answer_is_out(pair):
    # A fresh-clone CI run saw the next turn get 409: the lease was freed only after the run's task ended,
    # later than the answer its client read. Now the lease goes in the write of the run's end row.
    a, b = await pair(), await pair()
    coordinator = coordinator_of(a.host)
    session = await coordinator.create_session(session_id="s-end", model=MODEL)
    run = await coordinator.start_run(session, [ChatMessage(role="user", content="hi")], policy=RunPolicy())
    seen: list = []
    # Asked the moment the run emits its end, the other server must already find the session free.
    run.on_finish(lambda r: seen.append(asyncio.ensure_future(coordinator_of(b.host).cluster.busy_run_id("s-end"))))
    await run.wait()
    assert len(seen) == 1 and await seen[0] is None
    again = await coordinator_of(b.host).start_run(session, [ChatMessage(role="user", content="again")],
                                                   policy=RunPolicy())
    assert (await again.wait()).text == "echo: again"
