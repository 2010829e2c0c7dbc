"""Running counters behind the posture: seeded once from the ledger at start-up, kept up to date in memory.

The posture and the TUI sidebar (every few seconds) read these instead of counting whole tables.
Requests are counted when they are served, saved or not (a degraded ledger still shows them);
``runs`` and ``events`` count the rows that did land. A recount every ``RESEED_S`` follows
retention passes that delete old rows.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter, deque
from typing import Any

from bmo_openai_compat.observe import outcomes

# Retention prunes rows while serving: recount this often so the numbers follow it (a scan per 10 min, not per call).
RESEED_S = 600.0
MAX_USER_AGENTS = 10_000  # distinct User-Agents tracked; later new ones are not counted (bounded memory)
LAST = 5
_RUNS_INSERT = "INSERT INTO openai_compat_runs "
_EVENTS_INSERT = "INSERT INTO openai_compat_run_events "


class LedgerCounts:
    """Ledger size, per-route and per-kind counts, top User-Agents and the last chat outcomes."""

    def __init__(self) -> None:
        self.seeded_at: float | None = None
        self.runs = 0
        self.events = 0
        self.routes: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.user_agents: Counter[str] = Counter()
        self.last: deque[dict] = deque(maxlen=LAST)

    @property
    def seeded(self) -> bool:
        """Counted, and recently enough that a retention pass since would show."""
        return self.seeded_at is not None and time.monotonic() - self.seeded_at < RESEED_S

    async def seed(self, db) -> None:
        """Count what the ledger holds (at start-up, then every RESEED_S)."""
        self.routes.clear()
        self.kinds.clear()
        self.user_agents.clear()
        self.last.clear()
        size = await db.fetchone("SELECT COUNT(*) AS n FROM openai_compat_runs")
        events = await db.fetchone("SELECT COUNT(*) AS n FROM openai_compat_run_events")
        self.runs = size["n"] if size else 0
        self.events = events["n"] if events else 0
        for row in await db.fetchall("SELECT route, kind, COUNT(*) AS n FROM openai_compat_runs GROUP BY route, kind"):
            self.routes[row["route"]] += row["n"]
            self.kinds[row["kind"]] += row["n"]
        for row in await db.fetchall("SELECT client_ua, COUNT(*) AS n FROM openai_compat_runs GROUP BY client_ua"
                                     f" ORDER BY n DESC LIMIT {MAX_USER_AGENTS}"):
            self.user_agents[row["client_ua"]] = row["n"]
        marks = ", ".join("?" * len(outcomes.CHAT_ROUTES))
        last = await db.fetchall(
            "SELECT e.request_id, e.outcome, e.elapsed_ms, e.at FROM openai_compat_run_events e"
            " JOIN openai_compat_runs r ON r.request_id = e.request_id"
            f" WHERE e.terminal = 1 AND r.route IN ({marks}) ORDER BY e.id DESC LIMIT {LAST}",
            tuple(outcomes.CHAT_ROUTES))
        self.last.extend(reversed([dict(r) for r in last]))
        self.seeded_at = time.monotonic()

    def served(self, *, route: str, kind: str, client_ua: str, request_id: str, outcome: str, elapsed_ms: int,
               at: str) -> None:
        """One request ended (whether or not its row was saved)."""
        self.routes[route] += 1
        self.kinds[kind] += 1
        if client_ua in self.user_agents or len(self.user_agents) < MAX_USER_AGENTS:
            self.user_agents[client_ua] += 1
        if route in outcomes.CHAT_ROUTES:
            self.last.append({"request_id": request_id, "outcome": outcome, "elapsed_ms": elapsed_ms, "at": at})

    def wrote(self, statements: list) -> None:
        """Rows that landed: count the inserts (of any ``(sql, params)`` pair, a Statement or a plain tuple)."""
        for statement in statements:
            sql = statement[0]
            if sql.startswith(_EVENTS_INSERT):
                self.events += 1
            elif sql.startswith(_RUNS_INSERT):
                self.runs += 1

    def summary(self) -> dict[str, Any]:
        top = heapq.nsmallest(LAST, self.user_agents.items(), key=lambda kv: (-kv[1], kv[0]))
        return {
            "runs": self.runs, "events": self.events,
            "routes": dict(sorted(self.routes.items())), "kinds": dict(sorted(self.kinds.items())),
            "top_user_agents": [{"client_ua": ua, "count": n} for ua, n in top],
            "last_outcomes": list(reversed(self.last)),  # newest first, as the ledger query gave them
        }
