"""A session: a conversation with a bound model, durable in the store or held in memory only."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bmo.agent.history import History
from bmo.agent.messages import ChatMessage


@dataclass
class Session:
    """A conversation. An ephemeral one created by this process lives in memory only.

    ``_memory`` holds the history of such a session (None for a session kept in the store);
    it is lost with the process, which is the point: a throw-away conversation costs no
    database work.
    """

    id: str
    model: str
    created_by: str
    created_at: float
    updated_at: float
    ephemeral: bool = False
    origin: str = "native"
    parent_run_id: str | None = None
    _store: Any = field(default=None, repr=False, compare=False)
    _memory: list[ChatMessage] | None = field(default=None, repr=False, compare=False)

    @property
    def in_memory(self) -> bool:
        """True when the session has no row in the store (an ephemeral session of this process)."""
        return self._memory is not None

    async def messages(self) -> list[ChatMessage]:
        """The full history, BMO's own tool calls and results included."""
        if self._memory is not None:
            return list(self._memory)
        return await self._store.messages(self.id)

    async def history(self) -> History:
        """The history with seqs and the version it was read at: read once per turn, passed to ``start_run``."""
        if self._memory is not None:
            n = len(self._memory)
            return History(list(self._memory), list(range(1, n + 1)), [None] * n, (n, 0))
        return await self._store.history(self.id)

    async def append(self, messages: list[ChatMessage], run_id: str | None, *, interrupted: bool = False) -> None:
        """Add messages to the history (persisted, unless the session lives in memory).

        ``interrupted`` marks the partial answer of a stopped run (a column of its row).
        """
        if self._memory is not None:
            self._memory.extend(messages)
            self.updated_at = time.time()
            return
        await self._store.append_messages(self.id, messages, run_id, interrupted=interrupted)

    def forget_after(self, seq: int) -> None:
        """In memory only: drop what follows message ``seq`` (1-based), as a fork of a stored session sets it aside."""
        if self._memory is not None:
            del self._memory[seq:]

    def describe(self) -> dict:
        return {"id": self.id, "object": "bmo.session", "model": self.model, "created_by": self.created_by,
                "created_at": self.created_at, "updated_at": self.updated_at, "ephemeral": self.ephemeral,
                "origin": self.origin, "parent_run_id": self.parent_run_id}

    @classmethod
    def from_row(cls, row: dict, store: Any) -> Session:
        return cls(id=row["id"], model=row["model"], created_by=row["created_by"], created_at=row["created_at"],
                   updated_at=row["updated_at"], ephemeral=bool(row["ephemeral"]), origin=row["origin"],
                   parent_run_id=row.get("parent_run_id"), _store=store)
