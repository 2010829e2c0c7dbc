"""A session: a durable conversation with a bound model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bmo.agent.messages import ChatMessage


@dataclass
class Session:
    id: str
    model: str
    created_by: str
    created_at: float
    updated_at: float
    ephemeral: bool = False
    origin: str = "native"
    parent_run_id: str | None = None
    _store: Any = field(default=None, repr=False, compare=False)

    async def messages(self) -> list[ChatMessage]:
        """The full persisted history, BMO's own tool calls and results included."""
        return await self._store.messages(self.id)

    def describe(self) -> dict:
        return {"id": self.id, "object": "bmo.session", "model": self.model, "created_by": self.created_by,
                "created_at": self.created_at, "updated_at": self.updated_at, "ephemeral": self.ephemeral,
                "origin": self.origin, "parent_run_id": self.parent_run_id}

    @classmethod
    def from_row(cls, row: dict, store: Any) -> "Session":
        return cls(id=row["id"], model=row["model"], created_by=row["created_by"], created_at=row["created_at"],
                   updated_at=row["updated_at"], ephemeral=bool(row["ephemeral"]), origin=row["origin"],
                   parent_run_id=row.get("parent_run_id"), _store=store)
