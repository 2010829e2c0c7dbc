"""``bmo store migrate`` and ``bmo store check`` on both backends, as a real subprocess."""

from __future__ import annotations

import json


def store_env(tmp_path, store_url: str) -> dict[str, str]:
    env = {"BMO_DATA_DIR": str(tmp_path / "data"), "BMO_LOAD_PLUGINS": "openai_compat"}
    return {**env, "BMO_STORE_URL": store_url} if store_url else env


def test_migrate_then_check_says_the_store_is_sound_and_current(run_bmo, tmp_path, store_url):
    env = store_env(tmp_path, store_url)
    first = run_bmo("store", "migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert "applied" in first.stdout and "openai_compat:1" in first.stdout and "agent:1" in first.stdout
    again = run_bmo("store", "migrate", env=env)
    assert again.returncode == 0 and "up to date" in again.stdout, again.stdout + again.stderr
    checked = run_bmo("store", "check", "--json", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    assert report["ok"] is True and report["pending"] == [] and report["integrity"] == "ok"
    assert report["engine"].startswith("PostgreSQL " if store_url else "SQLite ")


def test_check_of_an_unmigrated_store_names_what_is_pending_and_fails(run_bmo, tmp_path, store_url, store_backend):
    env = store_env(tmp_path, store_url)
    if store_backend == "sqlite":  # an empty SQLite file: check never creates one
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "bmo.sqlite3").touch()
    checked = run_bmo("store", "check", env=env)
    assert checked.returncode == 1
    assert "0 applied" in checked.stdout and "openai_compat:1" in checked.stdout and "bmo store migrate" in checked.stdout


def test_check_without_a_sqlite_file_says_where_it_looked(run_bmo, tmp_path):  # SQLite only: a missing file
    checked = run_bmo("store", "check", env=store_env(tmp_path, ""))
    assert checked.returncode == 1 and "no database at" in checked.stderr


def test_a_postgresql_password_is_never_printed(run_bmo, tmp_path, postgres_cluster):
    url = postgres_cluster.new_store_url().replace("postgres@", "postgres:s3cret-pw@")  # trust auth ignores it
    done = run_bmo("store", "migrate", env=store_env(tmp_path, url))
    assert done.returncode == 0, done.stderr
    assert "postgres:***@" in done.stdout and "s3cret-pw" not in done.stdout + done.stderr
    shown = run_bmo("config", "show", env=store_env(tmp_path, url))
    assert "s3cret-pw" not in shown.stdout + shown.stderr


def test_an_unreachable_postgresql_is_a_clear_error_without_its_address(run_bmo, tmp_path, postgres_cluster):
    from bmo.testing.harness import free_port

    url = f"postgresql://bmo:pw@127.0.0.1:{free_port()}/nothing"  # nothing listens there
    checked = run_bmo("store", "check", env=store_env(tmp_path, url))
    assert checked.returncode == 1 and "refused the connection" in checked.stdout
    assert "Traceback" not in checked.stderr
