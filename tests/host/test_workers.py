"""``bmo serve --workers 2``: real supervisor and worker processes on one real port, driven by the openai SDK."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import httpx
import openai
import pytest

from bmo.testing.harness import bmo_command, clean_env
from tests.host.workers_support import (
    MODEL,
    ThreadedUpstream,
    alive,
    children_of,
    get_json,
    posture_workers,
    records,
    serving_pids,
    start_workers,
    stop,
    wait_until,
)

TOKEN = "w-token"


@pytest.fixture(scope="module")
def upstream():
    up = ThreadedUpstream()
    yield up.up
    up.stop()


@pytest.fixture(scope="module")
def shared(tmp_path_factory, upstream):
    """One two-worker server for the tests that only read from it."""
    base = tmp_path_factory.mktemp("workers-shared")
    server = start_workers(base, upstream)
    yield server, base / "data"
    stop(server)


def fresh_client(url: str) -> openai.OpenAI:
    # A new connection per request: keep-alive would pin every request to one worker.
    http = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=30)
    return openai.OpenAI(base_url=url + "/v1", api_key=TOKEN, max_retries=0, http_client=http)


def chat_workers(url: str, attempts: int = 60) -> dict[str, str]:
    """Chats until both workers answered: worker id -> the answer it gave."""
    answers: dict[str, str] = {}
    client = fresh_client(url)
    for i in range(attempts):
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": f"hello {i}"}])
        answers[raw.headers["x-bmo-worker"]] = raw.parse().choices[0].message.content
        if len(answers) == 2:
            break
    return answers


def test_both_workers_answer_chats_on_one_port(shared):
    server, _ = shared
    answers = chat_workers(server.url)
    assert sorted(answers) == ["w1", "w2"]
    assert all(text.startswith("echo: hello") for text in answers.values())


def test_the_ready_line_and_guidance_are_printed_once(shared):
    server, _ = shared
    err = server.stderr()
    assert err.count("BMO serving on http://127.0.0.1:") == 1
    assert "workers: 2)" in err


def test_posture_shows_every_worker_with_totals_from_the_store(shared):
    server, _ = shared
    chat_workers(server.url)

    def counted() -> dict | None:  # the other worker's row is as of its last heartbeat
        section = posture_workers(server)
        rows = [w for w in section["workers"] if w["state"] == "serving"]
        return section if len(rows) == 2 and all(w["counts"]["requests"] >= 1 for w in rows) else None

    section = wait_until(counted, 15)
    assert section, posture_workers(server)
    by_id = {w["worker"]: w for w in section["workers"] if w["state"] == "serving"}
    assert sorted(by_id) == ["w1", "w2"]
    assert section["serving"] == 2
    assert {w["pid"] for w in by_id.values()} == set(children_of(server.proc.pid))
    assert sum(1 for w in by_id.values() if w["answering"]) == 1  # the other came from the store
    # Totals add up both workers' rows, whichever worker answered.
    assert section["totals"]["requests"] == sum(w["counts"]["requests"] for w in by_id.values())


def test_bmo_logs_reads_the_records_of_every_worker(shared):
    server, data = shared
    out = subprocess.run([*bmo_command(), "logs", "--msg", "bmo.started", "--data-dir", str(data)],
                         capture_output=True, text=True, env=clean_env(data.parent), timeout=60)
    started = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted(r["worker"] for r in started) == ["w1", "w2"]
    out = subprocess.run([*bmo_command(), "logs", "--msg", "serve.worker_started", "--data-dir", str(data)],
                         capture_output=True, text=True, env=clean_env(data.parent), timeout=60)
    assert sorted(json.loads(line)["worker"] for line in out.stdout.splitlines()) == ["w1", "w2"]


def test_workers_leave_recovery_to_leases_and_the_supervisor_holds_the_data_dir(shared):
    _, data = shared
    assert records(data, "agent.recovered") == []  # a worker restarted while others serve must not close their runs
    skipped = records(data, "agent.recovery_skipped")
    assert sorted((r["worker"], r["level"]) for r in skipped) == [("w1", "info"), ("w2", "info")]
    # A plain bmo serve on the same data dir sees the supervisor's lock and leaves the workers' runs alone.
    from bmo.store.instance_lock import LOCK_FILENAME, _try_lock

    assert _try_lock(data / LOCK_FILENAME) == -1


def test_bmo_plugins_lists_the_serving_workers(shared):
    server, data = shared
    out = subprocess.run([*bmo_command(), "plugins", "--data-dir", str(data)], capture_output=True, text=True,
                         env=clean_env(data.parent), timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    for worker, pid in serving_pids(server).items():
        assert any(line.startswith(f"  {worker}  pid {pid}  serving") and "same plugins" in line for line in lines)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_the_supervisor_leaves_no_process(tmp_path, upstream, sig):
    server = start_workers(tmp_path, upstream)
    workers = children_of(server.proc.pid)
    assert len(workers) == 2
    assert stop(server, sig) == 0
    assert not [pid for pid in workers if alive(pid)]
    stopped = records(tmp_path / "data", "serve.worker_stopped")
    assert sorted((r["worker"], r["exit_code"]) for r in stopped) == [("w1", 0), ("w2", 0)]
    assert [r["worker"] for r in records(tmp_path / "data", "bmo.stopped")] != []


def test_a_killed_worker_is_restarted_and_the_posture_shows_it(tmp_path, upstream):
    server = start_workers(tmp_path, upstream)
    try:
        before = serving_pids(server)
        os.kill(before["w2"], signal.SIGKILL)
        after = wait_until(lambda: (p := serving_pids(server)).get("w2") not in (None, before["w2"]) and p, 60)
        assert after and after["w1"] == before["w1"] and after["w2"] != before["w2"]
        assert sorted(children_of(server.proc.pid)) == sorted(after.values())
        exited = records(tmp_path / "data", "serve.worker_exited")
        assert [(r["worker"], r["pid"], r["signal"]) for r in exited] == [("w2", before["w2"], "SIGKILL")]
        restarted = wait_until(  # the row is written at start-up, the record once the worker accepts
            lambda: [r for r in records(tmp_path / "data", "serve.worker_started") if r["restart"]], 30)
        assert [(r["worker"], r["pid"]) for r in restarted] == [("w2", after["w2"])]
        assert sorted(chat_workers(server.url)) == ["w1", "w2"]  # the new worker answers
    finally:
        stop(server)


def test_workers_exit_when_the_supervisor_is_killed(tmp_path, upstream):
    server = start_workers(tmp_path, upstream)
    workers = children_of(server.proc.pid)
    assert len(workers) == 2
    server.proc.kill()
    server.proc.wait(10)
    assert wait_until(lambda: not [pid for pid in workers if alive(pid)], 30)


def test_a_worker_that_keeps_failing_at_startup_stops_the_server(tmp_path, upstream):
    server = start_workers(tmp_path, upstream)
    try:
        # The operator breaks the config; a restarted worker reads it again and cannot start.
        (tmp_path / "bmo.toml").write_text("[options.http_server]\nno_such_key = 1\n")
        w2 = serving_pids(server)["w2"]
        os.kill(w2, signal.SIGKILL)
        code = server.proc.wait(90)
    finally:
        stop(server)
    assert code == 1
    err = server.stderr()
    assert "worker w2 failed to start 5 times in a row (last: exit code 2); stopping the server" in err
    assert err.count("no_such_key") >= 5
    failed = [r for r in records(tmp_path / "data", "serve.worker_exited") if r["during_startup"]]
    assert len(failed) == 5
    delays = [r["restart_in_s"] for r in failed][:4]
    assert all(later == 2 * earlier for earlier, later in zip(delays, delays[1:])), delays  # backed off
    assert not children_of(server.proc.pid)


def test_one_worker_is_todays_single_process(tmp_path, upstream):
    server = start_workers(tmp_path, upstream, workers=1)
    try:
        assert children_of(server.proc.pid) == []
        body, headers = get_json(server.url + "/v1/bmo/posture")
        assert "X-BMO-Worker" not in headers and "workers" not in body
    finally:
        stop(server)
    assert "workers:" not in server.stderr()


def test_startup_advice_is_printed_once_not_once_per_worker(tmp_path):
    from bmo.testing.harness import free_port, spawn_serve

    cfg = tmp_path / "bmo.toml"
    cfg.write_text('[options.openai_compat]\nenabled = true\n\n[agent]\ndefault_model = "dead/m"\n\n'
                   f'[providers.dead]\nkind = "openai"\nbase_url = "http://127.0.0.1:{free_port()}/v1"\nmodels = []\n')
    server = spawn_serve(["--workers", "2", "--addr", "127.0.0.1:0", "--config", str(cfg)], data_dir=tmp_path / "data",
                         env=clean_env(tmp_path, BMO_AUTH_TOKEN=TOKEN), cwd=tmp_path, timeout=120)
    try:
        assert server.url, server.stderr()
    finally:
        stop(server)
    assert server.stderr().count("no configured provider (dead) answered with a model list") == 1


def test_a_port_in_use_is_the_same_clear_error_with_workers(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([*bmo_command(), "serve", "--workers", "2", "--allow-no-auth", "--addr",
                                 f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data")],
                                capture_output=True, text=True, env=clean_env(tmp_path, BMO_LOAD_PLUGINS=""), timeout=60)
    assert result.returncode == 1
    assert f"bmo serve: cannot bind 127.0.0.1:{port}: Address already in use\n" in result.stderr
    assert "Traceback" not in result.stderr and "while attempting" not in result.stderr
