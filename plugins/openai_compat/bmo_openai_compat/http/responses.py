"""``POST /v1/responses``: the Responses API in front of the same agent loop, policies and ledger as chat.

A response id names the session and run that produced it (table ``openai_compat_responses``), so
``previous_response_id`` continues that session. Continuing from an older response of a session
forks: a new session starts with the history as it stood after that response. ``store: false``
runs in a throw-away session and keeps nothing but the ledger row.
"""

from __future__ import annotations

from aiohttp import web

from bmo.agent.errors import AgentError
from bmo.agent.messages import ChatMessage
from bmo.server.app import get_host
from bmo.server.capacity import stream_slot
from bmo_openai_compat import responses_wire as rw
from bmo_openai_compat.ambiguity import asks_router, is_first_user_turn, route
from bmo_openai_compat.http.chat import ChatHandler
from bmo_openai_compat.http.error_replies import agent_error, compat_error, disabled_error, guarded
from bmo_openai_compat.http.stored_responses import find_stored
from bmo_openai_compat.observe import outcomes
from bmo_openai_compat.observe.compat_request import CompatRequest
from bmo_openai_compat.response_input import stored_items, to_messages
from bmo_openai_compat.response_store import ResponseStore, StoredResponse
from bmo_openai_compat.state import state_of
from bmo_openai_compat.stream.response_events import (
    ResponseAnswer,
    ResponseDelivery,
    deliver_response_text,
    new_template,
)


def response_id_of(request_id: str) -> str:
    return "resp_" + request_id.removeprefix("req_")


async def create_response(request: web.Request) -> web.StreamResponse:
    host = get_host(request)
    state = state_of(host)
    if not state.options.enabled:
        raise disabled_error()
    rt = CompatRequest(host, state.ledger, state.options, request, outcomes.RESPONSES_CREATE)
    handler = ResponsesHandler(request, host, state, rt)
    return await guarded(rt, handler.handle, lambda: handler.session_header)


