"""A permission challenge raised by a run on one server, answered through another server's native API.

Two real servers over one store (both backends): the challenge waits on the server running the run,
is listed by the other one, and the answer given there reaches the run within about a second.
"""

from __future__ import annotations

import asyncio

import aiohttp
from compat_support import MODEL, TOKEN
from test_compat_shared_sessions import pair  # noqa: F401 - a fixture

from bmo.testing.fake_upstream import reply, tool_call


async def pending_on(http, server, session_id: str) -> list[dict]:
    async with asyncio.timeout(10):  # the holder writes it to the store a moment after raising it
        while True:
            async with http.get(f"{server.api}/sessions/{session_id}/permissions") as r:
                assert r.status == 200
                data = (await r.json())["data"]
            if data:
                return data
            await asyncio.sleep(0.05)


async def test_a_challenge_raised_on_one_server_is_answered_through_the_other(pair):
    a, b = await pair(), await pair()
    a.model.answer(reply(tool_calls=[tool_call("write_file", {"path": "out.txt", "content": "from A"})]),
                   reply("Written."))
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        async with http.post(f"{a.api}/sessions", json={"id": "s-perm", "model": MODEL}) as r:
            assert r.status == 201
        turn = asyncio.ensure_future(http.post(f"{a.api}/sessions/s-perm/messages", json={
            "content": "write it", "stream": False, "permission_timeout_s": 30}))
        [challenge] = await pending_on(http, b, "s-perm")
        assert challenge["tool"] == "write_file" and challenge["session_id"] == "s-perm"
        async with http.get(f"{b.api}/sessions/s-perm") as r:
            assert [p["id"] for p in (await r.json())["pending_permissions"]] == [challenge["id"]]
        async with http.post(f"{b.api}/sessions/s-perm/permissions/{challenge['id']}",
                             json={"decision": "allow_once"}) as r:
            assert r.status == 200, await r.text()
        async with await turn as r:
            assert r.status == 200
            result = (await r.json())["result"]
        assert result["outcome"] == "final_answer" and result["text"] == "Written."
        assert (a.workspace / "out.txt").read_text() == "from A"
        decided = [tuple(row.values()) for row in await a.host.db.fetchall(
            "SELECT decision, decided_by FROM permission_decisions WHERE id = ?", (challenge["id"],))]
        assert decided == [("allow_once", "user:")]
        # Answered, and gone from both servers; a second answer finds nothing waiting.
        async with http.get(f"{b.api}/sessions/s-perm/permissions") as r:
            assert (await r.json())["data"] == []
        async with http.post(f"{b.api}/sessions/s-perm/permissions/{challenge['id']}", json={"decision": "deny"}) as r:
            assert r.status == 404
