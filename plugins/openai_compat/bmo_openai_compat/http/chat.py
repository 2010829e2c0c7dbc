"""``POST /v1/chat/completions``: an OpenAI chat request in, BMO's agent loop behind it."""

from __future__ import annotations

import asyncio

import msgspec
from aiohttp import web

from bmo.agent import maybe_coordinator
from bmo.agent.errors import AgentError, NoProviderConfigured, SessionBusy, UnknownModel
from bmo.agent.history import HistoryChanged
from bmo.agent.ownership import may_reach
from bmo.server.app import get_host
from bmo.server.capacity import stream_slot
from bmo_openai_compat import wire
from bmo_openai_compat.ambiguity import asks_router, is_first_user_turn, route
from bmo_openai_compat.client_tools import select_client_tools
from bmo_openai_compat.content_parts import accepts_images
from bmo_openai_compat.http import follow, keyed_retry
from bmo_openai_compat.http.error_replies import (
    PreparedError,
    agent_error,
    compat_error,
    disabled_error,
    guarded,
    identity_headers,
    requester_of,
)
from bmo_openai_compat.observe import outcomes
from bmo_openai_compat.observe.compat_request import CompatRequest
from bmo_openai_compat.retries import IDEMPOTENCY_HEADER, check_key, intent_of, retries_of
from bmo_openai_compat.shared_keys import SharedKey
from bmo_openai_compat.sessions import RESUME_HEADER, SESSION_HEADER, check_session_id, to_agent
from bmo_openai_compat.state import advertised_model_ids, state_of
from bmo_openai_compat.stream.delivery import RunDelivery, deliver_text
from bmo_openai_compat.transcript import TRANSCRIPT_HEADER, Plan, plan_turn

TASK = "task"


async def chat_completions(request: web.Request) -> web.StreamResponse:
    host = get_host(request)
    state = state_of(host)
    if not state.options.enabled:
        raise disabled_error()
    rt = CompatRequest(host, state.ledger, state.options, request, outcomes.CHAT_COMPLETIONS)
    handler = ChatHandler(request, host, state, rt)
    return await guarded(rt, handler.handle, lambda: handler.session_header)


