"""A request whose own rows landed but whose terminal write did not: the replay tells the served outcome, on both backends."""

from __future__ import annotations

import asyncio

import pytest
from compat_support import MODEL

from bmo.store import Statement
from bmo.store.errors import StoreError
from bmo.testing.fake_upstream import reply
from bmo.testing.store_access import raw_connection
from bmo_openai_compat.observe.ledger import Ledger

# Only the terminal update of a run row is refused: the row and its first events are in the ledger already.
BLOCK = {
    "sqlite": ["CREATE TRIGGER block_finish BEFORE UPDATE ON openai_compat_runs WHEN NEW.status = 'finished'"
               " BEGIN SELECT RAISE(ABORT, 'blocked'); END"],
    "postgresql": ["CREATE FUNCTION block_finish() RETURNS trigger LANGUAGE plpgsql AS"
                   " $$ BEGIN RAISE EXCEPTION 'blocked'; END $$",
                   "CREATE TRIGGER block_finish BEFORE UPDATE ON openai_compat_runs FOR EACH ROW"
                   " WHEN (NEW.status = 'finished') EXECUTE FUNCTION block_finish()"],
}
UNBLOCK = {"sqlite": ["DROP TRIGGER block_finish"],
           "postgresql": ["DROP TRIGGER block_finish ON openai_compat_runs", "DROP FUNCTION block_finish()"]}


async def test_a_failed_terminal_write_is_replayed_as_persist_failed_with_the_served_outcome(
        compat, store_url, store_backend):
    store = (store_url, compat.host.data_dir)
    client = compat.aclient()
    compat.model.answer(reply("late answer", delay_s=0.5))
    request = asyncio.create_task(client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "x"}]))
    async with asyncio.timeout(10):  # the run's row is in the ledger before the answer comes
        while not (await compat.ledger.list_runs(limit=1))[0]:
            await asyncio.sleep(0.02)
    with raw_connection(*store) as conn:
        for sql in BLOCK[store_backend]:
            conn.execute(sql)
    try:
        async with asyncio.timeout(10):
            raw = await request
        assert raw.parse().choices[0].message.content == "late answer"
        request_id = raw.headers["x-request-id"]
        assert compat.ledger.degraded
    finally:
        with raw_connection(*store) as conn:
            for sql in UNBLOCK[store_backend]:
                conn.execute(sql)
    try:
        async with asyncio.timeout(10):
            await client.models.list()  # the next write lands and replays what was kept
            await compat.ledger.drain()
    finally:
        await client.close()
    assert not compat.ledger.degraded, compat.ledger.last_error
    row = await compat.ledger.get_run(request_id)
    assert (row["status"], row["outcome"], row["http_status"]) == ("finished", "persist_failed", 200)
    terminal = (await compat.timeline(request_id))[-1]
    assert (terminal["terminal"], terminal["outcome"]) == (True, "persist_failed")
    assert terminal["detail"]["served_outcome"] == "final_answer" and terminal["detail"]["status"] == 200


class GatedStore:
    """A store whose next write waits for ``release``; it then lands or is refused, as told."""

    def __init__(self):
        self.landed: list[list] = []
        self.started = asyncio.Event()
        self._gate = asyncio.Event()
        self._refuse = False

    def release(self, *, refuse: bool = False) -> None:
        self._refuse = refuse
        self._gate.set()

    async def run_write(self, batch):
        self.started.set()
        await self._gate.wait()
        self._gate.clear()
        self.started.clear()
        if self._refuse:
            self._refuse = False
            raise StoreError("refused")
        self.landed.append([params[0] for _, params in batch.statements])


def statement(name: str) -> Statement:
    return Statement("INSERT INTO t (name) VALUES (?)", (name,))


@pytest.mark.parametrize("refuse", [False, True], ids=["write-lands", "write-refused"])
async def test_statements_kept_while_a_write_is_in_flight_are_replayed_by_the_next_write(refuse):
    store = GatedStore()
    ledger = Ledger(store, emit=lambda *args, **fields: None)
    async with asyncio.timeout(5):
        first = ledger.submit([statement("a")])
        await store.started.wait()
        ledger.keep_for_replay([statement("kept")])  # a request noting its replay while "a" is in flight
        store.release(refuse=refuse)
        assert await first is not refuse
        second = ledger.submit([statement("b")])
        await store.started.wait()
        store.release()
        assert await second
        await ledger.drain()
    expected = [["a"], ["kept", "b"]] if not refuse else [["a", "kept", "b"]]
    assert store.landed == expected
    assert not ledger.degraded and ledger._pending == []


async def test_a_write_that_lands_is_not_replayed_when_its_bookkeeping_fails(monkeypatch):
    store = GatedStore()
    ledger = Ledger(store, emit=lambda *args, **fields: None)
    ledger.keep_for_replay([statement("kept")])

    def broken(statements):
        monkeypatch.undo()
        raise AttributeError("'tuple' object has no attribute 'sql'")  # as a plain tuple once made it

    monkeypatch.setattr(ledger.counts, "wrote", broken)
    async with asyncio.timeout(5):
        first = ledger.submit([statement("a")])
        await store.started.wait()
        store.release()
        await asyncio.wait([first])  # settled, whatever happens after the write
        second = ledger.submit([statement("b")])
        await store.started.wait()
        store.release()
        assert await second
    assert store.landed == [["kept", "a"], ["b"]]
