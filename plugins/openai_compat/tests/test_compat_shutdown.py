"""Stopping the server mid-answer: the stream ends cleanly and the books are closed before the store is."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import apsw
from compat_support import open_stream_until

from bmo.testing.fake_upstream import reply


async def test_shutdown_mid_stream_ends_the_request_and_its_ledger_row(compat):
    compat.model.answer(reply("never finishing", chunks=2, stall=True))
    async with aiohttp.ClientSession() as http:
        response, request_id = await open_stream_until(compat, http, b"nishing")
        stopping = asyncio.create_task(compat.server.stop())
        async with asyncio.timeout(20):
            rest = await response.content.read()
            await stopping
    compat.server.stop = _already_stopped
    tail = rest.decode()
    assert '"error"' in tail and "cancelled" in tail and tail.rstrip().endswith("data: [DONE]")
    db = apsw.Connection(str(compat.host.db_path))
    row = db.execute("SELECT status, outcome, http_status FROM openai_compat_runs WHERE request_id = ?",
                     (request_id,)).fetchall()
    terminal = db.execute("SELECT outcome FROM openai_compat_run_events WHERE request_id = ? AND terminal = 1",
                          (request_id,)).fetchall()
    db.close()
    assert row == [("finished", "cancelled", 503)] and terminal == [("cancelled",)]
    actions = [json.loads(line) for line in compat.host.records.path.read_text().splitlines()
               if '"openai_compat.action"' in line and request_id in line]
    assert len(actions) == 1 and actions[0]["outcome"] == "cancelled"


async def _already_stopped() -> None:
    return None
