"""The PostgreSQL plumbing without a server: placeholders, URL redaction, and the skip-or-fail rule of the test cluster."""

from __future__ import annotations

import pytest


def test_placeholders_become_psycopgs_and_quoted_text_casts_and_percent_are_kept():
    from bmo.store.postgres.dialect import translate

    sql = "SELECT '?:x', \"a?\", ?, :name, v::text, '50%' -- what?\nFROM t WHERE body LIKE 'a%' AND n = :n"
    assert translate(sql, True) == (
        "SELECT '?:x', \"a?\", %s, %(name)s, v::text, '50%%' -- what?\nFROM t WHERE body LIKE 'a%%' AND n = %(n)s")
    assert translate("SELECT '50%' WHERE x = 1", False) == "SELECT '50%' WHERE x = 1"  # no parameters: as it is


def test_an_insert_names_its_table_for_the_new_id():
    from bmo.store.postgres.dialect import inserted_table

    assert inserted_table("  insert into openai_compat_runs (a) VALUES (?)") == "openai_compat_runs"
    assert inserted_table("UPDATE runs SET x = ?") is None


def test_a_store_url_is_shown_without_its_password():
    from bmo.store.urls import redacted_url

    assert redacted_url("postgresql://bmo:s3cret@db:5432/bmo?sslmode=require&password=x") == \
        "postgresql://bmo:***@db:5432/bmo?sslmode=require&password=***"
    assert redacted_url("postgresql://bmo@db/bmo") == "postgresql://bmo@db/bmo"


def test_an_unknown_store_url_says_what_to_write(tmp_path):
    from bmo.store import StoreUrlError, database_for

    with pytest.raises(StoreUrlError, match="postgresql://"):
        database_for("mysql://x@y/z", tmp_path)


def test_without_postgresql_a_test_skips_with_the_reason(monkeypatch):
    from bmo.testing.fixtures import _postgres_unavailable

    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no initdb here"):
        _postgres_unavailable("no initdb here")


def test_under_ci_without_postgresql_a_test_fails(monkeypatch):
    from bmo.testing.fixtures import _postgres_unavailable

    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required under CI=true: no initdb here"):
        _postgres_unavailable("no initdb here")


def test_the_cluster_says_how_to_install_postgresql_when_it_finds_none(monkeypatch):
    from bmo.testing import postgres

    monkeypatch.setattr(postgres.shutil, "which", lambda name: None)
    monkeypatch.setattr(postgres.glob, "glob", lambda pattern: [])
    with pytest.raises(postgres.PostgresUnavailable, match="apt-get install postgresql"):
        postgres.find_postgres_bin()
