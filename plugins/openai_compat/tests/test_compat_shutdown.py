"""Stopping the server mid-answer: the stream ends cleanly and the books are closed before the store is."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from compat_support import open_stream_until

from bmo.store import database_for
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
    db = database_for(compat.host.config.section("store").url, compat.host.data_dir)  # the store, reopened
    await db.open_for_reads()
    try:
        row = await db.fetchall("SELECT status, outcome, http_status FROM openai_compat_runs WHERE request_id = ?",
                                (request_id,))
        terminal = await db.fetchall(
            "SELECT outcome FROM openai_compat_run_events WHERE request_id = ? AND terminal = 1", (request_id,))
    finally:
        await db.close()
    assert row == [{"status": "finished", "outcome": "cancelled", "http_status": 503}]
    assert terminal == [{"outcome": "cancelled"}]
    actions = [json.loads(line) for line in compat.host.records.path.read_text().splitlines()
               if '"openai_compat.action"' in line and request_id in line]
    assert len(actions) == 1 and actions[0]["outcome"] == "cancelled"


async def _already_stopped() -> None:
    return None
