"""The Responses API's stored responses (table ``openai_compat_responses``): response id → session, run, body.

A row is written when a stored response starts (so ``previous_response_id`` and cancel find it while
it runs) and updated with the final response object once the run ends. ``store: false`` writes none.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import msgspec

from bmo.store.sql_dialect import POSTGRESQL, SQLITE, dialect_of
from bmo_openai_compat import responses_wire as rw

# Two responses of a session stored in the same instant: SQLite breaks the tie by insertion order
# (rowid); PostgreSQL has no stable insertion order, so it breaks it by id.
_LATEST_SQL = {
    SQLITE: "SELECT response_id FROM openai_compat_responses WHERE session_id = ?"
            " ORDER BY created_at DESC, rowid DESC LIMIT 1",
    POSTGRESQL: "SELECT response_id FROM openai_compat_responses WHERE session_id = ?"
                " ORDER BY created_at DESC, response_id DESC LIMIT 1",
}


@dataclass
class StoredResponse:
    response_id: str
    request_id: str
    session_id: str
    run_id: str
    previous_response_id: str | None
    status: str
    history_len: int
    created_at: float
    input_items: bytes
    response: bytes

    def items(self) -> list[dict]:
        """The input items as stored (we wrote them from ``rw.StoredItem``s; each has ``id`` and ``type``)."""
        return msgspec.json.decode(self.input_items, type=list[dict])


class ResponseStore:
    """Reads and writes of ``openai_compat_responses`` through the host database's writer thread."""

    def __init__(self, db):
        self.db = db

    async def begin(self, response_id: str, *, request_id: str, session_id: str, run_id: str,
                    previous_response_id: str | None, input_items: list[rw.StoredItem],
                    response: rw.ResponseObject) -> None:
        await self.db.write(
            "INSERT INTO openai_compat_responses (response_id, request_id, session_id, run_id, previous_response_id,"
            " status, created_at, input_items, response) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (response_id, request_id, session_id, run_id, previous_response_id, response.status, time.time(),
             rw.encode(input_items).decode(), rw.encode(response).decode()))

    async def finish(self, response: rw.ResponseObject, history_len: int) -> None:
        await self.db.write(
            "UPDATE openai_compat_responses SET status = ?, history_len = ?, response = ? WHERE response_id = ?",
            (response.status, history_len, rw.encode(response).decode(), response.id))

    async def get(self, response_id: str) -> StoredResponse | None:
        row = await self.db.fetchone("SELECT * FROM openai_compat_responses WHERE response_id = ?", (response_id,))
        if row is None:
            return None
        return StoredResponse(**{**row, "input_items": row["input_items"].encode(),
                                 "response": row["response"].encode()})

    async def latest_in_session(self, session_id: str) -> str | None:
        def job(conn) -> str | None:
            rows = conn.execute(_LATEST_SQL[dialect_of(conn)], (session_id,)).fetchall()
            return rows[0][0] if rows else None

        return await self.db.run_read(job)

    async def delete(self, response_id: str) -> bool:
        def job(conn) -> bool:
            conn.execute("DELETE FROM openai_compat_responses WHERE response_id = ?", (response_id,))
            return conn.changes() > 0

        return await self.db.run_write(job)
