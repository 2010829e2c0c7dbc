"""``bmo logs``: filters, output forms, counting, rotated files, following."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from bmo.testing.harness import bmo_command, clean_env
from bmo.tracing.query import RecordFilter, last, matching, parse_when

NOW = datetime.now(timezone.utc)


def stamp(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_log(data_dir: Path, records: list[dict], name: str = "bmo.jsonl") -> None:
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / name, "a") as fh:
        for record in records:
            fh.write(json.dumps(record) + "\n")


def compat(minutes_ago, msg, level="info", **fields):
    return {"time": stamp(minutes_ago), "level": level, "msg": msg, **fields}


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """A log with one rotated backup (older records) and the live file."""
    global NOW
    NOW = datetime.now(timezone.utc)  # per test: a slow suite reaches a test long after its module was imported
    d = tmp_path / "data"
    write_log(d, [
        compat(180, "openai_compat.fired", request_id="r0", route="models_list", client_ua="curl/8"),
        compat(179, "openai_compat.action", request_id="r0", route="models_list", outcome="ok", client_ua="curl/8"),
    ], "bmo.jsonl.1")
    write_log(d, [
        compat(30, "bmo.started", addr="127.0.0.1:9000"),
        compat(20, "openai_compat.fired", "debug", request_id="r1", route="chat_completions", client_ua="OpenAI/Python 1.0"),
        compat(19, "openai_compat.action", "warn", request_id="r1", route="chat_completions", outcome="model_override_rejected",
               status=400, client_ua="OpenAI/Python 1.0", usage={"total_tokens": 12}),
        compat(5, "openai_compat.fired", request_id="r2", route="chat_completions", client_ua="OpenAI/Python 1.0"),
        compat(4, "openai_compat.action", "error", request_id="r2", route="chat_completions", outcome="error", status=502,
               client_ua="OpenAI/Python 1.0", stream=True),
    ])
    (d / "logs" / "bmo.jsonl").open("a").write("not json, e.g. a torn line\n")
    return d


@pytest.fixture
def logs_cli():
    """``bmo logs ARGS`` in this process (the same click command, without a process start per call)."""
    from click.testing import CliRunner

    from bmo.cli.main import cli

    def run(*args: str) -> SimpleNamespace:
        result = CliRunner().invoke(cli, ["logs", *args], catch_exceptions=False)
        return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)

    return run


def ids(out: str) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in out.splitlines()]
    return [(r["msg"], r.get("request_id", "")) for r in rows]


def test_reads_rotated_backups_then_the_live_file_in_order(run_bmo, data_dir):
    result = run_bmo("logs", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    assert ids(result.stdout) == [
        ("openai_compat.fired", "r0"), ("openai_compat.action", "r0"), ("bmo.started", ""),
        ("openai_compat.fired", "r1"), ("openai_compat.action", "r1"),
        ("openai_compat.fired", "r2"), ("openai_compat.action", "r2"),
    ]


def test_data_dir_comes_from_env_or_config_file(run_bmo, data_dir, tmp_path):
    by_env = run_bmo("logs", "--msg", "bmo.started", env={"BMO_DATA_DIR": str(data_dir)})
    assert ids(by_env.stdout) == [("bmo.started", "")]
    (tmp_path / "bmo.toml").write_text(f'[storage]\ndata_dir = "{data_dir}"\n')
    by_file = run_bmo("logs", "--msg", "bmo.started", cwd=tmp_path)
    assert ids(by_file.stdout) == [("bmo.started", "")]


def test_msg_exact_and_glob(logs_cli, data_dir):
    exact = logs_cli("--data-dir", str(data_dir), "--msg", "openai_compat.action")
    assert ids(exact.stdout) == [("openai_compat.action", "r0"), ("openai_compat.action", "r1"), ("openai_compat.action", "r2")]
    glob = logs_cli("--data-dir", str(data_dir), "--msg", "openai_compat.*", "--msg", "bmo.start*")
    assert len(ids(glob.stdout)) == 7


def test_level_is_a_minimum_severity(logs_cli, data_dir):
    warn = logs_cli("--data-dir", str(data_dir), "--level", "warn")
    assert ids(warn.stdout) == [("openai_compat.action", "r1"), ("openai_compat.action", "r2")]
    debug = logs_cli("--data-dir", str(data_dir), "--level", "debug")
    assert len(ids(debug.stdout)) == 7
    bad = logs_cli("--data-dir", str(data_dir), "--level", "loud")
    assert bad.returncode == 2 and "--level" in bad.stderr


def test_where_matches_any_field_and_all_conditions(logs_cli, data_dir):
    both = logs_cli("--data-dir", str(data_dir), "--where", "route=chat_completions", "--where", "outcome=error")
    assert ids(both.stdout) == [("openai_compat.action", "r2")]
    numeric = logs_cli("--data-dir", str(data_dir), "--where", "status=400")
    assert ids(numeric.stdout) == [("openai_compat.action", "r1")]
    boolean_and_nested = logs_cli("--data-dir", str(data_dir), "--where", "stream=true")
    assert ids(boolean_and_nested.stdout) == [("openai_compat.action", "r2")]
    nested = logs_cli("--data-dir", str(data_dir), "--where", "usage.total_tokens=12")
    assert ids(nested.stdout) == [("openai_compat.action", "r1")]
    glob = logs_cli("--data-dir", str(data_dir), "--where", "client_ua=OpenAI/*", "--msg", "openai_compat.fired")
    assert ids(glob.stdout) == [("openai_compat.fired", "r1"), ("openai_compat.fired", "r2")]
    malformed = logs_cli("--data-dir", str(data_dir), "--where", "route")
    assert malformed.returncode == 2 and "KEY=VALUE" in malformed.stderr


def test_since_and_until_take_durations_and_iso_times(logs_cli, data_dir):
    recent = logs_cli("--data-dir", str(data_dir), "--since", "10m")
    assert ids(recent.stdout) == [("openai_compat.fired", "r2"), ("openai_compat.action", "r2")]
    window = logs_cli("--data-dir", str(data_dir), "--since", "1h", "--until", stamp(10))
    assert [i for _, i in ids(window.stdout)] == ["", "r1", "r1"]
    older = logs_cli("--data-dir", str(data_dir), "--until", "2h")
    assert ids(older.stdout) == [("openai_compat.fired", "r0"), ("openai_compat.action", "r0")]
    day = logs_cli("--data-dir", str(data_dir), "--since", "1d")
    assert len(ids(day.stdout)) == 7
    bad = logs_cli("--data-dir", str(data_dir), "--since", "yesterday")
    assert bad.returncode == 2 and "10m" in bad.stderr


def test_limit_keeps_the_most_recent_matches(logs_cli, data_dir):
    result = logs_cli("--data-dir", str(data_dir), "--msg", "openai_compat.fired", "--limit", "2")
    assert ids(result.stdout) == [("openai_compat.fired", "r1"), ("openai_compat.fired", "r2")]


def test_table_shows_time_level_msg_then_key_fields(logs_cli, data_dir):
    result = logs_cli("--data-dir", str(data_dir), "--table", "--where", "request_id=r2")
    header, fired, action = result.stdout.splitlines()
    assert header.split() == ["TIME", "LEVEL", "MSG", "FIELDS"]
    assert action.split()[:3] == [stamp(4), "error", "openai_compat.action"]
    assert "request_id=r2 route=chat_completions outcome=error status=502" in action
    assert action.index("request_id=") < action.index("stream=true")  # key fields first
    assert fired.split()[2] == "openai_compat.fired"


def test_top_counts_values_of_a_field(logs_cli, data_dir):
    table = logs_cli("--data-dir", str(data_dir), "--top", "client_ua", "--table")
    assert table.stdout.splitlines() == ["  COUNT  CLIENT_UA", "      4  OpenAI/Python 1.0", "      2  curl/8"]
    as_json = logs_cli("--data-dir", str(data_dir), "--msg", "openai_compat.action", "--top", "outcome", "--limit", "1")
    rows = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert len(rows) == 1 and rows[0]["field"] == "outcome" and rows[0]["count"] == 1
    refused = logs_cli("--data-dir", str(data_dir), "--top", "outcome", "--follow")
    assert refused.returncode == 2


def test_an_empty_data_dir_says_so(logs_cli, tmp_path):
    result = logs_cli("--data-dir", str(tmp_path / "nothing"))
    assert result.returncode == 0 and result.stdout == ""
    assert "no log" in result.stderr


def test_filtering_streams_instead_of_loading_everything():
    # An endless source: only a pipeline that pulls one line at a time can answer.
    endless = (json.dumps({"time": stamp(1), "level": "info", "msg": "m", "i": i}).encode() + b"\n" for i in itertools.count())
    keep = RecordFilter(where=[("i", "7*")])
    first_three = list(itertools.islice(matching(endless, keep), 3))
    assert [r["i"] for _, r in first_three] == [7, 70, 71]
    # --limit holds only N records however many match.
    tail = last(({"i": i} for i in range(100_000)), 3)
    assert list(tail) == [{"i": 99_997}, {"i": 99_998}, {"i": 99_999}]


def test_parse_when_reads_naive_iso_times_as_local_time():
    local = datetime(2026, 1, 31, 14, 0).astimezone()
    assert parse_when("2026-01-31T14:00") == local.astimezone(timezone.utc)
    assert parse_when("2026-01-31T14:00Z") == datetime(2026, 1, 31, 14, 0, tzinfo=timezone.utc)
    assert parse_when("90s", now=NOW) == NOW - timedelta(seconds=90)


def _read_line(proc: subprocess.Popen, deadline: float) -> dict:
    line = proc.stdout.readline()
    assert line, f"bmo logs --follow ended early: {proc.stderr.read()}"
    assert time.monotonic() < deadline
    return json.loads(line)


def test_follow_prints_new_records_across_rotation_and_stops_on_ctrl_c(tmp_path):
    data_dir = tmp_path / "data"
    write_log(data_dir, [compat(1, "demo.before", n=0), compat(1, "other.noise", n=-1)])
    proc = subprocess.Popen(
        [*bmo_command(), "logs", "--follow", "--data-dir", str(data_dir), "--msg", "demo.*"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=clean_env(tmp_path, PYTHONUNBUFFERED="1"), stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    try:
        assert _read_line(proc, deadline)["n"] == 0  # the backlog first
        write_log(data_dir, [compat(0, "other.noise", n=-2), compat(0, "demo.appended", n=1)])
        assert _read_line(proc, deadline)["n"] == 1
        # Rotate the way RecordLog does: rename the live file, start a new one.
        live = data_dir / "logs" / "bmo.jsonl"
        write_log(data_dir, [compat(0, "demo.last-in-old-file", n=2)])
        os.replace(live, live.with_name("bmo.jsonl.1"))
        write_log(data_dir, [compat(0, "demo.in-new-file", n=3)])
        assert _read_line(proc, deadline)["n"] == 2
        assert _read_line(proc, deadline)["n"] == 3
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
