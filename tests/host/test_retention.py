"""Retention ([store.retention]): old rows go in small batches, recent ones stay, and writes never wait for a prune."""

from __future__ import annotations

import asyncio
import json
import time

from bmo.testing.harness import start_server
from bmo.testing.store_access import raw_connection

OLD_ISO, OLD_EPOCH = "2020-01-01T00:00:00.000Z", time.time() - 400 * 86400


def now_iso() -> str:
    from bmo.tracing.records import now_iso as iso

    return iso()


def seed(store, *, old: int = 5, new: int = 3) -> None:
    """Ledger rows (with events), runs (with steps), audit rows and decisions: ``old`` ancient, ``new`` recent."""
    with raw_connection(*store) as conn:
        conn.execute("BEGIN")
        now = time.time()
        conn.execute("INSERT INTO sessions (id, model, created_at, updated_at) VALUES"
                     " ('s-old', 'm', ?, ?), ('s-new', 'm', ?, ?) ON CONFLICT DO NOTHING",
                     (OLD_EPOCH, OLD_EPOCH, now, now))
        conn.execute("INSERT INTO session_messages (session_id, seq, role, message, created_at) VALUES"
                     " ('s-old', 1, 'user', '{\"role\":\"user\",\"content\":\"hi\"}', ?) ON CONFLICT DO NOTHING",
                     (OLD_EPOCH,))
        for i in range(old + new):
            is_old = i < old
            rid = f"{'old' if is_old else 'new'}-{i}"
            at, epoch = (OLD_ISO, OLD_EPOCH) if is_old else (now_iso(), now)
            conn.execute("INSERT INTO openai_compat_runs (request_id, route, status, outcome, started_at)"
                         " VALUES (?, 'chat_completions', 'finished', 'final_answer', ?)", (rid, at))
            conn.execute("INSERT INTO openai_compat_run_events (request_id, seq, event, at, elapsed_ms)"
                         " VALUES (?, 1, 'received', ?, 0)", (rid, at))
            conn.execute("INSERT INTO runs (id, session_id, model, origin, permission_mode, started_at, outcome)"
                         " VALUES (?, 's-new', 'm', 'native', 'ask', ?, 'final_answer')", (rid, epoch))
            conn.execute("INSERT INTO run_steps (run_id, step, kind, model, started_at) VALUES (?, 1, 'model', 'm', ?)",
                         (rid, epoch))
            conn.execute("INSERT INTO operation_audit (time, action) VALUES (?, 'run.cancelled')", (epoch,))
            for decision in ("once", "always"):
                conn.execute("INSERT INTO permission_decisions (id, session_id, run_id, tool, tool_class,"
                             " arguments_digest, decision, decided_by, requested_at, decided_at)"
                             " VALUES (?, 's-new', ?, 'run_shell', 'exec', 'd', ?, 'user', ?, ?)",
                             (f"{rid}-{decision}", rid, decision, epoch, epoch))
        conn.execute("COMMIT")


def ids(store, sql: str) -> list:
    with raw_connection(*store) as conn:
        return sorted(r[0] for r in conn.execute(sql).fetchall())


async def prepared(tmp_path, store_url: str, config: str = "", **seeding):
    """A migrated, seeded store; returns (data dir, (store url, data dir)) for ``seed``/``ids``/``raw_connection``."""
    data = tmp_path / "data"
    srv = await start_server(data, load_plugins="openai_compat", config_toml="[store.retention]\ninterval_s = 0\n",
                             store_url=store_url)
    await srv.stop()
    store = (store_url, data)
    seed(store, **seeding)
    if config:
        (tmp_path / "bmo.toml").write_text(config)
    return data, store


