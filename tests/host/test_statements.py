"""The statement-batch API the agent store and the ledger share: builders, and a batch as one writer job."""

from __future__ import annotations

import apsw
import pytest

from bmo.store import Batch, Database, Migration, Statement, StoreError, Table

ITEMS = Table("items", ("id", "name", "done", "note"))
MIGRATION = Migration("items", 1, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
                                  " done INTEGER NOT NULL DEFAULT 0, note TEXT)")


def test_insert_takes_the_tables_columns_the_row_has_in_table_order():
    statement = ITEMS.insert({"note": "n", "name": "a", "done": True, "not_a_column": 1})
    assert statement == Statement("INSERT INTO items (name, done, note) VALUES (?, ?, ?)", ("a", 1, "n"))


def test_insert_with_columns_takes_exactly_those():
    assert ITEMS.insert({"id": 3, "name": "a", "note": None}, ("id", "name")) == Statement(
        "INSERT INTO items (id, name) VALUES (?, ?)", (3, "a"))


def test_insert_values_takes_a_whole_row_in_column_order():
    assert ITEMS.insert_values((1, "a", 0, None)) == Statement(
        "INSERT INTO items (id, name, done, note) VALUES (?, ?, ?, ?)", (1, "a", 0, None))


def test_update_sets_the_given_fields_and_never_the_key():
    statement = ITEMS.update(7, {"id": 9, "done": False, "note": "x"})
    assert statement == Statement("UPDATE items SET done = ?, note = ? WHERE id = ?", (0, "x", 7))


async def test_a_batch_is_one_job_that_lands_whole_or_not_at_all(tmp_path):
    db = Database(tmp_path / "bmo.sqlite3")
    await db.open([MIGRATION])
    try:
        jobs = db.jobs_run
        rowid = await db.run_write(Batch([ITEMS.insert({"name": "a"}), ITEMS.insert({"name": "b"})]))
        assert (rowid, db.jobs_run - jobs) == (2, 1)
        # The second statement breaks UNIQUE: the first one of that batch is rolled back with it,
        # while a job queued beside it in the same transaction still lands.
        failing = db.write_soon(Batch([ITEMS.insert({"name": "c"}), ITEMS.insert({"name": "a"})]))
        beside = db.write_soon(ITEMS.insert({"name": "d"}))
        with pytest.raises(apsw.ConstraintError):
            await failing
        assert await beside == 3
        rows = await db.fetchall("SELECT name FROM items ORDER BY id")
        assert [r["name"] for r in rows] == ["a", "b", "d"]
        with pytest.raises(StoreError, match="UNIQUE"):
            await db.run_write(ITEMS.insert({"name": "d"}))
    finally:
        await db.close()


async def test_write_is_one_statement_through_the_same_writer(tmp_path):
    db = Database(tmp_path / "bmo.sqlite3")
    await db.open([MIGRATION])
    try:
        jobs = db.jobs_run
        assert await db.write("INSERT INTO items (name) VALUES (?)", ("a",)) == 1
        await db.run_write(ITEMS.update(1, {"done": True}))
        assert (await db.fetchone("SELECT done FROM items"), db.jobs_run - jobs) == ({"done": 1}, 2)
    finally:
        await db.close()