class ResponsesHandler(ChatHandler):
    """One ``POST /v1/responses``; model checks, run start, 409 and requester are chat's."""

    async def handle(self) -> web.StreamResponse:
        body = await self.request.read()
        try:
            req = rw.decode_request(body)
        except Exception:
            self._learn_from_raw(body)
            raise
        self.rt.set(model=req.model or "", stream=req.stream, requester=self._requester(),
                    is_session_reuse=bool(req.previous_response_id))
        await self.rt.fire()
        self.store = ResponseStore(self.host.db)
        with stream_slot(self.host, req.stream), self.rt.active():  # past max_concurrent_streams: 503, no run
            session, seed, created = await self._session(req)
            try:
                return await self._converse(req, session, seed, created)
            finally:
                if session.ephemeral:
                    await self._forget(session.id)

    # -- the session a response runs in ---------------------------------------------------
    async def _previous(self, response_id: str) -> StoredResponse:
        """The stored response ``previous_response_id`` names (see ``find_stored``: ownership goes there)."""
        return await find_stored(self.rt, self.store, response_id, "previous_response_id")

    async def _session(self, req: rw.ResponseCreateRequest):
        """(session, messages to seed it with, whether it is new)."""
        coordinator, rt = self.coordinator, self.rt
        common = {"requester": rt.requester, "origin": "openai_compat"}
        if not req.previous_response_id:
            model = self._model(req, None)
            session = await coordinator.create_session(ephemeral=not req.store, model=model, **common)
            await rt.event("session", session_id=session.id, new_session=True, ephemeral=not req.store)
            return self._bound(session), [], True
        previous = await self._previous(req.previous_response_id)
        parent = await coordinator.get_session(previous.session_id)
        if parent is None:
            raise compat_error(404, f"The session of response {previous.response_id} was deleted; send the whole "
                                    "conversation as 'input' instead.", param="previous_response_id",
                               code="response_not_found")
        busy = coordinator.active_run(parent.id)
        if busy is not None:
            raise self._queued(parent.id, busy.id)
        latest = await self.store.latest_in_session(parent.id)
        if req.store and latest == previous.response_id:
            await rt.event("session", session_id=parent.id, new_session=False, ephemeral=False,
                           previous_response_id=previous.response_id)
            return self._bound(parent), [], False
        # An older response, or store=false: a new session that starts where that response left off.
        seed = (await parent.messages())[:previous.history_len]
        session = await coordinator.create_session(ephemeral=not req.store, model=parent.model, **common)
        await rt.event("session", session_id=session.id, new_session=True, ephemeral=not req.store,
                       forked_from=parent.id, previous_response_id=previous.response_id)
        return self._bound(session), seed, True

    def _bound(self, session):
        if not session.ephemeral:
            self.session_header = session.id
        self.rt.set(session_id=session.id)
        return session

    def _model(self, req: rw.ResponseCreateRequest, session) -> str:
        model = req.model or (session.model if session is not None else "")
        if not model:
            raise compat_error(400, "Missing required field 'model'; use one of the ids GET /v1/models returns.",
                               param="model")
        self._check_model(model)
        self.rt.set(model=model)
        return model

    # -- the run --------------------------------------------------------------------------
    async def _converse(self, req: rw.ResponseCreateRequest, session, seed: list, created: bool):
        rt, coordinator = self.rt, self.coordinator
        model = self._model(req, session)
        run_model, success = None, outcomes.FINAL_ANSWER
        if model != session.model:
            if self.options.model_override_policy == "reject":
                await rt.event("model_override_rejected", requested=model, session_model=session.model)
                raise compat_error(
                    400, f"Response {req.previous_response_id} belongs to a session bound to model "
                         f"{session.model!r}; this request asks for {model!r}. Send model {session.model!r}, leave "
                         "'model' out, or set model_override_policy = \"allow_ephemeral\" under "
                         "[options.openai_compat].",
                    param="model", code="model_override_rejected", outcome=outcomes.MODEL_OVERRIDE_REJECTED)
            run_model, success = model, outcomes.MODEL_OVERRIDE_APPLIED
            await rt.event("model_override_applied", requested=model, session_model=session.model)
        history = seed if created else await session.messages()
        appended = [*seed, *to_messages(req, starts_session=not history)]
        if len(appended) == len(seed) or appended[-1].role == "assistant":
            raise compat_error(400, "Nothing new to answer: the input ends with an assistant message. End with a "
                                    "user message or function_call_output items.", param="input")
        answer = ResponseAnswer(new_template(response_id_of(rt.request_id), model, **self._echo(req)))
        on_final = self._on_final(req, session)
        sampling = rw.sampling_of(req)
        policy_kwargs = {}
        answer_format = rw.answer_format_of(req)
        if answer_format is not None:
            await rt.event("response_format", format=answer_format.describe())
        # As in chat: a client that asks for a format or forces a tool runs a program, not a conversation.
        forced = rw.upstream_tool_choice(req) is not None
        if (self.options.ambiguity_action != "code" and answer_format is None and not forced
                and is_first_user_turn(appended if created else history + appended) and asks_router(coordinator, model)):
            try:
                decision = await route(coordinator, model, history + appended[len(seed):], sampling)
            except AgentError as exc:
                raise agent_error(exc, "The ambiguity router's model call failed: ") from None
            await rt.event("router", decision=decision.decision, action=self.options.ambiguity_action,
                           **({"note": decision.note} if decision.note else {}))
            if decision.ambiguous and self.options.ambiguity_action == "ask":
                if not session.ephemeral:  # the session holds the turn, so a continuation is no first turn again
                    await session.append([*appended, ChatMessage(role="assistant", content=decision.question)], None)
                await self._begin_stored(req, session, answer, "")
                return await deliver_response_text(
                    self.request, rt, answer, decision.question, decision.usage, stream=req.stream,
                    headers=self._headers(), outcome=outcomes.CLARIFICATION, on_final=on_final,
                    finish_detail={"router": "ambiguous"})
            if decision.ambiguous and self.options.ambiguity_action == "research":
                policy_kwargs["allowed_classes"] = frozenset({"read"})
        client_tools, tool_choice = await self._client_tools(req), None
        if client_tools and req.tool_choice == "none":  # the client asked for no call of its tools on this turn
            await rt.event("tool_choice", choice="none", client_tools_offered=0)
            client_tools = None
        elif client_tools and forced:
            tool_choice = rw.upstream_tool_choice(req)
            await rt.event("tool_choice", choice=req.tool_choice, first_step_only=True)
        if req.parallel_tool_calls is not None:
            sampling["parallel_tool_calls"] = req.parallel_tool_calls
        run = await self._start_run(session, appended, run_model, client_tools, sampling, policy_kwargs,
                                    answer_format=answer_format, tool_choice=tool_choice)
        await self._begin_stored(req, session, answer, run.id)
        return await ResponseDelivery(
            self.request, rt, run, answer, on_final, stream=req.stream, headers=self._headers(),
            keepalive_s=self.options.keepalive_interval_s, cancel_on_disconnect=True, success_outcome=success,
            finish_detail={"response_id": answer.id},
        ).respond()

    async def _client_tools(self, req: rw.ResponseCreateRequest) -> list[dict] | None:
        others = sorted({str(t.get("type")) for t in req.tools or () if t.get("type") != "function"})
        if others:  # e.g. Codex's built-in web_search: BMO has its own tools for that
            await self.rt.event("client_tools_unsupported", types=others)
        tools = rw.function_tools(req)
        if not tools:
            return None
        if self.options.tool_policy != "auto_approve":
            await self.rt.event("client_tools_ignored", count=len(tools), reason="tool_policy chat_only")
            return None
        return tools

    @staticmethod
    def _echo(req: rw.ResponseCreateRequest) -> dict:
        """The request's settings as the response object repeats them."""
        tools = [t["function"] | {"type": "function", "strict": t["function"].get("strict", False),
                                  "parameters": t["function"].get("parameters") or {}}
                 for t in rw.function_tools(req)]
        return {"instructions": req.instructions, "previous_response_id": req.previous_response_id,
                "store": req.store, "tools": tools, "tool_choice": req.tool_choice or "auto",
                "parallel_tool_calls": True if req.parallel_tool_calls is None else req.parallel_tool_calls,
                "temperature": req.temperature, "top_p": req.top_p, "max_output_tokens": req.max_output_tokens,
                "metadata": req.metadata or {}, "text": rw.text_echo(req)}

    async def _begin_stored(self, req: rw.ResponseCreateRequest, session, answer: ResponseAnswer, run_id: str):
        if req.store:
            await self.store.begin(answer.id, request_id=self.rt.request_id, session_id=session.id, run_id=run_id,
                                   previous_response_id=req.previous_response_id, input_items=stored_items(req),
                                   response=answer.snapshot("in_progress"))
            await self.rt.event("response_stored", response_id=answer.id)

    def _on_final(self, req: rw.ResponseCreateRequest, session):
        async def on_final(final: rw.ResponseObject) -> None:
            if req.store:
                await self.store.finish(final, len(await session.messages()))
        return on_final
