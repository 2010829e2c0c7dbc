"""Outcomes tell client mistakes from server faults; the posture counts what was served, from counters."""

from __future__ import annotations

import apsw
import openai
import pytest
from compat_support import MODEL

from bmo.testing.fake_upstream import error
from bmo.testing.fixtures import sqlite_only

BLOCK = "CREATE TRIGGER block_runs BEFORE INSERT ON openai_compat_runs BEGIN SELECT RAISE(ABORT, 'disk full'); END"


async def _error_class(compat, request_id: str) -> tuple[str, str, str]:
    row = await compat.row(request_id)
    action = (await compat.records("openai_compat.action", request_id=request_id))[0]
    return row["error_class"], action["error_class"], action["level"]


async def test_a_404_and_a_400_are_client_errors_logged_at_info(compat):
    client = compat.aclient(max_retries=0)
    with pytest.raises(openai.NotFoundError) as missing:
        await client.chat.completions.create(model="fake/no-such-model", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError) as bad:
        await client.chat.completions.create(model=MODEL, n=2, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError) as run:
        await client.get("/openai-compat/runs/req_nope/events", cast_to=object)
    await client.close()
    for err in (missing, bad, run):
        await compat.assert_outcome(err.value.request_id, "error_500", err.value.status_code, level="info")
        assert await _error_class(compat, err.value.request_id) == ("client", "client", "info")


async def test_an_upstream_failure_is_an_upstream_error_at_warn(compat):
    compat.model.route(*[error(503, "overloaded")] * 8)
    client = compat.aclient(max_retries=0)
    with pytest.raises(openai.APIStatusError) as err:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    await client.close()
    assert err.value.status_code == 502
    assert await _error_class(compat, err.value.request_id) == ("upstream", "upstream", "warn")


async def test_a_success_has_no_error_class(compat):
    client = compat.aclient()
    raw = await client.chat.completions.with_raw_response.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    await client.close()
    assert (await compat.row(raw.headers["x-request-id"]))["error_class"] == ""


async def test_reads_of_runs_and_models_do_not_push_chat_outcomes_out_of_the_posture(compat):
    client = compat.aclient()
    chat = await client.chat.completions.with_raw_response.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    for _ in range(6):
        await client.models.list()
        await client.get("/openai-compat/runs", cast_to=object)
    posture = await client.get("/openai-compat/posture", cast_to=object)
    await client.close()
    assert [o["request_id"] for o in posture["last_outcomes"]] == [chat.headers["x-request-id"]]
    assert posture["routes"]["models_list"] == 6 and posture["routes"]["runs_list"] == 6


@sqlite_only("an SQLite trigger breaks the writes; PostgreSQL's own case: test_compat_ledger_outage.py")
async def test_the_posture_counts_a_request_the_degraded_ledger_could_not_save(compat):
    client = compat.aclient()
    saboteur = apsw.Connection(str(compat.host.db_path))
    saboteur.setbusytimeout(5000)
    saboteur.execute(BLOCK)
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "unsaved"}])
        posture = (await compat.host.posture())["openai_compat"]
    finally:
        saboteur.execute("DROP TRIGGER block_runs")
        saboteur.close()
    await client.close()
    assert posture["degraded"] is True
    assert posture["routes"]["chat_completions"] == 1
    assert posture["last_outcomes"][0]["request_id"] == raw.headers["x-request-id"]
    assert posture["last_outcomes"][0]["outcome"] == "persist_failed"
    assert posture["ledger"]["runs"] == 0  # nothing landed: the size is what the ledger holds


async def test_counters_are_seeded_from_the_ledger_at_start_up(start_compat, tmp_path):
    first = await start_compat()
    client = first.aclient()
    await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    await client.models.list()
    await client.close()
    await first.ledger.drain()
    before = (await first.host.posture())["openai_compat"]
    db_path = first.host.db_path
    await first.server.stop()
    from compat_support import compat_toml

    from bmo.testing.harness import start_server

    again = await start_server(db_path.parent, config_toml=compat_toml(first.up, first.workspace),
                               load_plugins="openai_compat", store_url=first.host.config.section("store").url)
    try:
        after = (await again.host.posture())["openai_compat"]
    finally:
        await again.stop()
    for key in ("ledger", "routes", "kinds", "top_user_agents", "last_outcomes"):
        assert after[key] == before[key], key
