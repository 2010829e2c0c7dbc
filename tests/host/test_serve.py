"""``bmo serve`` as a real process: refusing unsafe starts, the bind warning, and a clean SIGTERM."""

from __future__ import annotations

import json
import signal
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import apsw

from bmo.testing.harness import clean_env, free_port, spawn_serve


def get(url: str, token: str) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()
        return resp.status


def test_no_token_and_no_allow_no_auth_refuses_naming_both_fixes(run_bmo):
    result = run_bmo("serve", "--addr", f"127.0.0.1:{free_port()}")
    assert result.returncode != 0
    assert "--auth-token" in result.stderr and "BMO_AUTH_TOKEN" in result.stderr
    assert "--allow-no-auth" in result.stderr
    assert "Traceback" not in result.stderr


def test_allow_no_auth_on_a_non_loopback_address_refuses(run_bmo):
    result = run_bmo("serve", "--allow-no-auth", "--addr", f"0.0.0.0:{free_port()}")
    assert result.returncode != 0
    assert "loopback" in result.stderr and "0.0.0.0" in result.stderr


def test_an_empty_token_refuses(run_bmo):
    result = run_bmo("serve", "--addr", f"127.0.0.1:{free_port()}", env={"BMO_AUTH_TOKEN": ""})
    assert result.returncode != 0


def test_a_malformed_addr_refuses_with_an_example(run_bmo):
    result = run_bmo("serve", "--allow-no-auth", "--addr", "localhost")
    assert result.returncode != 0 and "127.0.0.1:9000" in result.stderr


def test_a_token_on_a_non_loopback_bind_starts_with_the_warning(tmp_path):
    server = spawn_serve(["--addr", "0.0.0.0:0"], data_dir=tmp_path / "data",
                         env=clean_env(tmp_path, BMO_AUTH_TOKEN="tok", BMO_LOAD_PLUGINS=""))
    try:
        assert server.url, server.stderr()
        assert "warning: BMO is bound to a non-loopback address (0.0.0.0:0)" in server.stderr()
        port = server.url.rsplit(":", 1)[1]
        assert get(f"http://127.0.0.1:{port}/v1/bmo/plugins", "tok") == 200
    finally:
        assert server.terminate() == 0
    log = (tmp_path / "data" / "logs" / "bmo.jsonl").read_text()
    assert '"msg":"bmo.unsafe_bind"' in log


def test_allow_no_auth_on_loopback_serves_without_a_token(tmp_path):
    server = spawn_serve(["--allow-no-auth", "--addr", "127.0.0.1:0"], data_dir=tmp_path / "data",
                         env=clean_env(tmp_path, BMO_LOAD_PLUGINS=""))
    try:
        assert "auth: none" in server.stderr(), server.stderr()
        assert get(server.url + "/v1/bmo/plugins", "") == 200
    finally:
        assert server.terminate(signal.SIGINT) == 0


def test_sigterm_leaves_a_clean_database_with_every_committed_row(tmp_path):
    data_dir = tmp_path / "data"
    server = spawn_serve(["--auth-token", "tok", "--addr", "127.0.0.1:0"], data_dir=data_dir,
                         env=clean_env(tmp_path, BMO_LOAD_PLUGINS="hello"))
    try:
        assert server.url, server.stderr()
        # Every 200 from /v1/hello means its visit row was committed before the response.
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda i: get(f"{server.url}/v1/hello?name=n{i}", "tok"), range(60)))
        assert statuses == [200] * 60
    finally:
        code = server.terminate(signal.SIGTERM)
    assert code == 0, server.stderr()
    assert "Traceback" not in server.stderr()
    conn = apsw.Connection(str(data_dir / "bmo.sqlite3"), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        names = {row[0] for row in conn.execute("SELECT name FROM hello_visits")}
        assert names == {f"n{i}" for i in range(60)}
    finally:
        conn.close()
    # The WAL was checkpointed into the main file on the way out.
    assert not (data_dir / "bmo.sqlite3-wal").exists() or (data_dir / "bmo.sqlite3-wal").stat().st_size == 0
    messages = [json.loads(line)["msg"] for line in (data_dir / "logs" / "bmo.jsonl").read_text().splitlines()]
    assert messages[-1] == "bmo.stopped" and "bmo.stopping" in messages


def test_a_port_in_use_is_a_clear_error(run_bmo):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_bmo("serve", "--allow-no-auth", "--addr", f"127.0.0.1:{port}", env={"BMO_LOAD_PLUGINS": ""})
    assert result.returncode == 1
    assert f"cannot bind 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr


def test_without_a_data_dir_setting_data_goes_under_xdg_state_home(tmp_path):
    env = clean_env(tmp_path, BMO_LOAD_PLUGINS="", BMO_DATA_DIR="")  # empty: not set
    server = spawn_serve(["--allow-no-auth", "--addr", "127.0.0.1:0"], data_dir=tmp_path / "unused", env=env)
    try:
        expected = tmp_path / "xdg-state" / "bmo"
        assert f"data: {expected})" in server.stderr(), server.stderr()
    finally:
        assert server.terminate() == 0
    assert (expected / "bmo.sqlite3").is_file() and (expected / "logs" / "bmo.jsonl").is_file()
    assert (expected.stat().st_mode & 0o777) == 0o700


def _started_record(data_dir) -> dict:
    lines = (data_dir / "logs" / "bmo.jsonl").read_text().splitlines()
    return next(json.loads(line) for line in lines if '"msg":"bmo.started"' in line)


def test_serve_runs_on_uvloop_by_default_and_on_asyncio_when_configured(tmp_path):
    for choice, expected in (("auto", "uvloop"), ("asyncio", "asyncio")):
        data_dir = tmp_path / choice
        server = spawn_serve(["--allow-no-auth", "--addr", "127.0.0.1:0"], data_dir=data_dir,
                             env=clean_env(tmp_path, BMO_LOAD_PLUGINS="", BMO_OPTIONS__HTTP_SERVER__EVENT_LOOP=choice))
        try:
            assert get(server.url + "/v1/bmo/plugins", "") == 200, server.stderr()
        finally:
            assert server.terminate() == 0, server.stderr()
        assert _started_record(data_dir)["event_loop"] == expected


def test_an_unknown_event_loop_is_a_config_error_naming_the_key(run_bmo):
    result = run_bmo("serve", "--allow-no-auth", "--addr", f"127.0.0.1:{free_port()}",
                     env={"BMO_OPTIONS__HTTP_SERVER__EVENT_LOOP": "trio", "BMO_LOAD_PLUGINS": ""})
    assert result.returncode == 2
    assert "options.http_server.event_loop" in result.stderr and "trio" in result.stderr
