"""A run followed from the shared store's event log (``bmo.cluster.run_log.FollowedRun``), on both backends."""

from __future__ import annotations

import time

import msgspec

from bmo.agent.events import RunFinished, TextDelta
from bmo.cluster import run_log, schema
from bmo.store import database_for


class SeenSeqs:
    """A connection that notes the ``seq`` each read of the log starts after."""

    def __init__(self, conn, seen: list[int]):
        self.conn, self.seen = conn, seen

    def execute(self, sql, params=()):
        if "FROM run_event_log" in sql:
            self.seen.append(params[1])
        return self.conn.execute(sql, params)


async def test_wait_reads_the_log_on_from_where_its_events_got_to(tmp_path, store_url):
    db = database_for(store_url, tmp_path)
    await db.open()
    try:
        ddl = [s for s in schema.MIGRATIONS[0][1].split(";") if s.strip()]
        await db.run_write(lambda conn: [conn.execute(s) for s in ddl])
        events = [TextDelta(text="one"), TextDelta(text="two"), TextDelta(text="three"),
                  RunFinished(outcome="final_answer", finish_reason="stop")]
        rows = [("run_1", seq, type(e).__struct_config__.tag, msgspec.json.encode(e).decode(), time.time())
                for seq, e in enumerate(events, 1)]
        await db.run_write(lambda conn: [conn.execute(run_log.INSERT, row) for row in rows])
        seen: list[int] = []

        def read(job):
            return db.run_read(lambda conn: job(SeenSeqs(conn, seen)))

        followed = run_log.FollowedRun("run_1", "s", "", read)
        stream = followed.events()
        assert [await anext(stream), await anext(stream)] == events[:2]
        # The delivery got to the second row: wait() reads on after it, not from the first row again.
        assert (await followed.wait()) == events[-1]
        assert seen == [0, 2]
        assert [e async for e in stream] == events[2:]  # the delivery's own iteration is unchanged
        assert (await followed.wait()) == events[-1] and seen == [0, 2]  # ended: no read at all
        fresh = run_log.FollowedRun("run_1", "s", "", read)
        assert (await fresh.wait()) == events[-1] and fresh.done and seen == [0, 2, 0]
    finally:
        await db.close()
