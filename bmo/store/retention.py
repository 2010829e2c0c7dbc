"""Retention: old rows of the store's table families go, in small batches through the one writer.

A family (``ledger``, ``runs``, ``audit``, ``sessions``, ``responses``) is one or more :class:`Rule` s, each a
primary table whose old rows go together with the rows that hang off them. A row goes when it is
older than the family's ``max_age_days`` or beyond its newest ``max_rows`` (0 turns a limit off);
unfinished rows never go. Each batch is one short writer job, and the pruner yields between
batches, so request writes queued meanwhile run in between instead of waiting for the whole prune.
Tables of a plugin that is not installed are skipped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from bmo.store.database import Database
from bmo.store.sql_dialect import table_names

# Between two batches: long enough for queued request writes to get the writer first.
PAUSE_S = 0.005


@dataclass(frozen=True)
class Rule:
    family: str
    table: str
    key: str  # the column a batch selects and the dependents' conditions match
    time_column: str
    iso_time: bool  # TEXT ISO-8601 (the ledger) rather than epoch seconds
    order: str  # newest last: the ``max_rows`` newest by this column stay
    keep: str = "1=1"  # rows that may go at all (never unfinished ones)
    # (table, condition on {keys}): rows that hang off the deleted ones, deleted first.
    dependents: tuple[tuple[str, str], ...] = ()


RULES = (
    Rule("ledger", "openai_compat_runs", "request_id", "started_at", True, "id", "status != 'running'",
         (("openai_compat_run_events", "request_id IN ({keys})"),)),
    Rule("runs", "runs", "id", "started_at", False, "started_at", "outcome IS NOT NULL",
         (("run_steps", "run_id IN ({keys})"),)),
    Rule("audit", "operation_audit", "id", "time", False, "id"),
    # An "always" decision of a live session is a grant still in force, not a record.
    Rule("audit", "permission_decisions", "id", "decided_at", False, "decided_at",
         "(decision != 'always' OR session_id NOT IN (SELECT id FROM sessions))"),
    Rule("sessions", "sessions", "id", "updated_at", False, "updated_at",
         "id NOT IN (SELECT session_id FROM runs WHERE outcome IS NULL)",
         (("run_steps", "run_id IN (SELECT id FROM runs WHERE session_id IN ({keys}))"),
          ("runs", "session_id IN ({keys})"), ("session_messages", "session_id IN ({keys})"),
          ("permission_decisions", "session_id IN ({keys})"), ("session_summaries", "session_id IN ({keys})"))),
    # A stored response holds its input items and body in its row; its session is the `sessions` family's,
    # as DELETE /v1/responses/{id} leaves it. One still being answered stays.
    Rule("responses", "openai_compat_responses", "response_id", "created_at", False, "created_at",
         "status NOT IN ('in_progress', 'queued')"),
)
FAMILIES = tuple(dict.fromkeys(rule.family for rule in RULES))


@dataclass(frozen=True)
class Cut:
    """One rule's limits made concrete for one pass: the time and order values rows must be below."""

    rule: Rule
    before_time: Any = None
    upto_order: Any = None

    def where(self) -> tuple[str, tuple]:
        limits, params = [], []
        if self.before_time is not None:
            limits.append(f"{self.rule.time_column} < ?")
            params.append(self.before_time)
        if self.upto_order is not None:
            limits.append(f"{self.rule.order} <= ?")
            params.append(self.upto_order)
        return f"({' OR '.join(limits)}) AND {self.rule.keep}", tuple(params)


def cuts_for(conn: Any, retention: Any, now: float | None = None) -> list[Cut]:
    """The pass's cuts: every rule whose family has a limit and whose tables exist."""
    now = time.time() if now is None else now
    tables = table_names(conn)
    cuts = []
    for rule in RULES:
        limits = getattr(retention, rule.family)
        if rule.table not in tables or not (limits.max_age_days or limits.max_rows):
            continue
        before = None
        if limits.max_age_days:
            moment = now - limits.max_age_days * 86400
            before = _iso(moment) if rule.iso_time else moment
        upto = None
        if limits.max_rows:
            row = conn.execute(f"SELECT {rule.order} FROM {rule.table} ORDER BY {rule.order} DESC LIMIT 1 OFFSET ?",
                               (limits.max_rows,)).fetchall()
            if row:
                upto = row[0][0]
            elif before is None:
                continue  # fewer rows than the limit and no age limit: nothing to do
        if before is None and upto is None:
            continue
        cuts.append(Cut(rule, before, upto))
    return cuts


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dependent_where(condition: str, keys_sql: str) -> str:
    return condition.format(keys=keys_sql)


