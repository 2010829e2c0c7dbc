"""One compat request, observed: its ledger row and timeline, its two records, its span.

``fire()`` writes the ``openai_compat.fired`` record, opens the request's OpenTelemetry span (a
child of the host's HTTP span, which itself continues the caller's W3C ``traceparent`` when one
is sent) and queues the ledger row (``status = running``) with the first timeline event, without
waiting for the disk. Timeline events collect in memory. ``finish()`` runs exactly once: it
writes the collected events, the terminal event and the row's outcome in one ledger write (the
only one a request waits for), then the ``openai_compat.action`` record and the span's end.
"""

from __future__ import annotations

import asyncio
import os
import time
from contextlib import contextmanager
from typing import Any

import msgspec
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from bmo.store import Statement
from bmo.tracing.records import now_iso
from bmo_openai_compat.observe import outcomes
from bmo_openai_compat.observe.ledger import Ledger

UA_LIMIT_BYTES = 64
FIRED = "openai_compat.fired"
ACTION = "openai_compat.action"
# Events after which the request may wait a long time on something other than the model (a person,
# a tool): the timeline so far is sent to the ledger then, so an operator sees why it is waiting.
WAITING_EVENTS = frozenset({"permission_requested", "tool_started"})
# The span attribute name of each field (built once, not per request).
SPAN_KEYS = {k: f"openai_compat.{k}" for k in ("request_id", "session_id", "route", "kind", "tool_policy",
                                                "ambiguity_action", "model", "stream", "is_session_reuse", "client_ua")}
_UNSET = object()


def new_request_id() -> str:
    # 24 random hex digits, as uuid4().hex[:24] gave, at a tenth of its cost (no UUID object per request).
    return f"req_{os.urandom(12).hex()}"


def truncate_ua(value: str) -> str:
    """The User-Agent cut to 64 bytes without splitting a character."""
    return value.encode("utf-8")[:UA_LIMIT_BYTES].decode("utf-8", errors="ignore")