class ChatHandler:
    """One chat completions request, from body to delivered answer."""

    def __init__(self, request: web.Request, host, state, rt: CompatRequest):
        self.request = request
        self.host = host
        self.state = state
        self.options = state.options
        self.rt = rt
        self.session_header = ""  # the session id echoed in X-BMO-Session-Id
        self.idempotency_key = ""  # scoped by requester: one client's key never joins another's run
        self.whole_chat_client = False  # the session is keyed by a client that sends whole chats (a hook's key)
        self.found_session = None  # the session looked up before the fired record (is_session_reuse)
        self.shared_key: SharedKey | None = None  # the key's claim in a shared store (bmo_openai_compat.shared_keys)

    @property
    def coordinator(self):
        coordinator = maybe_coordinator(self.host)
        if coordinator is None:
            raise compat_error(503, "The agent core is not running on this server; no model can answer.")
        return coordinator

    async def handle(self) -> web.StreamResponse:
        request, rt, pm = self.request, self.rt, self.host.pm
        body = await request.read()
        try:
            req, raw = wire.decode_chat_request(body)
        except Exception:
            self._learn_from_raw(body)
            raise
        rt.set(model=req.model, stream=req.stream)
        session_id = request.headers.get(SESSION_HEADER, "")
        if session_id:
            session_id = check_session_id(session_id)
        else:
            hooked = pm.hook.bmo_openai_compat_session_key(request=request, body=raw)
            session_id = check_session_id(str(hooked), "bmo_openai_compat_session_key") if hooked else ""
            self.whole_chat_client = bool(session_id)
        kind = "task" if pm.hook.bmo_openai_compat_classify(request=request, body=raw) == TASK else "chat"
        if session_id and kind != TASK:  # looked up once, here: reuse means the session existed before this request
            self.found_session = await self.coordinator.get_session(session_id)
        rt.set(session_id=session_id, is_session_reuse=self.found_session is not None, kind=kind,
               requester=self._requester())
        await rt.fire()
        # A stream past [options.http_server] max_concurrent_streams is a 503 here, before any run starts.
        with stream_slot(self.host, req.stream), rt.active():  # spans of the router, model, tools nest under this one
            if kind == TASK:
                return await self._task(req)
            if session_id:
                self.session_header = session_id
            resume = request.headers.get(RESUME_HEADER, "").strip()
            if resume:
                return await self._resume(req, resume)
            key = request.headers.get(IDEMPOTENCY_HEADER)
            if key is None:
                return await self._chat(req, session_id)
            self.idempotency_key = f"{rt.requester}\x00{check_key(key)}"
            joined = await self._keyed_retry(req, session_id)
            if joined is not None:
                return joined
            try:
                return await self._chat(req, session_id)
            finally:
                retries_of(self.host).release(self.idempotency_key)  # no-op once a run started
                if self.shared_key is not None:
                    self.shared_key.release()

    # -- the three kinds of request ---------------------------------------------------
    async def _chat(self, req: wire.ChatCompletionRequest, session_id: str) -> web.StreamResponse:
        self._check_model(req.model)
        session, created = await self._session(req, session_id)
        try:
            return await self._converse(req, session, created)
        finally:
            if session.ephemeral:  # a throw-away conversation: nothing to come back to
                await self._forget(session.id)

    async def _converse(self, req: wire.ChatCompletionRequest, session, created: bool) -> web.StreamResponse:
        """Session in hand: busy check, model binding, router, then the run, delivered."""
        rt, coordinator = self.rt, self.coordinator
        if not session.ephemeral:
            await coordinator.claim_settled(session.id)  # only waits on a shared store, while a claim is in flight
            busy = coordinator.active_run(session.id)
            if busy is not None:
                if retries_of(self.host).same_intent(session.id, intent_of(session.id, req), busy.id):
                    return await self._join(req, busy, "identical_retry")
                raise self._queued(session.id, busy.id)
            if coordinator.cluster is not None and (elsewhere := await coordinator.cluster.busy_run_id(session.id)):
                # A run of ours that ended has its lease release queued ahead of our claim: not busy.
                if (mine := coordinator.get_run(elsewhere)) is None or not mine.done:
                    raise self._queued(session.id, elsewhere)  # the run goes on another server sharing the store
        run_model, success = None, outcomes.FINAL_ANSWER
        if not created and req.model != session.model:
            if self.options.model_override_policy == "reject":
                await rt.event("model_override_rejected", requested=req.model, session_model=session.model)
                raise compat_error(
                    400, f"This conversation runs on model {session.model!r}, so it cannot continue on {req.model!r}. "
                         f"Switch back to {session.model!r} or start a new chat for {req.model!r}. (Operators: "
                         "model_override_policy = \"allow_ephemeral\" under [options.openai_compat] allows it.)",
                    param="model", code="model_override_rejected", outcome=outcomes.MODEL_OVERRIDE_REJECTED)
            run_model, success = req.model, outcomes.MODEL_OVERRIDE_APPLIED
            await rt.event("model_override_applied", requested=req.model, session_model=session.model)
        plan, start = await self._reconcile(req, session, created)
        policy_kwargs = {}
        sampling = wire.sampling_of(req)
        answer_format = wire.answer_format_of(req)
        if answer_format is not None:
            await rt.event("response_format", format=answer_format.describe())
        # Under "code" every decision runs the full agent, so asking the router would only cost a model call.
        # A client that asks for a format or forces a tool runs a program: a clarifying question would break it.
        forced = req.tool_choice not in (None, "auto", "none")
        if (self.options.ambiguity_action != "code" and answer_format is None and not forced
                and is_first_user_turn(start) and asks_router(coordinator, req.model)):
            try:
                decision = await route(coordinator, req.model, start, sampling, conversation_id=session.id,
                                       run_id=rt.request_id)
            except AgentError as exc:  # the model is unreachable or refuses: the run would fail the same way
                # Said for the person in the chat; agent_error keeps the upstream's detail for the ledger.
                raise agent_error(exc, "BMO could not get an answer from the model to read your message (its first-turn "
                                       "router call): ") from None
            await rt.event("router", decision=decision.decision, action=self.options.ambiguity_action,
                           **({"note": decision.note} if decision.note else {}))
            if decision.ambiguous and self.options.ambiguity_action == "ask":
                return await deliver_text(
                    self.request, rt, decision.question, decision.usage, stream=req.stream,
                    include_usage=self._include_usage(req), model=req.model, headers=self._headers(),
                    outcome=outcomes.CLARIFICATION, finish_detail={"router": "ambiguous"},
                )
            if decision.ambiguous and self.options.ambiguity_action == "research":
                policy_kwargs["allowed_classes"] = frozenset({"read"})
        client_tools, tool_choice = None, None
        if req.tools:
            if self.options.tool_policy != "auto_approve":
                await rt.event("client_tools_ignored", count=len(req.tools), reason="tool_policy chat_only")
            elif req.tool_choice == "none":  # the client asked for no call of its tools on this turn
                await rt.event("tool_choice", choice="none", client_tools_offered=0)
            else:
                client_tools, withheld = select_client_tools(wire.client_tools_of(req), self.options.client_tools)
                if withheld:
                    await rt.event("client_tools_withheld", count=len(withheld), offered=len(client_tools),
                                   names=withheld[:20])
                client_tools = client_tools or None
                if forced and client_tools:
                    tool_choice = req.tool_choice
                    await rt.event("tool_choice", choice=req.tool_choice, first_step_only=True)
        if req.parallel_tool_calls is not None:
            sampling["parallel_tool_calls"] = req.parallel_tool_calls
        run = await self._start_run(session, plan, run_model, client_tools, sampling, policy_kwargs,
                                    answer_format=answer_format, tool_choice=tool_choice,
                                    intent=intent_of("" if session.ephemeral else session.id, req),
                                    durable=not session.ephemeral)
        return await RunDelivery(
            self.request, rt, run, stream=req.stream, include_usage=self._include_usage(req), model=req.model,
            headers=self._headers(), keepalive_s=self.options.keepalive_interval_s,
            # A keyed request's client announced it will retry: its run waits for the retry, not the connection.
            cancel_on_disconnect=not self.idempotency_key, success_outcome=success,
        ).respond()

    async def _resume(self, req: wire.ChatCompletionRequest, request_id: str) -> web.StreamResponse:
        return await follow.resume(self, req, request_id)

    async def _keyed_retry(self, req: wire.ChatCompletionRequest, session_id: str) -> web.StreamResponse | None:
        """The run an earlier request with this Idempotency-Key started, followed; None: this request starts it."""
        return await keyed_retry.join_or_claim(self, req, session_id)

    async def _join(self, req: wire.ChatCompletionRequest, run, joined_by: str) -> web.StreamResponse:
        """Follow ``run`` from its first event, as its starter does; outcome ``resumed``."""
        return await follow.join(self, req, run, joined_by)

    async def _task(self, req: wire.ChatCompletionRequest) -> web.StreamResponse:
        """A client's background task (title, tags, follow-ups): one model call, nothing else."""
        self._check_model(req.model)
        images = accepts_images(self.coordinator, req.model)
        messages = [to_agent(m, images=images, model=req.model) for m in req.messages]
        await self.rt.event("task_started", model=req.model)
        fmt = wire.answer_format_of(req)
        try:
            completion = await self.coordinator.complete(req.model, messages, sampling=wire.sampling_of(req),
                                                         response_format=fmt.upstream() if fmt else None)
        except AgentError as exc:
            raise agent_error(exc) from None
        if fmt is not None:  # one direct call: checked, but no repair step
            error = await asyncio.to_thread(fmt.check, fmt.extract(completion.text or ""))
            await self.rt.event("answer_checked", attempt=1, ok=error is None, format=fmt.describe(),
                                **({"error": error} if error else {}))
            if error is not None:
                raise compat_error(502, f"The model's answer does not meet the requested format: {error}",
                                   code="invalid_model_output")
            completion.text = fmt.extract(completion.text or "")
        return await deliver_text(
            self.request, self.rt, completion.text or "", completion.usage, stream=req.stream,
            include_usage=self._include_usage(req), model=req.model, headers=self._headers(),
            outcome=outcomes.FINAL_ANSWER, finish_detail={"finish_reason": completion.finish_reason},
        )

    # -- pieces -----------------------------------------------------------------------
    def _check_model(self, model: str) -> None:
        try:
            self.coordinator.check_model(model)
        except UnknownModel as exc:
            raise compat_error(404, str(exc), param="model", code="model_not_found") from None
        except NoProviderConfigured as exc:
            raise compat_error(exc.status, str(exc), param="model") from None
        advertised = advertised_model_ids(self.host)
        if model not in advertised:
            raise compat_error(404, f"The model {model!r} is not advertised here. Models: "
                                    f"{', '.join(advertised[:10]) or 'none'} (GET /v1/models lists them).",
                               param="model", code="model_not_found")

    async def _session(self, req: wire.ChatCompletionRequest, session_id: str):
        coordinator, rt = self.coordinator, self.rt
        common = {"model": req.model, "requester": rt.requester, "origin": "openai_compat"}
        if not session_id:
            session = await coordinator.create_session(ephemeral=True, **common)
            await rt.event("session", session_id=session.id, new_session=True, ephemeral=True)
            return session, True
        session = self.found_session
        if session is not None and not may_reach(session.created_by, rt.requester):
            # Another requester's session: refused as if it did not exist, and never created over it.
            raise compat_error(404, f"No session {session_id!r} for this requester; use another "
                                    f"{SESSION_HEADER} (a new id starts a new session).",
                               param=SESSION_HEADER, code="session_not_found")
        if session is not None:
            await rt.event("session", session_id=session_id, new_session=False, ephemeral=False)
            return session, False
        session = await coordinator.create_session(session_id=session_id, **common)
        await rt.event("session", session_id=session_id, new_session=True, ephemeral=False)
        return session, True

    async def _reconcile(self, req: wire.ChatCompletionRequest, session, created: bool):
        """The turn's plan against the session's history (read once, here) and the history the run starts from."""
        images = accepts_images(self.coordinator, req.model)
        parts = sum(isinstance(m.content, list) and any(p.type != "text" for p in m.content) for m in req.messages)
        if parts:
            await self.rt.event("content_parts", messages=parts, images_passed=images)
        messages = [to_agent(m, images=images, model=req.model) for m in req.messages]
        plan = await plan_turn(session, created, messages, mode=self.request.headers.get(TRANSCRIPT_HEADER),
                               whole_chat_client=self.whole_chat_client)
        start = plan.history.start(plan.fork, plan.append)
        if not plan.full and not plan.append and start and start[-1].role == "assistant":
            raise compat_error(400, "Nothing new to answer: this session's last message is already an answer and the "
                                    "request adds no user message. Send the next user message, or send the whole "
                                    f"chat (or header {TRANSCRIPT_HEADER}: full) to continue the last answer.",
                               param="messages")
        return plan, start

    async def _start_run(self, session, plan: Plan | list, run_model, client_tools, sampling, policy_kwargs, *,
                         answer_format=None, tool_choice=None, intent: str = "", durable: bool = True):
        if not isinstance(plan, Plan):  # the messages to append, as the Responses route plans its own turn
            plan = Plan(append=list(plan))
        from bmo.agent.coordinator import RunPolicy

        auto = self.options.tool_policy == "auto_approve"
        policy = RunPolicy(
            permission_mode="auto_approve" if auto else "ask",
            permission_timeout_s=self.options.permission_timeout_s,
            origin="openai_compat", announce_waits=not auto,
            **policy_kwargs,
        )
        try:
            run = await self.coordinator.start_run(
                session, plan.append, policy=policy, model=run_model, client_tools=client_tools,
                sampling=sampling or None, requester=self.rt.requester, run_id=self.rt.request_id,
                answer_format=answer_format, tool_choice=tool_choice, history=plan.history, fork=plan.fork,
                logged=self.shared_key is not None,  # a retry on another server follows it from the event log
            )
        except SessionBusy as exc:
            raise self._queued(session.id, exc.run_id) from None
        except HistoryChanged:
            raise compat_error(409, "This chat changed while BMO was preparing the answer (another message arrived "
                                    "at the same moment). Send your message again.",
                               code="session_changed", outcome=outcomes.QUEUED) from None
        retries_of(self.host).started(run, session.id, intent, self.idempotency_key, durable=durable)
        if self.shared_key is not None:
            self.shared_key.run_started(session.id)
        self.rt.set(run_id=run.id)
        if plan.fork is not None:
            await self.rt.event("session_forked", at_seq=plan.fork.at_seq, reason=plan.fork.reason,
                                common_turns=plan.common_turns, visible_turns=plan.visible_turns,
                                set_aside=plan.set_aside)
        last = (plan.history.start(plan.fork, plan.append) if plan.history is not None else plan.append)[-1:] or [None]
        if plan.history is not None and last[0] is not None and last[0].role == "assistant" and not last[0].tool_calls:
            await self.rt.event("continue_answer", chars=len(last[0].content or ""))
        await self.rt.event("run_started", run_id=run.id, model=run_model or session.model,
                            messages=len(plan.append), read_only=bool(policy_kwargs),
                            transcript="full" if plan.full else "delta")
        return run

    def _queued(self, session_id: str, running: str) -> PreparedError:
        body = wire.QueuedError(error=wire.QueuedErrorBody(
            # A chat UI shows the message to a person; the resume mechanics are for programs, in their own fields.
            message="BMO is still answering the previous message in this chat. Wait for that answer to finish "
                    "(or press Stop), then send your message again.",
            running_request_id=running, session_id=session_id,
            resume_hint=f"Send the request again with header {RESUME_HEADER}: {running} to follow the running answer.",
            resume_headers={RESUME_HEADER: running},
        ))
        return PreparedError(409, wire.encode(body), f"session {session_id} busy with request {running}",
                             outcomes.QUEUED, {"running_request_id": running})

    async def _forget(self, session_id: str) -> None:
        try:
            await self.coordinator.delete_session(session_id)
        except Exception as exc:  # noqa: BLE001 - a leftover ephemeral session is not the client's problem
            self.host.emit("openai_compat.session_cleanup_failed", "warn", session_id=session_id,
                           error=f"{type(exc).__name__}: {exc}")

    def _requester(self) -> str:
        return requester_of(self.host, self.request)

    def _headers(self) -> dict[str, str]:
        return identity_headers(self.rt, self.session_header)

    @staticmethod
    def _include_usage(req: wire.ChatCompletionRequest) -> bool:
        return bool(req.stream and req.stream_options and req.stream_options.include_usage)

    def _learn_from_raw(self, body: bytes) -> None:
        """Best effort: record the model and stream flag even when the body is refused."""
        try:
            raw = msgspec.json.decode(body)
        except Exception:  # noqa: BLE001
            return
        if isinstance(raw, dict):
            if isinstance(raw.get("model"), str):
                self.rt.set(model=raw["model"])
            if isinstance(raw.get("stream"), bool):
                self.rt.set(stream=raw["stream"])

