"""The store and records writers under a full disk, a full queue and a dead thread (both store backends, a real tmpfs)."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from disk_mounts import fill, free, tmpfs

from bmo.store import BatchingStore, StoreError, StoreFull, database_for
from bmo.tracing.records import RecordLog


async def open_db(path, url: str = "", **kwargs) -> BatchingStore:
    db = database_for(url, path, **kwargs)
    await db.open()
    await db.write("CREATE TABLE notes (body TEXT NOT NULL)")
    return db


def insert(body: str):
    return lambda conn: conn.execute("INSERT INTO notes (body) VALUES (?)", (body,))


async def test_a_full_write_queue_refuses_at_once_and_shows_its_depth(tmp_path, store_url):
    db = await open_db(tmp_path, store_url, max_pending=5)
    started, release = threading.Event(), threading.Event()

    def blocker(conn):
        started.set()
        release.wait(30)

    try:
        held = db.write_soon(blocker)
        await asyncio.to_thread(started.wait, 30)
        queued = [db.write_soon(insert(f"n{i}")) for i in range(8)]
        assert db.queue_depth == 5
        refused = [f for f in queued if f.done()]
        assert len(refused) == 3 and all(isinstance(f.exception(), StoreError) for f in refused)
        assert "behind" in str(refused[0].exception()) and db.refused == 3
        release.set()
        await held
        await asyncio.gather(*queued[:5])
        assert (await db.fetchone("SELECT COUNT(*) AS n FROM notes"))["n"] == 5
        assert db.queue_depth == 0
    finally:
        release.set()
        await db.close()


async def test_a_writer_thread_that_dies_fails_every_pending_and_later_write(tmp_path, store_url):
    db = await open_db(tmp_path, store_url)
    started, release = threading.Event(), threading.Event()

    def blocker(conn):
        started.set()
        release.wait(30)

    real_run_batch = db._run_batch
    calls = 0

    def run_batch_then_break(conn, batch):
        nonlocal calls
        calls += 1
        if calls > 1:  # the batch after the blocker hits a bug in the writer itself
            raise RuntimeError("writer bug")
        real_run_batch(conn, batch)

    db._run_batch = run_batch_then_break
    try:
        held = db.write_soon(blocker)
        await asyncio.to_thread(started.wait, 30)
        pending = [db.write_soon(insert(f"p{i}")) for i in range(3)]
        release.set()
        await held
        async with asyncio.timeout(10):  # the point: an error, not a hang
            results = await asyncio.gather(*pending, return_exceptions=True)
        assert all(isinstance(r, StoreError) for r in results), results
        with pytest.raises(StoreError, match="writer"):
            async with asyncio.timeout(10):
                await db.write("INSERT INTO notes (body) VALUES ('later')")
        assert not db.writer_alive and "writer bug" in (db.last_error or "")
    finally:
        release.set()
        await db.close()


async def test_on_a_full_disk_each_write_fails_cleanly_and_the_store_recovers(tmp_path):  # SQLite: the data dir's disk
    with tmpfs(tmp_path / "disk", "1m") as disk:
        db = await open_db(disk)
        try:
            await db.write("INSERT INTO notes (body) VALUES ('before')")
            fill(disk)
            # One batch of small and large jobs: what each future says must be exactly what is stored.
            bodies = [("s" if i % 2 else "L") * (20 if i % 2 else 200_000) + str(i) for i in range(12)]
            results = await asyncio.gather(*(db.run_write(insert(b)) for b in bodies), return_exceptions=True)
            assert any(isinstance(r, StoreFull) for r in results), results
            assert all(r is None or not isinstance(r, BaseException) or isinstance(r, StoreFull) for r in results)
            stored = {r["body"] for r in await db.fetchall("SELECT body FROM notes")}
            acknowledged = {b for b, r in zip(bodies, results) if not isinstance(r, BaseException)}
            assert stored - {"before"} == acknowledged
            assert db.failing is not None and db.failing.status == 507 and "full" in db.last_error
            free(disk)
            await db.write("INSERT INTO notes (body) VALUES ('after')")
            assert db.failing is None and db.writer_alive
            assert (await db.fetchone("SELECT COUNT(*) AS n FROM notes WHERE body = 'after'"))["n"] == 1
            assert (await db.fetchone("PRAGMA integrity_check"))["integrity_check"] == "ok"
        finally:
            await db.close()


def test_the_records_writer_survives_a_full_disk_counts_drops_and_writes_again(tmp_path, capfd):
    with tmpfs(tmp_path / "disk", "1m") as disk:
        log = RecordLog(disk / "logs")
        try:
            log.emit("before")
            log.flush()
            fill(disk)
            for i in range(200):
                log.emit("while_full", i=i, pad="x" * 200)
            log.flush()
            status = log.status()
            assert status["writer"] == "running" and status["dropped"] == 200 and status["write_errors"] >= 1
            assert "No space left" in status["last_error"]
            free(disk)
            log.emit("after")
            log.flush()
            lines = [json.loads(line) for line in log.path.read_text().splitlines()]  # no half line was left
            assert [r["msg"] for r in lines if r["msg"] != "bmo.records.dropped"] == ["before", "after"]
            # The gap is reported in the log (once, or in parts when a report squeezed in while full).
            assert sum(r["dropped"] for r in lines if r["msg"] == "bmo.records.dropped") == 200
            status = log.status()
            assert status["written"] == 2 and status["dropped"] == 200 and status["degraded"] is False
            assert status["queue_depth"] == 0
        finally:
            log.close()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "cannot write records" in err


def test_the_records_queue_is_bounded_and_drops_are_counted(tmp_path):
    log = RecordLog(tmp_path / "logs", max_pending=10)
    try:
        for i in range(5000):
            log.emit("burst", i=i)
        log.flush()
        status = log.status()
        assert status["dropped"] > 0 and status["written"] + status["dropped"] == 5000
        assert status["max_queue"] == 10
    finally:
        log.close()
    lines = [json.loads(line) for line in log.path.read_text().splitlines()]
    assert sum(1 for r in lines if r["msg"] == "burst") == status["written"]
    # Each gap is reported by a bmo.records.dropped line once the writer catches up: together they count every drop.
    assert sum(r["dropped"] for r in lines if r["msg"] == "bmo.records.dropped") == status["dropped"]
