"""``GET /v1/sessions/{id}/events`` (what the TUI follows) across servers sharing one store: a run another
server holds is followed from the run event log, as a run of this server is followed in memory.

Two real servers over one store (both backends), real sockets, the fake model behind both.
"""

from __future__ import annotations

import asyncio

import aiohttp
from compat_support import MODEL, TOKEN
from test_compat_shared_sessions import pair  # noqa: F401 - a fixture

from bmo.testing.fake_upstream import reply
from bmo.tui.client import read_sse


async def finished_texts(resp: aiohttp.ClientResponse, count: int) -> tuple[list[str], list[str]]:
    """The texts of the next ``count`` run.finished events of a session follower, and every event type seen."""
    finished, types = [], []
    async with asyncio.timeout(30):
        async for event in read_sse(resp.content):
            types.append(event["type"])
            if event["type"] == "run.finished":
                finished.append(event["text"])
                if len(finished) == count:
                    return finished, types
    raise AssertionError(f"the follower's stream ended after {types}")


async def test_a_follower_on_one_server_streams_the_runs_another_server_holds(pair):
    a, b = await pair(), await pair()
    a.model.answer(reply("first from A"), reply("second from A"))
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        async with http.post(f"{a.api}/sessions", json={"id": "s-follow", "model": MODEL}) as r:
            assert r.status == 201
        async with http.get(f"{b.api}/sessions/s-follow/events") as resp:
            assert resp.status == 200
            assert (await resp.content.readline()).startswith(b": following")
            for text in ("one", "two"):
                async with http.post(f"{a.api}/sessions/s-follow/messages",
                                     json={"content": text, "stream": False}) as r:
                    assert r.status == 200, await r.text()
            finished, types = await finished_texts(resp, 2)
    assert finished == ["first from A", "second from A"]
    assert types[0] == "step.started" and "text.delta" in types


async def test_a_follower_joining_while_a_run_goes_elsewhere_gets_it_from_its_start(pair):
    a, b = await pair(), await pair()
    a.model.answer(reply("slow words from A", chunks=8, chunk_delay_s=0.25))
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        async with http.post(f"{a.api}/sessions", json={"id": "s-join", "model": MODEL}) as r:
            assert r.status == 201
        turn = asyncio.ensure_future(http.post(f"{a.api}/sessions/s-join/messages",
                                               json={"content": "go", "stream": False}))
        async with asyncio.timeout(10):  # the run is under way on A before B's follower connects
            while not await a.host.db.fetchall("SELECT 1 FROM run_event_log l JOIN runs r ON r.id = l.run_id"
                                               " WHERE r.session_id = ?", ("s-join",)):
                await asyncio.sleep(0.05)
        async with http.get(f"{b.api}/sessions/s-join/events") as resp:
            assert resp.status == 200
            finished, types = await finished_texts(resp, 1)
        async with await turn as r:
            assert r.status == 200
    assert finished == ["slow words from A"]
    assert types[0] == "step.started"  # from its first event
