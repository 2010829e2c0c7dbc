"""Deleting a session whose run goes on another server sharing the store (issue 14's follow-up).

The delete asks the run's holder to cancel it through the session lease, as a cancel route does,
waits (bounded) for the run to end, then deletes; a run that does not end in time is a 409 naming it.
Two real servers over one store (both backends), the real ``openai`` SDK as the chat client.
"""

from __future__ import annotations

import time

import aiohttp
import openai
import pytest
from compat_support import MODEL, TOKEN
from test_compat_shared_sessions import SLOW, db_rows, first_chunk, headers, pair  # noqa: F401 - pair is a fixture

from bmo.cluster import shared_sessions
from bmo.testing.fake_upstream import reply


async def test_deleting_a_session_on_the_other_server_cancels_its_run_first(pair):
    a, b = await pair(), await pair()
    a.model.answer(reply(SLOW, chunks=40, chunk_delay_s=0.25))
    client_a = a.aclient()
    stream = await client_a.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "go"}],
                                                    stream=True, extra_headers=headers("s-del"))
    running = stream.response.headers["x-request-id"]
    await first_chunk(stream)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        async with http.delete(f"{b.api}/sessions/s-del") as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["deleted"] is True
        # Answered only once the run ended: nothing of the session is left, and nothing comes back later.
        assert await db_rows(b, "SELECT COUNT(*) FROM sessions WHERE id = 's-del'") == [(0,)]
        assert await db_rows(b, "SELECT COUNT(*) FROM session_leases WHERE session_id = 's-del'") == [(0,)]
        with pytest.raises(openai.APIError):  # A's client sees the run cancelled, not the rest of the answer
            async for _ in stream:
                pass
        assert await a.up.wait_disconnect(timeout=10) >= 1
        assert (await a.row(running))["outcome"] == "cancelled"
        assert await db_rows(b, "SELECT COUNT(*) FROM session_messages WHERE session_id = 's-del'") == [(0,)]
        assert await db_rows(b, "SELECT COUNT(*) FROM runs WHERE session_id = 's-del'") == [(0,)]
        audit = await db_rows(b, "SELECT action FROM operation_audit WHERE session_id = 's-del' ORDER BY id")
        assert ("run.cancel_requested",) in audit and ("run.cancelled",) in audit
        assert audit[-1] == ("session.deleted",)
        async with http.get(f"{a.api}/sessions/s-del") as r:
            assert r.status == 404
    await client_a.close()


async def test_deleting_a_session_whose_run_elsewhere_does_not_stop_in_time_is_a_409_naming_it(pair, monkeypatch):
    monkeypatch.setattr(shared_sessions, "DELETE_WAIT_S", 0.5, raising=False)
    b = await pair()
    now = time.time()
    # A holder that stopped answering but whose lease still stands (it renewed a moment ago).
    await b.host.db.run_write(lambda conn: [conn.execute(sql, params) for sql, params in (
        ("INSERT INTO sessions (id, model, created_by, origin, ephemeral, created_at, updated_at)"
         " VALUES ('s-stuck', ?, '', 'native', 0, ?, ?)", (MODEL, now, now)),
        ("INSERT INTO runs (id, session_id, model, origin, requester, permission_mode, started_at)"
         " VALUES ('run_stuck', 's-stuck', ?, 'native', '', 'ask', ?)", (MODEL, now)),
        ("INSERT INTO session_leases (session_id, run_id, request_id, holder, claimed_at, expires_at)"
         " VALUES ('s-stuck', 'run_stuck', 'run_stuck', 'elsewhere', ?, ?)", (now, now + 60)),
    )])
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        async with http.delete(f"{b.api}/sessions/s-stuck") as r:
            assert r.status == 409
            body = await r.json()
            assert r.headers["X-BMO-Run-Id"] == "run_stuck"
    assert body["error"]["code"] == "session_busy" and "run_stuck" in body["error"]["message"]
    assert "DELETE" in body["error"]["message"]  # says what to do: delete again once it stopped
    assert await db_rows(b, "SELECT COUNT(*) FROM sessions WHERE id = 's-stuck'") == [(1,)]
    assert await db_rows(b, "SELECT cancel_requested FROM session_leases WHERE session_id = 's-stuck'") == [
        ("session deleted",)]


async def test_a_turn_claimed_while_the_delete_waited_makes_the_delete_a_409_not_an_orphan(pair, monkeypatch):
    from bmo.agent import coordinator_of

    a, b = await pair(), await pair()
    a.model.answer(reply("the first turn"), reply(SLOW, chunks=12, chunk_delay_s=0.1))
    client_a = a.aclient()
    await client_a.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "one"}],
                                           extra_headers=headers("s-race"))
    cluster_b = coordinator_of(b.host).cluster
    wait_for_run_end = cluster_b.stop_for_delete
    started = {}

    async def new_turn_lands_after_the_wait(*args, **kwargs):
        await wait_for_run_end(*args, **kwargs)  # nothing runs: the delete would go ahead now
        stream = await client_a.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "two"}],
                                                        stream=True, extra_headers=headers("s-race"))
        started["stream"], started["id"] = stream, stream.response.headers["x-request-id"]
        started["seen"] = await first_chunk(stream)  # its lease is claimed (in the same write as its run row)

    monkeypatch.setattr(cluster_b, "stop_for_delete", new_turn_lands_after_the_wait)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        async with http.delete(f"{b.api}/sessions/s-race") as r:
            assert r.status == 409, await r.text()
            assert (await r.json())["error"]["code"] == "session_busy"
            assert r.headers["X-BMO-Run-Id"] == started["id"]
    # Nothing was deleted under the new turn: it runs to its end and its session keeps its history.
    rest = [c async for c in started["stream"]]
    assert "".join(c.choices[0].delta.content or "" for c in started["seen"] + rest if c.choices) == SLOW
    assert await db_rows(b, "SELECT COUNT(*) FROM sessions WHERE id = 's-race'") == [(1,)]
    assert await db_rows(b, "SELECT outcome FROM runs WHERE id = ?", (started["id"],)) == [("final_answer",)]
    await client_a.close()
