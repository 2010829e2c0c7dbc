"""Values across the store boundary: what the ledger and the agent store read back is what they wrote, on both backends."""

from __future__ import annotations

import openai
import pytest
from compat_support import MODEL

from bmo.agent.store import AgentStore


async def test_a_nul_in_a_request_never_stops_the_ledger_from_saving(compat):
    client = compat.aclient()
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="fake/a\x00b", messages=[{"role": "user", "content": "x"}])
    answer = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi\x00there"}],
                                                  extra_headers={"X-BMO-Session-Id": "s-nul"})
    await client.close()
    await compat.ledger.drain()
    assert not compat.ledger.degraded, compat.ledger.last_error
    rows, _ = await compat.ledger.list_runs(limit=10)
    assert [(r["outcome"], r["http_status"]) for r in rows] == [("final_answer", 200), ("error_500", 404)]
    # SQLite keeps the NUL; PostgreSQL text cannot hold one, so it reads back as U+FFFD.
    assert rows[1]["model"].replace("\ufffd", "\x00") == "fake/a\x00b"
    history = await AgentStore(compat.host.db).messages("s-nul")
    assert [m.content for m in history] == ["hi\x00there", answer.choices[0].message.content]


async def test_ledger_rows_read_back_with_the_types_the_code_compares(compat):
    client = compat.aclient()
    await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], stream=False,
                                         extra_headers={"X-BMO-Session-Id": "s-types"})
    await client.close()
    await compat.ledger.drain()
    [row], _ = await compat.ledger.list_runs(limit=1, session_id="s-types")
    assert (row["stream"], row["is_session_reuse"]) == (False, False)
    assert type(row["http_status"]) is int and type(row["elapsed_ms"]) is int and row["elapsed_ms"] >= 0
    assert isinstance(row["started_at"], str) and row["started_at"].endswith("Z")
    timeline = await compat.ledger.events(row["request_id"])
    assert [e["seq"] for e in timeline] == list(range(1, len(timeline) + 1))
    assert [e["terminal"] for e in timeline] == [False] * (len(timeline) - 1) + [True]
    assert isinstance(timeline[-1]["detail"], dict) and timeline[-1]["detail"]["status"] == 200


async def test_agent_rows_read_back_with_the_types_the_code_compares(compat):
    client = compat.aclient()
    await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                         extra_headers={"X-BMO-Session-Id": "s-agent-types"})
    await client.close()
    store = AgentStore(compat.host.db)
    session = await store.session_row("s-agent-types")
    assert session["ephemeral"] == 0 and type(session["created_at"]) is float
    [run] = await store.run_rows("s-agent-types")
    assert type(run["started_at"]) is float and type(run["finished_at"]) is float
    assert run["finished_at"] >= run["started_at"] and type(run["steps"]) is int and run["steps"] >= 1
    history = await store.history("s-agent-types")
    assert history.seqs == [1, 2] and history.version == (2, 0)
    assert all(type(v) is int for v in history.version)
