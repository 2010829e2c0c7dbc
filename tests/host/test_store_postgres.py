"""What only a server store does: the PostgreSQL server stops mid-test and comes back (a real throw-away cluster)."""

from __future__ import annotations

import asyncio

import pytest

from bmo.store import StoreError, database_for


from bmo.testing.postgres import internals_of, server_down


async def test_writes_fail_while_the_server_is_down_and_the_writer_reconnects(tmp_path, postgres_cluster):
    db = database_for(postgres_cluster.new_store_url(), tmp_path)
    await db.open()
    try:
        await db.write("CREATE TABLE notes (body TEXT NOT NULL)")
        await db.write("INSERT INTO notes (body) VALUES ('before')")
        with server_down(postgres_cluster):
            with pytest.raises(StoreError) as down:
                async with asyncio.timeout(30):  # the point: an error at once, never a hang
                    await db.write("INSERT INTO notes (body) VALUES ('while down')")
            assert down.value.status == 503 and "PostgreSQL server" in str(down.value)
            assert not any(part in str(down.value) for part in internals_of(postgres_cluster)), down.value
            assert db.failing is not None and db.writer_alive
            with pytest.raises(StoreError):
                await db.fetchall("SELECT body FROM notes")
        await db.write("INSERT INTO notes (body) VALUES ('after')")
        assert db.failing is None and db.writer_alive
        assert [r["body"] for r in await db.fetchall("SELECT body FROM notes ORDER BY body")] == ["after", "before"]
    finally:
        await db.close()
