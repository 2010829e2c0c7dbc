"""A session's history as read once per turn, and its forks: a point to go on from, the rest set aside.

A fork never deletes: the messages after the fork point get the fork's number in
``session_messages.set_aside`` and stop being part of the history; ``session_forks`` says
where each fork was made and why. The history a turn read carries a ``version`` so the
write that starts the turn can refuse to build on a history that changed meanwhile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import msgspec

from bmo.agent.messages import ChatMessage

MIGRATIONS = [
    # Forks: rows set aside by fork N keep their seq; interrupted marks the partial answer of a stopped run.
    (5, """
ALTER TABLE session_messages ADD COLUMN set_aside INTEGER;
ALTER TABLE session_messages ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0;
CREATE TABLE session_forks (
    session_id TEXT NOT NULL,
    fork INTEGER NOT NULL,
    at_seq INTEGER NOT NULL,
    set_aside INTEGER NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    run_id TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (session_id, fork)
);
"""),
]


class HistoryChanged(Exception):
    """The session's history changed between the read a turn was planned on and the turn's start."""

    def __init__(self, session_id: str):
        super().__init__(f"the history of session {session_id} changed while this turn was being prepared")
        self.session_id = session_id


@dataclass
class History:
    """The session's messages in order, with their ``seq`` and ``run_id``; ``version`` dates the read."""

    messages: list[ChatMessage] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    run_ids: list[str | None] = field(default_factory=list)
    version: tuple[int, int] = (0, 0)  # (highest seq ever written, forks made)

    def upto(self, seq: int) -> list[ChatMessage]:
        """The messages at or before ``seq``: what a fork at ``seq`` keeps."""
        return [m for m, s in zip(self.messages, self.seqs) if s <= seq]

    def start(self, fork: Fork | None, new: list[ChatMessage]) -> list[ChatMessage]:
        """What a run starts from: this history (up to the fork, if any), then the new messages."""
        return (self.upto(fork.at_seq) if fork is not None else list(self.messages)) + list(new)


@dataclass(frozen=True)
class Fork:
    """Set aside every message after ``at_seq`` (0: all of them) before the turn starts."""

    at_seq: int
    reason: str = ""


# Plain ``?`` twice, not ``?1``: PostgreSQL's adapter translates positional marks only.
_VERSION_SQL = ("SELECT (SELECT COALESCE(MAX(seq), 0) FROM session_messages WHERE session_id = ?),"
                " (SELECT COUNT(*) FROM session_forks WHERE session_id = ?)")


def read_history(conn, session_id: str) -> History:
    """A reader job: the active messages of a session and the version they were read at."""
    history = History()
    decode = msgspec.json.Decoder(ChatMessage).decode
    for seq, run_id, body in conn.execute(
            "SELECT seq, run_id, message FROM session_messages WHERE session_id = ? AND set_aside IS NULL"
            " ORDER BY seq", (session_id,)):
        history.messages.append(decode(body))
        history.seqs.append(seq)
        history.run_ids.append(run_id)
    history.version = tuple(conn.execute(_VERSION_SQL, (session_id, session_id)).fetchall()[0])
    return history


def check_version(conn, session_id: str, version: tuple[int, int]) -> None:
    """In the writer: refuse to go on when the history is not the one that was read."""
    if tuple(conn.execute(_VERSION_SQL, (session_id, session_id)).fetchall()[0]) != tuple(version):
        raise HistoryChanged(session_id)


def fork(conn, session_id: str, at: Fork, run_id: str | None) -> dict:
    """In the writer: set aside what follows ``at.at_seq``; the fork's row, as a dict."""
    number = conn.execute("SELECT COUNT(*) FROM session_forks WHERE session_id = ?", (session_id,)).fetchall()[0][0] + 1
    conn.execute("UPDATE session_messages SET set_aside = ? WHERE session_id = ? AND seq > ? AND set_aside IS NULL",
                 (number, session_id, at.at_seq))
    moved = conn.changes()
    row = {"session_id": session_id, "fork": number, "at_seq": at.at_seq, "set_aside": moved, "reason": at.reason,
           "run_id": run_id, "created_at": time.time()}
    conn.execute("INSERT INTO session_forks (session_id, fork, at_seq, set_aside, reason, run_id, created_at)"
                 " VALUES (:session_id, :fork, :at_seq, :set_aside, :reason, :run_id, :created_at)", row)
    return row


def read_branches(conn, session_id: str) -> list[dict]:
    """A reader job: the session's forks, each with the messages it set aside (oldest fork first)."""
    forks = [dict(zip(("fork", "at_seq", "set_aside", "reason", "run_id", "created_at"), r)) for r in conn.execute(
        "SELECT fork, at_seq, set_aside, reason, run_id, created_at FROM session_forks WHERE session_id = ?"
        " ORDER BY fork", (session_id,))]
    by_fork: dict[int, list[dict]] = {f["fork"]: [] for f in forks}
    for seq, number, role, body, interrupted in conn.execute(
            "SELECT seq, set_aside, role, message, interrupted FROM session_messages"
            " WHERE session_id = ? AND set_aside IS NOT NULL ORDER BY seq", (session_id,)):
        by_fork.setdefault(number, []).append({"seq": seq, "role": role, "interrupted": bool(interrupted),
                                               "message": msgspec.json.decode(body)})
    for f in forks:
        f["messages"] = by_fork.get(f["fork"], [])
    return forks