def test_dry_run_lists_what_would_go_and_deletes_nothing(tmp_path, run_bmo, store_url):
    data, store = asyncio.run(prepared(tmp_path, store_url))
    env = {"BMO_STORE_URL": store_url}
    result = run_bmo("store", "prune", "--dry-run", "--json", "--data-dir", str(data), env=env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["would_delete"]["ledger"] == {"openai_compat_runs": 5, "openai_compat_run_events": 5}
    assert out["would_delete"]["runs"] == {"runs": 5, "run_steps": 5}
    assert out["would_delete"]["audit"] == {"operation_audit": 5, "permission_decisions": 5}  # never live grants
    assert "sessions" not in out["would_delete"]  # user data: off by default
    assert len(ids(store, "SELECT request_id FROM openai_compat_runs")) == 8
    text = run_bmo("store", "prune", "--dry-run", "--data-dir", str(data), env=env)
    assert "openai_compat_runs" in text.stdout and "would delete 5" in text.stdout


def test_prune_deletes_old_rows_with_what_hangs_off_them_and_keeps_recent_ones(tmp_path, run_bmo, store_url):
    data, store = asyncio.run(prepared(tmp_path, store_url))
    env = {"BMO_STORE_URL": store_url}
    result = run_bmo("store", "prune", "--data-dir", str(data), env=env)
    assert result.returncode == 0, result.stderr
    recent = ["new-5", "new-6", "new-7"]
    assert ids(store, "SELECT request_id FROM openai_compat_runs") == recent
    assert ids(store, "SELECT request_id FROM openai_compat_run_events") == recent
    assert ids(store, "SELECT id FROM runs") == recent
    assert ids(store, "SELECT run_id FROM run_steps") == recent
    assert len(ids(store, "SELECT id FROM operation_audit")) == 3
    kept = ids(store, "SELECT id FROM permission_decisions")
    assert kept == sorted([f"old-{i}-always" for i in range(5)] + [f"{r}-{d}" for r in recent for d in ("always", "once")])
    assert ids(store, "SELECT id FROM sessions") == ["s-new", "s-old"]
    again = run_bmo("store", "prune", "--data-dir", str(data), env=env)
    assert "nothing to prune" in again.stdout


def test_a_count_limit_keeps_only_the_newest_rows(tmp_path, run_bmo, store_url):
    config = "[store.retention.ledger]\nmax_age_days = 0\nmax_rows = 2\n"
    data, store = asyncio.run(prepared(tmp_path, store_url, config))
    env = {"BMO_STORE_URL": store_url}
    result = run_bmo("store", "prune", "--config", str(tmp_path / "bmo.toml"), "--data-dir", str(data), env=env)
    assert result.returncode == 0, result.stderr
    assert ids(store, "SELECT request_id FROM openai_compat_runs") == ["new-6", "new-7"]


def test_idle_sessions_go_with_their_messages_only_when_configured(tmp_path, run_bmo, store_url):
    config = "[store.retention.sessions]\nmax_age_days = 365\n"
    data, store = asyncio.run(prepared(tmp_path, store_url, config))
    env = {"BMO_STORE_URL": store_url}
    result = run_bmo("store", "prune", "--config", str(tmp_path / "bmo.toml"), "--data-dir", str(data), env=env)
    assert result.returncode == 0, result.stderr
    assert ids(store, "SELECT id FROM sessions") == ["s-new"]
    assert ids(store, "SELECT session_id FROM session_messages") == []


async def test_unfinished_rows_never_go(tmp_path, store_url):
    data, store = await prepared(tmp_path, store_url)
    with raw_connection(*store) as conn:
        conn.execute("UPDATE openai_compat_runs SET status = 'running' WHERE request_id = 'old-0'")
        conn.execute("UPDATE runs SET outcome = NULL WHERE id = 'old-1'")
    from bmo.config import load_config
    from bmo.plugins import create_plugin_manager
    from bmo.store import database_for
    from bmo.store.retention import prune

    retention = load_config(create_plugin_manager("")).section("store").retention
    db = database_for(store_url, data)
    await db.open()
    try:
        await prune(db, retention)
    finally:
        await db.close()
    assert ids(store, "SELECT request_id FROM openai_compat_runs WHERE request_id LIKE 'old-%'") == ["old-0"]
    assert ids(store, "SELECT id FROM runs WHERE id LIKE 'old-%'") == ["old-1"]


async def test_a_preview_counts_per_table_what_a_prune_deletes(tmp_path, store_url):
    data, _ = await prepared(tmp_path, store_url)
    from bmo.config import load_config
    from bmo.plugins import create_plugin_manager
    from bmo.store import database_for
    from bmo.store.retention import preview, prune

    retention = load_config(create_plugin_manager("")).section("store").retention
    db = database_for(store_url, data)
    await db.open()
    try:
        previewed = await preview(db, retention)
        deleted = await prune(db, retention)
    finally:
        await db.close()
    assert previewed["ledger"] == {"openai_compat_runs": 5, "openai_compat_run_events": 5}
    assert previewed == deleted


async def test_the_server_prunes_in_the_background(tmp_path, store_url):
    data, store = await prepared(tmp_path, store_url)
    srv = await start_server(data, load_plugins="openai_compat", config_toml="[store.retention]\ninterval_s = 0.05\n",
                             store_url=store_url)
    try:
        async with asyncio.timeout(30):
            while await srv.host.db.fetchone("SELECT 1 FROM openai_compat_runs WHERE request_id LIKE 'old-%'"):
                await asyncio.sleep(0.05)
            # The record comes once the whole pass (every family) is done, a little after the ledger's rows go.
            while '"msg":"store.pruned"' not in (data / "logs" / "bmo.jsonl").read_text():
                await asyncio.to_thread(srv.host.records.flush)
                await asyncio.sleep(0.05)
        assert len(await srv.host.db.fetchall("SELECT 1 FROM openai_compat_runs")) == 3
    finally:
        await srv.stop()
    log = (data / "logs" / "bmo.jsonl").read_text()
    assert '"msg":"store.pruned"' in log


async def test_a_write_issued_during_a_prune_lands_before_the_prune_ends(tmp_path, store_url):
    data, store = await prepared(tmp_path, store_url, old=3000, new=0)
    srv = await start_server(data, load_plugins="openai_compat",
                             config_toml="[store.retention]\ninterval_s = 0\nbatch_rows = 100\n", store_url=store_url)
    from bmo.store.retention import prune

    order: list[str] = []
    writes: list[asyncio.Task] = []

    async def write_now() -> None:
        await srv.host.db.write("INSERT INTO operation_audit (time, action) VALUES (?, 'during.prune')", (time.time(),))
        order.append("write landed")

    def on_batch(family: str, counts: dict) -> None:
        order.append(f"batch {family}")
        if not writes:  # the first batch is done: a request writes now
            writes.append(asyncio.ensure_future(write_now()))

    try:
        retention = srv.host.config.section("store").retention
        deleted = await prune(srv.host.db, retention, on_batch=on_batch)
        order.append("prune done")
        await writes[0]
    finally:
        await srv.stop()
    assert deleted["ledger"]["openai_compat_runs"] == 3000
    landed = order.index("write landed")
    assert order[0] == "batch ledger" and landed < 3, order[:6]  # behind at most one batch, not the whole prune
    assert order.index("prune done") > landed + 30  # ...of the 30+ batches still to come


def seed_responses(store) -> None:
    """Stored responses of session s-new: four ancient and ended, one ancient still answering, two recent."""
    now = time.time()
    rows = [(f"resp_old-{i}", OLD_EPOCH + i, "completed") for i in range(4)]
    rows += [("resp_old-running", OLD_EPOCH, "in_progress"), ("resp_new-0", now, "completed"),
             ("resp_new-1", now + 1, "failed")]
    with raw_connection(*store) as conn:
        for response_id, at, status in rows:
            conn.execute("INSERT INTO openai_compat_responses (response_id, request_id, session_id, status, created_at)"
                         " VALUES (?, ?, 's-new', ?, ?)", (response_id, "req_" + response_id, status, at))


def test_stored_responses_go_after_30_days_but_one_still_answering_stays(tmp_path, run_bmo, store_url):
    data, store = asyncio.run(prepared(tmp_path, store_url))
    seed_responses(store)
    env = {"BMO_STORE_URL": store_url}
    dry = run_bmo("store", "prune", "--dry-run", "--json", "--data-dir", str(data), env=env)
    assert json.loads(dry.stdout)["would_delete"]["responses"] == {"openai_compat_responses": 4}, dry.stderr
    result = run_bmo("store", "prune", "--data-dir", str(data), env=env)
    assert result.returncode == 0, result.stderr
    assert "responses" in result.stdout and "openai_compat_responses" in result.stdout
    assert ids(store, "SELECT response_id FROM openai_compat_responses") == [
        "resp_new-0", "resp_new-1", "resp_old-running"]
    assert ids(store, "SELECT id FROM sessions") == ["s-new", "s-old"]  # a response's session is not its to drop


def test_a_count_limit_keeps_only_the_newest_stored_responses(tmp_path, run_bmo, store_url):
    config = "[store.retention.responses]\nmax_age_days = 0\nmax_rows = 1\n"
    data, store = asyncio.run(prepared(tmp_path, store_url, config))
    seed_responses(store)
    result = run_bmo("store", "prune", "--config", str(tmp_path / "bmo.toml"), "--data-dir", str(data),
                     env={"BMO_STORE_URL": store_url})
    assert result.returncode == 0, result.stderr
    assert ids(store, "SELECT response_id FROM openai_compat_responses") == ["resp_new-1", "resp_old-running"]


def test_config_show_lists_the_responses_family_with_its_30_day_default(run_bmo):
    result = run_bmo("config", "show")
    assert result.returncode == 0, result.stderr
    assert "[store.retention.responses]\nmax_age_days = 30\nmax_rows = 0\n" in result.stdout
