"""The SQLite store: migrations, the batching writer, isolated failures, non-blocking reads, flush on close."""

from __future__ import annotations

import asyncio
import threading

import apsw
import pytest

from bmo.store import Database, Migration, StoreError

NOTES = Migration("notes", 1, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL UNIQUE)")


async def open_db(tmp_path, *migrations: Migration) -> Database:
    db = Database(tmp_path / "bmo.sqlite3")
    await db.open(migrations or (NOTES,))
    return db


async def test_each_migration_is_applied_once_per_owner_and_version(tmp_path):
    v2 = Migration("notes", 2, "ALTER TABLE notes ADD COLUMN tag TEXT; CREATE INDEX notes_tag ON notes(tag)")
    other = Migration("other", 1, "CREATE TABLE other (x INTEGER)")
    db = await open_db(tmp_path, NOTES, v2, other)
    await db.write("INSERT INTO notes (body, tag) VALUES (?, ?)", ("kept", "t"))
    await db.close()

    # Reopening with the same migrations must not run them again (CREATE TABLE would fail).
    db = await open_db(tmp_path, NOTES, v2, other)
    try:
        rows = await db.fetchall("SELECT owner, version FROM bmo_migrations ORDER BY owner, version")
        assert rows == [{"owner": "notes", "version": 1}, {"owner": "notes", "version": 2}, {"owner": "other", "version": 1}]
        assert await db.fetchall("SELECT body, tag FROM notes") == [{"body": "kept", "tag": "t"}]
    finally:
        await db.close()


async def test_a_failing_migration_fails_open_and_records_nothing(tmp_path):
    bad = Migration("bad", 1, "CREATE TABLE t (x); THIS IS NOT SQL")
    db = Database(tmp_path / "bmo.sqlite3")
    with pytest.raises(StoreError):
        await db.open([bad])
    await db.close()
    conn = apsw.Connection(str(tmp_path / "bmo.sqlite3"))
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "t" not in tables
    conn.close()


async def test_concurrent_writes_share_transactions(tmp_path):
    db = await open_db(tmp_path)
    gate = threading.Event()

    def first(conn):
        gate.wait(10)  # hold the writer so the other jobs queue up behind this one
        conn.execute("INSERT INTO notes (body) VALUES ('first')")

    try:
        before = db.transactions
        futures = [db.write_soon(first)]
        for i in range(50):
            futures.append(db.write_soon(lambda conn, i=i: conn.execute("INSERT INTO notes (body) VALUES (?)", (f"n{i}",))))
        gate.set()
        await asyncio.gather(*futures)
        assert (await db.fetchone("SELECT count(*) AS n FROM notes"))["n"] == 51
        # 51 jobs, at most two commits: the held job's batch and everything queued behind it.
        assert db.transactions - before <= 2
    finally:
        await db.close()


async def test_a_failing_job_fails_only_its_own_future(tmp_path):
    db = await open_db(tmp_path)
    try:
        gate = threading.Event()
        hold = db.write_soon(lambda conn: gate.wait(10))
        ok1 = db.write_soon(lambda conn: conn.execute("INSERT INTO notes (body) VALUES ('a')"))
        dup = db.write_soon(lambda conn: conn.execute("INSERT INTO notes (body) VALUES ('a')"))  # UNIQUE violation

        def partly_then_raise(conn):
            conn.execute("INSERT INTO notes (body) VALUES ('rolled back')")
            raise RuntimeError("job bug")

        buggy = db.write_soon(partly_then_raise)
        ok2 = db.write_soon(lambda conn: conn.execute("INSERT INTO notes (body) VALUES ('b')"))
        gate.set()
        await hold
        await ok1
        await ok2
        with pytest.raises(apsw.ConstraintError):
            await dup
        with pytest.raises(RuntimeError, match="job bug"):
            await buggy
        # Through the async API the store reports an SQLite failure as StoreError.
        with pytest.raises(StoreError, match="UNIQUE"):
            await db.write("INSERT INTO notes (body) VALUES ('b')")
        rows = await db.fetchall("SELECT body FROM notes ORDER BY id")
        assert [r["body"] for r in rows] == ["a", "b"]
    finally:
        await db.close()


async def test_reads_do_not_wait_for_a_running_write(tmp_path):
    db = await open_db(tmp_path)
    await db.write("INSERT INTO notes (body) VALUES ('committed')")
    in_write = threading.Event()
    release = threading.Event()

    def long_write(conn):
        conn.execute("INSERT INTO notes (body) VALUES ('uncommitted')")
        in_write.set()
        release.wait(10)

    try:
        pending = db.write_soon(long_write)
        assert await asyncio.to_thread(in_write.wait, 10)
        # The writer holds an open transaction; a read still answers, from the last commit.
        rows = await asyncio.wait_for(db.fetchall("SELECT body FROM notes"), 10)
        assert rows == [{"body": "committed"}]
        assert not pending.done()
        release.set()
        await pending
        assert len(await db.fetchall("SELECT body FROM notes")) == 2
    finally:
        release.set()
        await db.close()


async def test_close_flushes_queued_writes(tmp_path):
    db = await open_db(tmp_path)
    futures = [db.write_soon(lambda conn, i=i: conn.execute("INSERT INTO notes (body) VALUES (?)", (f"q{i}",)))
               for i in range(200)]
    await db.close()
    assert all(f.done() and f.exception() is None for f in futures)
    with pytest.raises(StoreError, match="closed"):
        await db.write("INSERT INTO notes (body) VALUES ('late')")
    conn = apsw.Connection(str(tmp_path / "bmo.sqlite3"))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT count(*) FROM notes").fetchall() == [(200,)]
    finally:
        conn.close()