class CompatRequest:
    """Bookkeeping for one request of a compat route; fields fill in as the handler learns them."""

    def __init__(self, host, ledger: Ledger, options, request, route: str, *, kind: str = "chat"):
        self.host = host
        self.ledger = ledger
        self.request_id = new_request_id()
        self.route = route
        self.kind = kind
        self.session_id = ""
        self.tool_policy = options.tool_policy
        self.ambiguity_action = options.ambiguity_action
        self.model = ""
        self.stream = False
        self.is_session_reuse = False
        self.client_ua = truncate_ua(request.headers.get("User-Agent", ""))
        self.requester = ""
        self.run_id = ""
        self.started_at = now_iso()
        self._t0 = time.monotonic()
        self._seq = 0
        self.method = request.method
        self.path = request.path
        self.span = None
        self._span_fields: dict[str, Any] = {}  # the fields as the span started with them
        self.persist_failed = False
        self._inflight: list = []  # ledger writes queued without waiting; checked at finish
        self._timeline: list = []  # event statements not yet handed to the ledger
        self.fired = False
        self.outcome: str | None = None
        self.status: int | None = None

    # -- fields shared by both records, the row and the span -------------------------------
    def fields(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "session_id": self.session_id,
            "route": self.route,
            "kind": self.kind,
            "tool_policy": self.tool_policy,
            "ambiguity_action": self.ambiguity_action,
            "model": self.model,
            "stream": self.stream,
            "is_session_reuse": self.is_session_reuse,
            "client_ua": self.client_ua,
        }

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self._t0) * 1000)

    # -- lifecycle ----------------------------------------------------------------------
    async def fire(self) -> None:
        """Route entry: the fired record, the span, the ledger row and the ``received`` event."""
        if self.fired:
            return
        self.fired = True
        fields = self.fields()
        self.host.emit(FIRED, "info", **fields)
        tracer = self.host.tracer  # the started host always has one
        self._span_fields = fields
        self.span = tracer.start_span(
            f"openai_compat.{self.route}", kind=SpanKind.INTERNAL,
            attributes={
                **{SPAN_KEYS.get(k) or f"openai_compat.{k}": v for k, v in fields.items()},
                "http.request.method": self.method,
                "url.path": self.path,
                "user_agent.original": self.client_ua,
            },
        )
        row = {**fields, "status": "running", "requester": self.requester, "started_at": self.started_at}
        if self.ledger.holder is not None:  # a shared store: the row names its process
            row.update(self.ledger.holder)
        # Not awaited: the in-flight row is for operators (and survives a crash); finish checks it landed.
        self._inflight.append(self.ledger.submit([
            Ledger.insert_run(row),
            self._event_statement("received", {"path": self.path, "method": self.method}),
        ]))

    @contextmanager
    def active(self):
        """Make the request's span current, so the agent's model and tool spans become its children."""
        if self.span is None:
            yield
            return
        with trace.use_span(self.span, end_on_exit=False):
            yield

    async def event(self, name: str, **detail: Any) -> None:
        """Add a timeline event; it reaches the ledger with ``finish`` (or sooner, see WAITING_EVENTS).

        Never waits for the disk and never raises.
        """
        if not self.fired or self.outcome is not None:
            return
        self._timeline.append(self._event_statement(name, detail))
        if name in WAITING_EVENTS:
            self._inflight.append(self.ledger.submit(self._timeline))
            self._timeline = []

    def set(self, **fields: Any) -> None:
        """Fill in fields learned after entry; the row and the span get them at the end."""
        for key, value in fields.items():
            setattr(self, key, value)

    async def finish(self, outcome: str, status: int, *, error: str | None = None, **detail: Any) -> None:
        """The terminal event, row update, ``openai_compat.action`` record and span end; once."""
        if self.outcome is not None:
            return
        if not self.fired:
            await self.fire()
        if self._inflight:
            # Usually landed long ago; the terminal event must know whether they did.
            pending = [f for f in self._inflight if not f.done()]
            if pending:
                await asyncio.gather(*(asyncio.shield(f) for f in pending))
            self._note(all(f.result() for f in self._inflight))
            self._inflight = []
        served = outcome
        if self.persist_failed:
            outcome = outcomes.PERSIST_FAILED
        self.outcome, self.status = outcome, status
        elapsed = self.elapsed_ms()
        detail = {**detail, "status": status}
        if error:
            detail["error"] = error
        if served != outcome:
            detail["served_outcome"] = served
        error_class = outcomes.error_class_of(outcome, status)
        final = self._final_fields(outcome, status, elapsed, error)
        final["error_class"] = error_class
        timeline, self._timeline = self._timeline, []
        ended_at = now_iso()
        ok = await self.ledger.write([
            *timeline,
            self._event_statement("terminal", detail, terminal=True, outcome=outcome, elapsed=elapsed, at=ended_at),
            Ledger.update_run(self.request_id, final),
        ])
        if not ok and outcome != outcomes.PERSIST_FAILED:
            # The terminal write waits for replay; make the replayed row tell the same story.
            self.persist_failed = True
            served, outcome = outcome, outcomes.PERSIST_FAILED
            self.outcome = outcome
            error_class = outcomes.error_class_of(outcome, status)
            self.ledger.keep_for_replay([
                Ledger.update_run(self.request_id, {"outcome": outcome, "error_class": error_class}),
                # The whole detail, not SQLite's json_set: one text for both backends.
                Statement(
                    "UPDATE openai_compat_run_events SET outcome = ?, detail = ? WHERE request_id = ? AND terminal = 1",
                    (outcome, msgspec.json.encode({**detail, "served_outcome": served}).decode(), self.request_id)),
            ])
        # Counted as served whether or not the ledger took it: the posture shows what clients got.
        self.ledger.counts.served(route=self.route, kind=self.kind, client_ua=self.client_ua,
                                  request_id=self.request_id, outcome=outcome, elapsed_ms=elapsed, at=ended_at)
        record = {**self.fields(), "outcome": outcome, "error_class": error_class, "status": status,
                  "elapsed_ms": elapsed, "run_id": self.run_id, "requester": self.requester}
        if error:
            record["error"] = error
        if served != outcome:
            record["served_outcome"] = served
        self.host.emit(ACTION, outcomes.level_of(outcome, error_class), **record)
        self._end_span(outcome, status, error, served, error_class)

    # -- internals ----------------------------------------------------------------------
    def _final_fields(self, outcome: str, status: int, elapsed: int, error: str | None) -> dict[str, Any]:
        return {
            **self.fields(), "status": "finished", "outcome": outcome, "http_status": status,
            "run_id": self.run_id, "requester": self.requester, "finished_at": now_iso(),
            "elapsed_ms": elapsed, "error": error,
        }

    def _event_statement(self, name: str, detail: dict, *, terminal: bool = False,
                         outcome: str | None = None, elapsed: int | None = None, at: str | None = None):
        self._seq += 1
        return Ledger.insert_event(
            self.request_id, self._seq, name, at or now_iso(),
            self.elapsed_ms() if elapsed is None else elapsed, detail, terminal=terminal, outcome=outcome,
        )

    def _note(self, ok: bool) -> None:
        if not ok:
            self.persist_failed = True

    def _end_span(self, outcome: str, status: int, error: str | None, served: str, error_class: str) -> None:
        if self.span is None:
            return
        final: dict[str, Any] = {}
        if error_class:
            final["openai_compat.error_class"] = error_class
        started = self._span_fields
        for key, value in self.fields().items():
            # Setting an attribute costs microseconds: only the fields learned after the span started.
            before = started.get(key, _UNSET)
            if before is _UNSET or type(before) is not type(value) or before != value:
                final[SPAN_KEYS.get(key) or f"openai_compat.{key}"] = value
        final["openai_compat.outcome"] = outcome
        final["openai_compat.run_id"] = self.run_id
        final["http.response.status_code"] = status
        if served != outcome:
            final["openai_compat.served_outcome"] = served
        self.span.set_attributes(final)
        if error_class in (outcomes.UPSTREAM, outcomes.SERVER):  # a client's mistake is not the server's error
            self.span.set_status(Status(StatusCode.ERROR, error or outcome))
        self.span.end()
