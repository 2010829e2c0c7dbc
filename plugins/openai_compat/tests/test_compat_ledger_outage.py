"""The ledger on PostgreSQL when the server goes away mid-test: served anyway, degraded, replayed when it is back."""

from __future__ import annotations

import asyncio

import pytest
from compat_support import MODEL

from bmo.testing.postgres import internals_of, server_down


@pytest.mark.parametrize("store_backend", ["postgresql"])  # the server stopping is PostgreSQL's; SQLite's is a disk
async def test_the_ledger_degrades_while_the_server_is_down_and_replays_when_it_is_back(compat, postgres_cluster):
    client = compat.aclient(max_retries=0)
    await client.models.list()
    with server_down(postgres_cluster):
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "still there?"}])
        assert raw.parse().choices[0].message.content == "echo: still there?"  # served although nothing was written
        failed_id = raw.headers["x-request-id"]
        assert dict(await compat.host.sidebar())["OpenAI compat"] == "degraded — persist failures"
        posture = await compat.host.posture()
        assert posture["openai_compat"]["degraded"] is True
        degraded = (await compat.records("openai_compat.ledger_degraded"))[0]
        assert not any(part in str(degraded) for part in internals_of(postgres_cluster)), degraded
    # The first write after the restart lands, replays what was kept, and clears the flag.
    async with asyncio.timeout(30):
        while True:
            await client.models.list()
            if dict(await compat.host.sidebar())["OpenAI compat"] == "enabled (chat_only)":
                break
            await asyncio.sleep(0.1)
    await compat.assert_outcome(failed_id, "persist_failed", 200, level="warn")
    assert (await compat.timeline(failed_id))[-1]["detail"]["served_outcome"] == "final_answer"
    assert await compat.records("openai_compat.ledger_recovered")
    await client.close()
