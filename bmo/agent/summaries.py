"""A session's compaction summary, kept so a later turn reuses it instead of summarising the same turns again.

The summary covers the first ``covers`` messages after the system prompt; ``digest`` is the
SHA-256 of those messages as sent. A later turn whose history starts with the same messages
(same digest) reuses it; a fork or edit inside that range changes the digest, so the summary
is not used and the next one replaces it. In-memory sessions keep theirs for the run only.
"""

from __future__ import annotations

import hashlib
import time

import msgspec

from bmo.agent.messages import ChatMessage

MIGRATIONS = [
    # One summary per session: the newest, with the message range it covers and that range's digest.
    (8, """
CREATE TABLE session_summaries (
    session_id TEXT PRIMARY KEY,
    covers INTEGER NOT NULL,
    digest TEXT NOT NULL,
    summary TEXT NOT NULL,
    run_id TEXT,
    created_at REAL NOT NULL
);
"""),
]

_ENCODE = msgspec.json.Encoder().encode


class Summary(msgspec.Struct, frozen=True):
    covers: int  # how many messages after the system prompt it stands for
    digest: str  # of those messages (see ``digest``)
    text: str


def digest(messages: list[ChatMessage]) -> str:
    h = hashlib.sha256()
    for m in messages:
        encoded = _ENCODE(m)
        h.update(len(encoded).to_bytes(8, "big"))  # length-prefixed: no two message lists hash alike by joining
        h.update(encoded)
    return h.hexdigest()


class SummaryStore:
    """One session's stored summary, read and replaced through the host's writer."""

    def __init__(self, db, session_id: str, run_id: str):
        self.db = db
        self.session_id = session_id
        self.run_id = run_id

    async def load(self) -> Summary | None:
        row = await self.db.fetchone("SELECT covers, digest, summary FROM session_summaries WHERE session_id = ?",
                                     (self.session_id,))
        return Summary(row["covers"], row["digest"], row["summary"]) if row else None

    async def save(self, summary: Summary) -> None:
        await self.db.write(
            "INSERT INTO session_summaries (session_id, covers, digest, summary, run_id, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(session_id) DO UPDATE SET covers = excluded.covers,"
            " digest = excluded.digest, summary = excluded.summary, run_id = excluded.run_id,"
            " created_at = excluded.created_at",
            (self.session_id, summary.covers, summary.digest, summary.text, self.run_id, time.time()))
