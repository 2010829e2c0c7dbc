"""Trace records: JSON lines, bounded rotation, and the tracing hook."""

from __future__ import annotations

import json

from bmo.hookspecs import hookimpl
from bmo.plugins import create_plugin_manager
from bmo.tracing.records import LOG_FILENAME, RecordLog, log_files


def read_all(directory) -> list[dict]:
    return [json.loads(line) for path in log_files(directory) for line in path.read_text().splitlines()]


def test_records_are_json_lines_with_time_level_msg_and_fields(tmp_path):
    log = RecordLog(tmp_path)
    log.emit("demo.thing", "warning", request_id="r1", n=3, nested={"a": [1, 2]})
    log.close()
    [record] = read_all(tmp_path)
    assert record["msg"] == "demo.thing"
    assert record["level"] == "warn"  # spelled the way bmo logs --level expects
    assert record["time"].endswith("Z")
    assert (record["request_id"], record["n"], record["nested"]) == ("r1", 3, {"a": [1, 2]})


def test_a_field_json_cannot_encode_is_written_as_text(tmp_path):
    log = RecordLog(tmp_path)
    log.emit("demo.odd", path=tmp_path)
    log.close()
    assert read_all(tmp_path)[0]["path"] == str(tmp_path)


def test_rotation_keeps_at_most_the_configured_backups_each_bounded(tmp_path):
    log = RecordLog(tmp_path, max_bytes=2000, backups=3)
    for i in range(400):
        log.emit("demo.fill", i=i, pad="x" * 50)
    log.close()
    files = log_files(tmp_path)
    assert [p.name for p in files] == [f"{LOG_FILENAME}.3", f"{LOG_FILENAME}.2", f"{LOG_FILENAME}.1", LOG_FILENAME]
    assert all(p.stat().st_size <= 2000 for p in files)
    # What is kept is the newest records, oldest first across the files, none duplicated.
    numbers = [r["i"] for r in read_all(tmp_path)]
    assert numbers == list(range(numbers[0], 400))


class Collector:
    def __init__(self):
        self.seen: list[dict] = []

    @hookimpl
    def bmo_trace_record(self, record):
        self.seen.append(record)


class Broken:
    @hookimpl
    def bmo_trace_record(self, record):
        raise RuntimeError("hook bug")


def test_the_tracing_hook_gets_every_record_even_when_another_hook_raises(tmp_path):
    pm = create_plugin_manager("")
    collector, broken = Collector(), Broken()
    pm.register(collector, name="test-collector")
    pm.register(broken, name="test-broken")  # registered last, so pluggy would call it first
    try:
        log = RecordLog(tmp_path, hook=pm.hook.bmo_trace_record)
        returned = [log.emit("demo.one", a=1), log.emit("demo.two", "error", b=2)]
        log.close()
    finally:
        pm.unregister(name="test-collector")
        pm.unregister(name="test-broken")
    assert collector.seen == returned
    on_disk = read_all(tmp_path)
    assert [r["msg"] for r in on_disk if not r["msg"].startswith("bmo.")] == ["demo.one", "demo.two"]
    failures = [r for r in on_disk if r["msg"] == "bmo.trace_hook_failed"]
    assert [(f["plugin"], f["record_msg"]) for f in failures] == [("test-broken", "demo.one"), ("test-broken", "demo.two")]
    assert "hook bug" in failures[0]["error"]


def test_emit_after_close_does_not_raise(tmp_path):
    log = RecordLog(tmp_path)
    log.close()
    assert log.emit("demo.late")["msg"] == "demo.late"
    log.flush()  # returns at once instead of waiting on a stopped writer
    assert read_all(tmp_path) == []


def test_now_iso_is_the_utc_millisecond_stamp_datetime_writes(monkeypatch):
    from datetime import datetime, timezone

    from bmo.tracing import records

    for t in (0.0, 1_764_633_600.0, 1_764_633_600.0005, 1_764_633_600.9994999, 1_764_633_600.9999996,
              1_764_633_659.999, 1_764_633_661.25):
        monkeypatch.setattr(records.time, "time", lambda t=t: t)
        expected = datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        assert records.now_iso() == expected, t
