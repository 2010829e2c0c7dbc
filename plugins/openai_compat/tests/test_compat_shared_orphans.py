"""Ledger rows of a server that died on a shared store and that are no run: closed by a live peer's sweep.

A run's row closes with its run when its session lease expires (``test_compat_shared_sessions``); a
resume follower's own request or a chat without a session holds no lease. Each ledger row names its
process (``holder``), and once that process's heartbeat (``bmo_workers``) is gone a live server closes
the row as start-up recovery closes one. A real ``bmo serve`` killed with -9, the real ``openai`` SDK,
both store backends.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from datetime import datetime, timezone

import aiohttp
import openai
from compat_support import MODEL, TOKEN, compat_toml
from test_compat_shared_sessions import SHARED, SLOW, db_rows, first_chunk, headers, pair  # noqa: F401 - a fixture

from bmo.agent import coordinator_of
from bmo.server.workers.registry import STALE_AFTER_S
from bmo.testing.fake_upstream import reply
from bmo.testing.harness import clean_env, spawn_serve

INTERRUPTED = "interrupted: the server stopped"


async def rows_of(compat, request_ids: list[str]) -> list[tuple]:
    marks = ", ".join("?" * len(request_ids))
    return await db_rows(compat, "SELECT request_id, status, outcome, error, http_status, holder"
                                 f" FROM openai_compat_runs WHERE request_id IN ({marks}) ORDER BY request_id",
                         tuple(request_ids))


async def test_a_killed_servers_rows_that_are_no_run_are_closed_once_its_heartbeat_is_gone(tmp_path, pair,
                                                                                         store_url):
    b = await pair(ttl=2.0)
    long = " ".join([SLOW] * 10)  # 400 chunks of 0.1 s: longer than the test
    b.model.answer(reply(long, chunks=400, chunk_delay_s=0.1), reply(long, chunks=400, chunk_delay_s=0.1))
    config = tmp_path / "a.toml"
    config.write_text(compat_toml(b.up, b.workspace, SHARED.format(ttl=2.0), ambiguity_action="code"))
    a = spawn_serve(["--addr", "127.0.0.1:0", "--config", str(config), "--auth-token", TOKEN],
                    data_dir=b.host.data_dir, env=clean_env(tmp_path, BMO_LOAD_PLUGINS="openai_compat",
                                                             BMO_WORKER_ID="a",
                                                             **({"BMO_STORE_URL": store_url} if store_url else {})))
    client_b = b.aclient()
    try:
        assert a.url, a.stderr()
        client_a = openai.AsyncOpenAI(base_url=a.url + "/v1", api_key=TOKEN, max_retries=0, timeout=20)
        stream = await client_b.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "go"}],
                                                        stream=True, extra_headers=headers("s-orphans"))
        running = stream.response.headers["x-request-id"]
        await first_chunk(stream)
        # On A: a follower of B's run, and a chat without a session (its run lives in A's memory, with no row
        # and no lease until it ends): ledger rows no lease covers.
        follower = await client_a.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "go"}], stream=True,
            extra_headers=headers("s-orphans", **{"X-BMO-Resume": running}))
        await first_chunk(follower)
        stateless = await client_a.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                                           stream=True)
        await first_chunk(stateless)
        orphans = sorted([follower.response.headers["x-request-id"], stateless.response.headers["x-request-id"]])
        assert [r[1:2] + r[5:] for r in await rows_of(b, orphans)] == [("running", "a"), ("running", "a")]
        a.terminate(signal.SIGKILL)
        async with asyncio.timeout(STALE_AFTER_S * 4):  # a bound, not a timing: stale after 10 s, swept every 2 s
            while {r[1] for r in await rows_of(b, orphans)} != {"interrupted"}:
                await asyncio.sleep(0.2)
        assert [r[1:] for r in await rows_of(b, orphans)] == [
            ("interrupted", "error_500", INTERRUPTED, None, "a"), ("interrupted", "error_500", INTERRUPTED, None, "a")]
        for request_id in orphans:
            last = (await b.timeline(request_id))[-1]
            assert last["terminal"] and last["outcome"] == "error_500" and last["detail"]["interrupted"] is True
        # The live server's own running row is left alone: its process beats.
        assert (await rows_of(b, [running]))[0][1:3] == ("running", None)
        closed = await b.records("cluster.orphans_closed")
        assert sum(r["ledger_rows_closed"] for r in closed) == 2
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            async with http.post(f"{b.api}/sessions/s-orphans/cancel", json={"reason": "done"}) as r:
                assert r.status == 200
        await client_a.close()
    finally:
        await client_b.close()
        if a.proc.poll() is None:
            a.terminate(signal.SIGKILL)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def test_the_sweep_closes_rows_of_stopped_silent_and_restarted_processes_and_leaves_the_rest(pair):
    b = await pair()
    host, now = socket.gethostname(), time.time()
    beats = [  # (worker id, started, last seen, stopped)
        ("w-live", now - 60, now, None), ("w-restarted", now - 5, now, None), ("w-stopped", now - 60, now - 1, now - 1),
        ("w-silent", now - 60, now - STALE_AFTER_S - 5, None)]
    ledger = [  # (request id, holder, started)
        ("req_live", "w-live", now - 30), ("req_restarted", "w-restarted", now - 30), ("req_stopped", "w-stopped",
        now - 30), ("req_silent", "w-silent", now - 30), ("req_unknown", "w-never", now - 30), ("req_unshared", None,
        now - 30), ("req_run", "w-silent", now - 30), ("req_own_old", "me", now - 30), ("req_own", "me", now + 1)]
    cluster = coordinator_of(b.host).cluster
    await cluster.stop()  # no sweep of its own in between: this test runs the sweep
    cluster.me = cluster.me._replace(holder="me", started=now)  # this process, as its own rows name it

    def seed(conn):
        for worker, started, seen, stopped in beats:
            conn.execute("INSERT INTO bmo_workers (hostname, worker_id, pid, started_at, last_seen, stopped_at)"
                         " VALUES (?, ?, 1, ?, ?, ?)", (host, worker, started, seen, stopped))
        for request_id, holder, started in ledger:
            conn.execute("INSERT INTO openai_compat_runs (request_id, route, started_at, holder, holder_host)"
                         " VALUES (?, 'chat_completions', ?, ?, ?)", (request_id, iso(started), holder,
                                                                       host if holder else None))
        # req_run is an unfinished run: it closes with its run when its lease expires, not here.
        conn.execute("INSERT INTO runs (id, session_id, model, origin, requester, permission_mode, started_at)"
                     " VALUES ('req_run', 's-run', ?, 'openai_compat', '', 'ask', ?)", (MODEL, now - 30))
        conn.execute("INSERT INTO openai_compat_responses (response_id, request_id, session_id, status, created_at,"
                     " response) VALUES ('resp_1', 'req_silent', 's', 'in_progress', ?, ?)",
                     (now - 30, '{"status": "in_progress"}'))

    await b.host.db.run_write(seed)
    counts = await cluster.close_orphans()
    assert counts == {"ledger_rows_closed": 5, "responses_failed": 1}
    status = dict(await db_rows(b, "SELECT request_id, status FROM openai_compat_runs WHERE request_id LIKE 'req_%'"))
    assert {k for k, v in status.items() if v == "interrupted"} == {
        "req_restarted", "req_stopped", "req_silent", "req_unknown", "req_own_old"}
    assert {k for k, v in status.items() if v == "running"} == {"req_live", "req_unshared", "req_run", "req_own"}
    assert await db_rows(b, "SELECT status FROM openai_compat_responses WHERE response_id = 'resp_1'") == [("failed",)]
    assert await cluster.close_orphans() == {}  # closed rows are not found again
