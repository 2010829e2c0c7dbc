"""Records under ``bmo serve --workers N``: each worker writes and rotates its own file, ``bmo logs`` reads them all
in time order (following too), and the registry tells serving, stopped and gone workers apart."""

from __future__ import annotations

import json
import time
from pathlib import Path

from bmo.server.workers.registry import STALE_AFTER_S, worker_rows
from bmo.tracing.query import RecordFilter, backlog_then_follow
from bmo.tracing.records import WORKER_RECORDS_ENV, RecordLog, log_files, records_dir


def write(path: Path, *records: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        for record in records:
            fh.write(json.dumps(record) + "\n")


def rec(t: str, msg: str, worker: str) -> dict:
    return {"time": f"2026-12-01T10:00:{t}Z", "level": "info", "msg": msg, "worker": worker}


def test_a_worker_writes_and_rotates_its_own_file_and_names_itself_in_every_record(tmp_path):
    directory = records_dir(tmp_path / "logs", {WORKER_RECORDS_ENV: "w2"})
    assert directory == tmp_path / "logs" / "workers" / "w2"
    log = RecordLog(directory, max_bytes=300, backups=2, fields={"worker": "w2"})
    for i in range(12):
        log.emit("test.step", n=i)
    log.close()
    files = log_files(directory)
    assert [p.name for p in files] == ["bmo.jsonl.2", "bmo.jsonl.1", "bmo.jsonl"]
    lines = [json.loads(line) for p in files for line in p.read_text().splitlines()]
    assert all(r["worker"] == "w2" and list(r)[:4] == ["time", "level", "msg", "worker"] for r in lines)
    assert [r["n"] for r in lines] == sorted(r["n"] for r in lines)  # rotation kept them whole and in order
    assert not (tmp_path / "logs" / "bmo.jsonl").exists()


def test_a_process_outside_a_supervisor_writes_where_it_always_did(tmp_path):
    assert records_dir(tmp_path / "logs", {}) == tmp_path / "logs"
    log = RecordLog(tmp_path / "logs")
    record = log.emit("test.plain")
    log.close()
    assert "worker" not in record


def test_bmo_logs_merges_the_supervisor_and_every_worker_in_time_order(tmp_path, run_bmo):
    logs = tmp_path / "data" / "logs"
    write(logs / "bmo.jsonl", rec("01", "serve.worker_started", "w1"), rec("05", "serve.worker_exited", "w2"))
    write(logs / "workers" / "w1" / "bmo.jsonl", rec("02", "bmo.started", "w1"), rec("06", "bmo.http_request", "w1"))
    write(logs / "workers" / "w2" / "bmo.jsonl.1", rec("03", "bmo.started", "w2"))  # a rotated backup
    write(logs / "workers" / "w2" / "bmo.jsonl", rec("04", "bmo.http_request", "w2"))
    result = run_bmo("logs", "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 0, result.stderr
    seconds = [json.loads(line)["time"][17:19] for line in result.stdout.splitlines()]
    assert seconds == ["01", "02", "03", "04", "05", "06"]
    top = run_bmo("logs", "--data-dir", str(tmp_path / "data"), "--msg", "bmo.*", "--top", "worker")
    assert [json.loads(line) for line in top.stdout.splitlines()] == [
        {"field": "worker", "value": "w1", "count": 2}, {"field": "worker", "value": "w2", "count": 2}]


def test_follow_reads_every_worker_and_one_that_starts_later(tmp_path):
    logs = tmp_path / "logs"
    write(logs / "workers" / "w1" / "bmo.jsonl", rec("01", "bmo.started", "w1"))
    seen: list[dict] = []
    deadline = time.monotonic() + 10
    follow = backlog_then_follow(logs, RecordFilter(), limit=None, poll_s=0.01,
                                 should_stop=lambda: len(seen) >= 3 or time.monotonic() > deadline)
    seen.append(next(follow)[1])
    write(logs / "workers" / "w1" / "bmo.jsonl", rec("02", "bmo.http_request", "w1"))
    write(logs / "workers" / "w3" / "bmo.jsonl", rec("03", "bmo.started", "w3"))  # a worker started meanwhile
    for _, record in follow:  # ends once three were seen
        seen.append(record)
    assert sorted((r["worker"], r["msg"]) for r in seen) == [
        ("w1", "bmo.http_request"), ("w1", "bmo.started"), ("w3", "bmo.started")]


def row(worker: str, last_seen: float, stopped_at: float | None = None) -> dict:
    return {"hostname": "h", "worker_id": worker, "pid": 7, "started_at": last_seen - 60, "last_seen": last_seen,
            "stopped_at": stopped_at, "in_flight": 3, "streams": 1, "counts": '{"requests": 9}', "plugins": "[]"}


def test_a_worker_whose_heartbeat_is_stale_is_shown_as_gone(tmp_path):
    now = time.time()
    shown = worker_rows([row("w1", now - 1), row("w2", now - STALE_AFTER_S - 1), row("w3", now - 5, now - 5)], now)
    assert [(w["worker"], w["state"]) for w in shown] == [("w1", "serving"), ("w2", "gone"), ("w3", "stopped")]
    # Only a serving worker has work in flight; the counts of the others stay as they were last reported.
    assert [(w["in_flight"], w["streams"], w["counts"]["requests"]) for w in shown] == [(3, 1, 9), (0, 0, 9), (0, 0, 9)]


async def test_every_server_on_a_shared_store_is_in_the_posture_on_both_backends(tmp_path, store_url, monkeypatch):
    from bmo.testing.harness import start_server

    servers = []
    try:
        for name in ("a", "b"):  # two servers on one store, as two hosts on one PostgreSQL would be
            monkeypatch.setenv("BMO_WORKER_ID", name)
            servers.append(await start_server(tmp_path / "data", config_toml="[store]\nshared = true\n",
                                              load_plugins="", store_url=store_url))
        section = await servers[0].host.posture()
        rows = {w["worker"]: w for w in section["workers"]["workers"]}
        assert sorted(rows) == ["a", "b"] and rows["a"]["answering"] and not rows["b"]["answering"]
        assert section["workers"]["serving"] == 2
        await servers[1].stop()
        section = await servers[0].host.posture()
        assert {w["worker"]: w["state"] for w in section["workers"]["workers"]} == {"a": "serving", "b": "stopped"}
    finally:
        for server in servers:
            await server.stop()
