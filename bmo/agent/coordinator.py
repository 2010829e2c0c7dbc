"""The coordinator: sessions, runs, providers and permissions for one host.

This is the contract the HTTP surfaces build on (``bmo.agent.coordinator_of(host)``): create
or find a session, start a run on it and follow its events, answer permission challenges,
make one direct model call, cancel everything at shutdown. Each run's loop gets a
:class:`RunServices` from here and never sees the coordinator itself.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bmo.agent import run_outcomes
from bmo.agent.direct_calls import Completion, DirectModelCalls
from bmo.agent.errors import NoProviderConfigured, SessionBusy, UnknownModel, error_detail
from bmo.agent.events import RunFinished, TextDelta
from bmo.agent.history import Fork, History
from bmo.agent.loop import AgentLoop
from bmo.agent.messages import ChatMessage
from bmo.agent.permissions import PermissionBroker
from bmo.agent.recovery import close_runs
from bmo.agent.run import PERMISSION_MODES, Run, RunPolicy
from bmo.agent.services import RunServices, run_events
from bmo.agent.session import Session
from bmo.agent.spawning import spawn_sub_run
from bmo.agent.store import AgentStore
from bmo.cluster import store_is_shared
from bmo.cluster.shared_sessions import SharedSessions

if TYPE_CHECKING:
    from bmo.agent.answer_format import AnswerFormat

__all__ = ["Completion", "Coordinator", "Run", "RunPolicy", "Session"]

FINISHED_RUN_TTL_S = 600.0  # get_run still finds a run this long after it ended
MAX_FINISHED_RUNS = 10_000  # and at most this many finished runs are kept, however busy the server


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class Coordinator(DirectModelCalls):
    """Sessions, runs and providers of one host. Created by the agent plugin at startup."""

    def __init__(self, host: Any, providers: dict[str, Any] | None = None, tools: dict[str, Any] | None = None):
        self.host = host
        self.options = host.config.section("agent")
        self.loop_detection = host.config.section("agent.loop_detection")
        self.length_recovery = host.config.section("agent.length_recovery")
        self.providers: dict[str, Any] = dict(providers or {})
        # The registry itself, not a copy: plugins that connect tools at startup (MCP) add them there.
        self.tools: dict[str, Any] = tools if tools is not None else host.registry.tools
        self.store = AgentStore(host.db)
        self.workspace = Path(self.options.workspace).expanduser().resolve()
        self.permissions = PermissionBroker(self.store, self.options.permission_rules, self._record, self.workspace)
        self._runs: dict[str, Run] = {}
        # Finished runs in the order they ended, so pruning only ever looks at the oldest.
        self._finished: deque[tuple[float, Run]] = deque()
        self._active: dict[str, Run] = {}
        self._claims: dict[str, asyncio.Future] = {}  # run id -> its lease claim in flight (shared stores only)
        self._ephemeral: dict[str, Session] = {}  # ephemeral sessions live here only, never in the database
        self.finished_run_ttl_s = FINISHED_RUN_TTL_S
        self.max_finished_runs = MAX_FINISHED_RUNS
        self._run_started = asyncio.Event()  # replaced at every run start; follow() waits on it
        self._closed = False
        # Another server shares the store: busy sessions are leases there (None: this process's dict alone).
        self.cluster = SharedSessions.start_for(host, close_runs) if store_is_shared(host.config) else None
        if self.cluster is not None:  # a challenge of ours can be answered on any server, one elsewhere here
            self.permissions.shared, self.cluster.broker = self.cluster, self.permissions

    @property
    def closed(self) -> bool:
        """True once shutdown began: no new runs start."""
        return self._closed

    def _record(self, msg: str, level: str = "info", **fields: Any) -> None:
        self.host.emit(msg, level, **fields)

    # -- models --------------------------------------------------------------------
    async def discover_models(self) -> None:
        """Ask providers without a configured model list for theirs; a failure is recorded, not fatal."""
        async def one(name: str, provider: Any) -> None:
            try:
                await provider.discover()
                self._record("agent.provider.discovered", provider=name, models=len(provider.models))
            except Exception as exc:
                self._record("agent.provider.discovery_failed", "warn", provider=name, error=error_detail(exc))

        await asyncio.gather(*(one(n, p) for n, p in self.providers.items() if not p.models))

    def model_ids(self) -> list[str]:
        """Every ``NAME/model`` the providers serve (discovered at startup)."""
        return [f"{name}/{m}" for name, p in self.providers.items() for m in p.models]

    def default_model(self) -> str:
        """``[agent] default_model``, else the first model served; "" when there is none."""
        if self.options.default_model:
            return self.options.default_model
        ids = self.model_ids()
        return ids[0] if ids else ""

    def check_model(self, model: str) -> None:
        """Raise NoProviderConfigured or UnknownModel unless ``model`` can be served."""
        self.resolve_model(model)

    def resolve_model(self, model: str) -> tuple[Any, str]:
        """The provider and its upstream model name for ``NAME/model``."""
        if not self.providers:
            raise NoProviderConfigured()
        name, sep, upstream = (model or "").partition("/")
        provider = self.providers.get(name) if sep else None
        # A provider whose discovery failed lists nothing: let the upstream judge the name.
        if provider is None or not upstream or (provider.models and upstream not in provider.models):
            raise UnknownModel(model, self.model_ids())
        return provider, upstream

    # -- sessions ------------------------------------------------------------------
    async def create_session(self, *, session_id: str | None = None, model: str, requester: str = "",
                             ephemeral: bool = False, origin: str = "native", parent_run_id: str | None = None) -> Session:
        """A new session bound to ``model``; an existing ``session_id`` is returned as it is.

        An ephemeral session lives in this process's memory only: no row, no history and no
        audit of its creation or deletion in the database (its runs, tool executions and
        permission decisions are still recorded). Delete it when done.
        """
        if session_id:
            existing = await self.get_session(session_id)
            if existing is not None:
                return existing
        now = time.time()
        session = Session(id=session_id or new_id("sess"), model=model, created_by=requester, created_at=now,
                          updated_at=now, ephemeral=ephemeral, origin=origin, parent_run_id=parent_run_id,
                          _store=self.store, _memory=[] if ephemeral else None)
        if ephemeral:
            self._ephemeral[session.id] = session
            return session
        inserted = await self.store.insert_session({"id": session.id, "model": model, "created_by": requester,
                                                    "origin": origin, "ephemeral": int(ephemeral),
                                                    "parent_run_id": parent_run_id, "created_at": now, "updated_at": now})
        if not inserted:  # a concurrent first request created it a moment ago: that one is the session
            return await self.get_session(session.id)
        await self.store.audit("session.created", actor=requester, session_id=session.id, model=model, origin=origin,
                               ephemeral=ephemeral)
        return session

    async def get_session(self, session_id: str) -> Session | None:
        session = self._ephemeral.get(session_id)
        if session is not None:
            return session
        row = await self.store.session_row(session_id)
        return Session.from_row(row, self.store) if row else None

    async def list_sessions(self, *, limit: int = 20, after: str | None = None,
                            include_ephemeral: bool = False, created_by: str | None = None) -> list[Session]:
        """Newest first, ``limit`` at most, those older than session ``after``; in-memory ones only if asked.

        ``created_by`` limits the list to one owner's sessions (see ``bmo.agent.ownership``).
        """
        before = None
        if after:
            anchor = await self.get_session(after)
            if anchor is None or (created_by is not None and anchor.created_by != created_by):
                return []
            before = (anchor.created_at, anchor.id)
        rows = await self.store.session_rows(limit=limit, before=before, include_ephemeral=include_ephemeral,
                                             created_by=created_by)
        sessions = [Session.from_row(r, self.store) for r in rows]
        if include_ephemeral and self._ephemeral:
            sessions += [s for s in self._ephemeral.values() if (before is None or (s.created_at, s.id) < before)
                         and (created_by is None or s.created_by == created_by)]
            sessions.sort(key=lambda s: (s.created_at, s.id), reverse=True)
        return sessions[:limit]

    async def delete_session(self, session_id: str, requester: str = "") -> bool:
        """Delete a session and its history (cancelling its run, on any server); the audit keeps the fact of it."""
        run = self._active.get(session_id)
        if run is not None:
            run.cancel("session deleted")
            await asyncio.wait_for(asyncio.shield(run.wait()), 10)
        elif self.cluster is not None and session_id not in self._ephemeral:  # SessionBusy while a run elsewhere goes
            await self.cluster.stop_for_delete(session_id, requester, self.cancel_elsewhere)
        if self._ephemeral.pop(session_id, None) is not None:
            return True  # it only ever lived in memory: nothing to delete or audit in the database
        guard = self.cluster.unleased_job(session_id) if self.cluster is not None else None  # a claim since the wait
        deleted = await self.store.delete_session(session_id, guard=guard)
        if deleted:
            await self.store.audit("session.deleted", actor=requester, session_id=session_id)
        return deleted

    # -- runs ----------------------------------------------------------------------
    async def claim_settled(self, session_id: str) -> None:
        """Wait while this process's run on the session still claims its lease: a refused claim is no run to name."""
        while (run := self._active.get(session_id)) is not None and (claim := self._claims.get(run.id)) is not None:
            await asyncio.shield(claim)

    def active_run(self, session_id: str) -> Run | None:
        """The session's run that has not finished yet, if any."""
        run = self._active.get(session_id)
        return run if run is not None and not run.done else None

    def get_run(self, run_id: str) -> Run | None:
        """A running run, or one that finished within the last 10 minutes (the newest 10,000 at most)."""
        self._prune()
        return self._runs.get(run_id)

    def runs(self) -> list[Run]:
        self._prune()
        return list(self._runs.values())

    def _prune(self) -> None:
        """Forget finished runs past the TTL or the cap; O(1) amortised, it runs on every request."""
        finished = self._finished
        horizon = time.monotonic() - self.finished_run_ttl_s
        while finished and (finished[0][0] <= horizon or len(finished) > self.max_finished_runs):
            _, run = finished.popleft()
            if self._runs.get(run.id) is run:  # a later run may have reused the id
                del self._runs[run.id]

    def tools_for(self, policy: RunPolicy) -> dict[str, Any]:
        """The BMO tools a run with ``policy`` is offered."""
        if policy.allowed_classes is None:
            return dict(self.tools)
        return {n: t for n, t in self.tools.items() if t.tool_class in policy.allowed_classes}

    async def start_run(
        self, session: Session, new_messages: list[ChatMessage], *, policy: RunPolicy, model: str | None = None,
        client_tools: list[dict] | None = None, sampling: dict | None = None, requester: str = "",
        run_id: str | None = None, depth: int = 0, forward_to: Run | None = None,
        answer_format: AnswerFormat | None = None, tool_choice: object = None,
        history: History | None = None, fork: Fork | None = None, logged: bool = False,
    ) -> Run:
        """Append ``new_messages`` to the session and run the loop as a task.

        ``history`` is the session's history the caller already read (the loop then reads none);
        the run starts only if it is still current (else HistoryChanged). ``fork`` first sets aside
        what follows a point of it (see :mod:`bmo.agent.history`).

        ``answer_format`` holds the final answer to JSON or a schema (see :mod:`bmo.agent.answer_format`);
        ``tool_choice`` (an OpenAI ``tool_choice``) applies to the run's first model step only.

        Raises SessionBusy if the session already has a run going. ``depth`` and ``forward_to``
        are for sub-runs (spawn_agent). ``logged``: on a shared store, the run's events go to the event log
        even when its session is in memory (a keyed retry on another server follows them).
        """
        if self._closed:
            raise RuntimeError("the coordinator is shut down")
        if policy.permission_mode not in PERMISSION_MODES:
            raise ValueError(f"permission_mode must be one of {', '.join(PERMISSION_MODES)}, got {policy.permission_mode!r}")
        await self.claim_settled(session.id)
        busy = self._active.get(session.id)
        if busy is not None and not busy.done:
            raise SessionBusy(session.id, busy.id)
        self._prune()
        leased = self.cluster is not None and not session.in_memory  # a run in memory is nobody else's to see
        make = self.cluster.new_run if leased or (logged and self.cluster is not None) else Run
        run = make(run_id or new_id("run"), session.id, model or session.model, requester=requester, policy=policy)
        run.on_finish(self._retire)
        # Claimed before the first await, so two concurrent starts cannot both pass the busy check.
        self._active[session.id] = run
        self._runs[run.id] = run
        row = {"id": run.id, "session_id": session.id, "model": run.model, "origin": policy.origin,
               "requester": requester, "permission_mode": policy.permission_mode, "started_at": run.started_at,
               "parent_run_id": forward_to.id if forward_to is not None else None}
        if session.in_memory:
            # Nothing to wait for: the history is in memory, and the run's row is written once, when it ends.
            if fork is not None:
                session.forget_after(fork.at_seq)
            await session.append(list(new_messages), run.id)
        else:
            claim = self._claims[run.id] = asyncio.get_running_loop().create_future() if leased else None
            try:
                await self.store.begin_run(row, list(new_messages), fork=fork,
                                           version=history.version if history is not None else None,
                                           claim=self.cluster.claim(session.id, run.id) if leased else None)
            except BaseException as exc:
                self._active.pop(session.id, None)
                self._runs.pop(run.id, None)
                if claim is not None:
                    claim.set_result(exc)
                raise
            finally:
                self._claims.pop(run.id, None)
            if claim is not None:
                claim.set_result(None)
            row = None
            if leased:
                self.cluster.hold(run)
        self._record("agent.run.started", run_id=run.id, session_id=session.id, model=run.model, origin=policy.origin,
                     requester=requester, permission_mode=policy.permission_mode, depth=depth)
        loop = AgentLoop(self._services(run, depth, forward_to), run, session, client_tools=client_tools,
                         sampling=sampling, depth=depth, unwritten_run_row=row, answer_format=answer_format,
                         tool_choice=tool_choice,
                         history=history.start(fork, new_messages) if history is not None else None)
        task = asyncio.create_task(loop.drive(), name=f"bmo-run-{run.id}")
        run.attach(task)
        task.add_done_callback(lambda t, run=run: self._run_done(run, t))
        started, self._run_started = self._run_started, asyncio.Event()
        started.set()
        return run

    def _services(self, run: Run, depth: int, parent: Run | None) -> RunServices:
        """What ``run``'s loop may use: this coordinator's parts, bound to the run."""
        return RunServices(
            resolve_model=self.resolve_model, store=self.store, permissions=self.permissions, tools=self.tools,
            offered=self.tools_for(run.policy), workspace=self.workspace, options=self.options,
            loop_detection=self.loop_detection, length_recovery=self.length_recovery, emit=run_events(run, parent),
            record=self.host.emit, tracer=self.host.tracer, spawn=functools.partial(self.spawn, run, depth),
            tool_host=self.host, context=self.host.config.section("agent.context"),
            end_lease=functools.partial(self.cluster.end_job, run) if self.cluster is not None else None,
        )

    def _run_done(self, run: Run, task: asyncio.Task) -> None:
        if self._active.get(run.session_id) is run:
            del self._active[run.session_id]
        if not run.done:
            # Cancelled before the loop ever ran: still end the stream for every subscriber.
            run.emit(RunFinished(outcome=run_outcomes.CANCELLED, finish_reason="stop",
                                 error=f"run cancelled: {run.cancel_reason or 'cancelled'}"))
        if self.cluster is not None:
            self.cluster.release(run)

    def _retire(self, run: Run) -> None:
        """Called as a run emits its RunFinished: from now on it only waits to be pruned."""
        self._finished.append((time.monotonic(), run))

    async def next_run_started(self) -> None:
        """Wait until some run starts (for following a session's events)."""
        await self._run_started.wait()

    async def cancel_run(self, run: Run, reason: str = "cancelled", requester: str = "") -> None:
        run.cancel(reason)
        await self.store.audit("run.cancel_requested", actor=requester, session_id=run.session_id, run_id=run.id,
                               reason=reason)

    async def cancel_elsewhere(self, reason: str = "cancelled", requester: str = "", *, session_id: str | None = None,
                               run_id: str | None = None, wait_s: float = 30.0) -> dict | None:
        """Cancel a run another server sharing the store holds: its run row once it ended (or at ``wait_s``).

        None when no such run is going (or the store is not shared). Its holder notices within about a second.
        """
        if self.cluster is None:
            return None
        asked = await self.cluster.request_cancel(reason, session_id=session_id, run_id=run_id)
        if asked is None:
            return None
        await self.store.audit("run.cancel_requested", actor=requester, session_id=asked[1], run_id=asked[0],
                               reason=reason)
        return await self.cluster.wait_finished(asked[0], wait_s)

    # -- permissions ---------------------------------------------------------------
    async def decide_permission(self, permission_id: str, decision: str, requester: str = "") -> bool:
        """Answer a pending challenge (allow_once | always | deny); False if none is pending with that id."""
        return self.permissions.resolve(permission_id, decision, requester)

    def pending_permissions(self, session_id: str | None = None) -> list[dict]:
        return [p.describe() for p in self.permissions.pending_for(session_id)]

    # -- spawning ------------------------------------------------------------------
    async def spawn(self, parent: Run, depth: int, task: str) -> str:
        """Run ``task`` as a sub-run of ``parent`` (at ``depth``) under [agent.spawning] limits; its final text."""
        return await spawn_sub_run(self, parent, depth, task)

    # -- lifecycle -----------------------------------------------------------------
    async def shutdown(self) -> None:
        """Cancel every active run and wait (bounded) for each to record its end."""
        self._closed = True
        runs = [r for r in self._active.values() if not r.done]
        for run in runs:
            run.cancel("shutdown")
        if runs:
            await asyncio.wait([asyncio.ensure_future(r.wait()) for r in runs], timeout=10)
        if self.cluster is not None:
            await self.cluster.stop()
        for pending in self.permissions.pending_for():
            if not pending.future.done():
                pending.future.cancel()

    async def close_providers(self) -> None:
        for provider in self.providers.values():
            try:
                await provider.close()
            except Exception as exc:
                self._record("agent.provider.close_failed", "warn", provider=provider.name, error=str(exc))


def answer_text(events: list[Any]) -> str:
    """The answer text of a list of events (concatenated TextDelta)."""
    return "".join(e.text for e in events if isinstance(e, TextDelta))