def batch_job(cut: Cut, batch_rows: int) -> Callable[[Any], dict[str, int]]:
    """A writer job deleting up to ``batch_rows`` rows of the cut (and what hangs off them)."""
    where, params = cut.where()
    rule = cut.rule

    def job(conn: Any) -> dict[str, int]:
        keys = [k for (k,) in conn.execute(f"SELECT {rule.key} FROM {rule.table} WHERE {where} LIMIT ?",
                                           (*params, batch_rows)).fetchall()]
        deleted: dict[str, int] = {}
        if not keys:
            return deleted
        marks = ", ".join("?" for _ in keys)
        for table, condition in rule.dependents:
            conn.execute(f"DELETE FROM {table} WHERE {_dependent_where(condition, marks)}", keys)
            deleted[table] = deleted.get(table, 0) + conn.changes()
        conn.execute(f"DELETE FROM {rule.table} WHERE {rule.key} IN ({marks})", keys)
        deleted[rule.table] = deleted.get(rule.table, 0) + conn.changes()
        deleted["_keys"] = len(keys)
        return deleted

    return job


def count_job(cut: Cut) -> Callable[[Any], dict[str, int]]:
    """A read job: how many rows the cut would delete, per table (``--dry-run``)."""
    where, params = cut.where()
    rule = cut.rule

    def job(conn: Any) -> dict[str, int]:
        keys_sql = f"SELECT {rule.key} FROM {rule.table} WHERE {where}"
        counts = {rule.table: conn.execute(f"SELECT COUNT(*) FROM ({keys_sql}) AS doomed", params).fetchall()[0][0]}
        for table, condition in rule.dependents:
            sql = f"SELECT COUNT(*) FROM {table} WHERE {_dependent_where(condition, keys_sql)}"
            counts[table] = counts.get(table, 0) + conn.execute(sql, params).fetchall()[0][0]
        return counts

    return job


def _add(total: dict[str, dict[str, int]], family: str, counts: dict[str, int]) -> None:
    into = total.setdefault(family, {})
    for table, n in counts.items():
        if not table.startswith("_"):
            into[table] = into.get(table, 0) + n


async def preview(db: Database, retention: Any) -> dict[str, dict[str, int]]:
    """What a prune would delete now: rows per table, per family."""
    cuts = await db.run_read(lambda conn: cuts_for(conn, retention))
    total: dict[str, dict[str, int]] = {}
    for cut in cuts:
        _add(total, cut.rule.family, await db.run_read(count_job(cut)))
    return _nonzero(total)


async def prune(db: Database, retention: Any,
                on_batch: Callable[[str, dict[str, int]], Awaitable[None] | None] | None = None
                ) -> dict[str, dict[str, int]]:
    """Delete what the retention settings let go, one small writer job at a time; rows per table, per family."""
    cuts = await db.run_read(lambda conn: cuts_for(conn, retention))
    total: dict[str, dict[str, int]] = {}
    for cut in cuts:
        while True:
            counts = await db.run_write(batch_job(cut, retention.batch_rows))
            _add(total, cut.rule.family, counts)
            if on_batch is not None:
                waited = on_batch(cut.rule.family, counts)
                if waited is not None:
                    await waited
            if counts.get("_keys", 0) < retention.batch_rows:
                break
            await asyncio.sleep(PAUSE_S)
    return _nonzero(total)


def _nonzero(total: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """The families with something to delete, so a preview and its prune name the same ones."""
    return {family: tables for family, tables in total.items() if any(tables.values())}
