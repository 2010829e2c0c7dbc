"""Native session API handlers: sessions, messages streamed as SSE, permissions, cancel, follow.

Every error leaves as the OpenAI error envelope (``ApiError``), naming the field to fix.
"""

from __future__ import annotations

import asyncio
import re
import time

import msgspec
from aiohttp import web

from bmo.agent import maybe_coordinator, run_outcomes
from bmo.agent.api.event_stream import RunEventStream, run_events, session_runs
from bmo.agent.errors import AgentError, SessionBusy
from bmo.agent.events import RunFinished
from bmo.agent.history import Fork, HistoryChanged
from bmo.agent.messages import ChatMessage
from bmo.agent.ownership import may_reach, owner_filter
from bmo.agent.permissions import DECISIONS
from bmo.agent.run import PERMISSION_MODES, RunPolicy, describe_run_row
from bmo.agent.tools.base import TOOL_CLASSES
from bmo.field_errors import field_error
from bmo.server.auth import requester_label
from bmo.server.capacity import stream_slot
from bmo.server.errors import ApiError
from bmo.streaming.disconnect import DisconnectWatch

SESSION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class CreateSessionBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    model: str | None = None
    id: str | None = None


class PostMessageBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    content: str | None = None  # one user message
    messages: list[ChatMessage] | None = None  # or several messages (e.g. tool results)
    stream: bool = True
    model: str | None = None  # this run only; the session keeps its own
    permission_mode: str = "ask"
    allowed_classes: list[str] | None = None
    max_steps: int | None = None
    permission_timeout_s: float | None = None
    fork_at: int | None = None  # continue from message seq N: what follows it is set aside (0: from the start)


class DecisionBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    decision: str


class CancelBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: str = "cancelled by request"
    run_id: str | None = None


def _coordinator(request: web.Request):
    from bmo.server.app import get_host

    coordinator = maybe_coordinator(get_host(request))
    if coordinator is None:
        raise ApiError(503, "The agent coordinator is not running.")
    return coordinator


def _host(request: web.Request):
    from bmo.server.app import get_host

    return get_host(request)


def _agent_options(request: web.Request):
    return _host(request).config.section("agent")


def _requester(request: web.Request) -> str:
    return requester_label(request.get("requester"))


async def decode(request: web.Request, kind: type, *, empty_ok: bool = False):
    """The JSON body as ``kind``; a 400 naming the field otherwise."""
    raw = await request.read()
    if not raw.strip():
        if empty_ok:
            return kind()
        raise ApiError(400, "The request body must be a JSON object.")
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:  # a subclass of DecodeError: test it first
        param, text, problem = field_error(exc)
        if problem == "unknown":
            raise ApiError(400, f"Unknown field '{param}'; remove it (see docs/agent.md for the fields).", param=param) from None
        raise ApiError(400, f"Invalid field '{param or 'body'}': {text}.", param=param) from None
    except msgspec.DecodeError:
        raise ApiError(400, "The request body is not valid JSON; send a JSON object.") from None


async def _session_or_404(coordinator, session_id: str, request: web.Request):
    session = await coordinator.get_session(session_id)
    # Another requester's session answers exactly like a missing one: its existence is not theirs to learn.
    if session is None or not may_reach(session.created_by, _requester(request)):
        raise ApiError(404, f"No session with id '{session_id}'. POST /v1/sessions creates one; GET /v1/sessions lists them.",
                       param="session_id", code="session_not_found")
    return session


def _model_error(exc: AgentError, param: str = "model") -> ApiError:
    code = "model_not_found" if exc.status == 404 else "no_provider"
    return ApiError(exc.status, str(exc), param=param, code=code)


# -- sessions ---------------------------------------------------------------------------
async def create_session(request: web.Request) -> web.Response:
    co = _coordinator(request)
    body = await decode(request, CreateSessionBody, empty_ok=True)
    model = body.model or co.default_model()
    try:
        co.check_model(model)
    except AgentError as exc:
        raise _model_error(exc) from None
    if body.id is not None and not SESSION_ID.match(body.id):
        raise ApiError(400, "Field 'id' must be 1-128 characters of letters, digits, '.', '_', ':' or '-'.", param="id")
    if body.id and await co.get_session(body.id) is not None:
        raise ApiError(409, f"A session with id '{body.id}' already exists.", param="id", code="session_exists")
    session = await co.create_session(session_id=body.id, model=model, requester=_requester(request))
    return web.json_response(session.describe(), status=201)


async def list_sessions(request: web.Request) -> web.Response:
    co = _coordinator(request)
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        raise ApiError(400, "Query parameter 'limit' must be an integer from 1 to 100.", param="limit") from None
    if not 1 <= limit <= 100:
        raise ApiError(400, "Query parameter 'limit' must be an integer from 1 to 100.", param="limit")
    include = request.query.get("include_ephemeral", "false").lower() in ("1", "true", "yes")
    sessions = await co.list_sessions(limit=limit + 1, after=request.query.get("after"), include_ephemeral=include,
                                      created_by=owner_filter(_requester(request)))
    page = sessions[:limit]
    data = [s.describe() for s in page]
    return web.json_response({"object": "list", "data": data, "has_more": len(sessions) > limit,
                              "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None})


async def get_session(request: web.Request) -> web.Response:
    co = _coordinator(request)
    session = await _session_or_404(co, request.match_info["session_id"], request)
    history = await session.history()
    run = co.active_run(session.id)
    runs = await co.store.run_rows(session.id, limit=20)
    return web.json_response({
        **session.describe(),
        "messages": [msgspec.to_builtins(m) for m in history.messages],
        "message_seqs": history.seqs,  # a seq is what fork_at names
        "active_run": run.describe() if run is not None else None,
        "runs": runs,
        "pending_permissions": await _pending(co, session.id),
    })


async def delete_session(request: web.Request) -> web.Response:
    co = _coordinator(request)
    session_id = request.match_info["session_id"]
    await _session_or_404(co, session_id, request)
    try:
        await co.delete_session(session_id, requester=_requester(request))
    except SessionBusy as exc:  # its run elsewhere did not stop in time, or a new turn started meanwhile
        raise ApiError(409, f"Session '{session_id}' has run {exc.run_id} going (it did not stop in time after being "
                            "asked to, or it started while the delete waited); send the DELETE again once it has "
                            f"ended (see GET /v1/sessions/{session_id}).", code="session_busy",
                       headers={"X-BMO-Run-Id": exc.run_id}) from None
    return web.json_response({"id": session_id, "object": "bmo.session.deleted", "deleted": True})


# -- runs -------------------------------------------------------------------------------
def _policy(body: PostMessageBody, max_mode: str) -> RunPolicy:
    if body.permission_mode not in PERMISSION_MODES:
        raise ApiError(400, f"Field 'permission_mode' must be one of {', '.join(PERMISSION_MODES)}.", param="permission_mode")
    # A request may lower its privileges, never raise them above the server's policy.
    if PERMISSION_MODES.index(body.permission_mode) > PERMISSION_MODES.index(max_mode):
        raise ApiError(403, f"permission_mode {body.permission_mode!r} is above this server's policy "
                            f"([agent] max_permission_mode = {max_mode!r}); send {max_mode!r}, or have the operator "
                            "raise max_permission_mode.", param="permission_mode", code="permission_mode_not_allowed")
    classes = None
    if body.allowed_classes is not None:
        bad = [c for c in body.allowed_classes if c not in TOOL_CLASSES]
        if bad:
            raise ApiError(400, f"Field 'allowed_classes' has unknown class {bad[0]!r}; use {', '.join(TOOL_CLASSES)}.",
                           param="allowed_classes")
        classes = frozenset(body.allowed_classes)
    if body.max_steps is not None and body.max_steps < 1:
        raise ApiError(400, "Field 'max_steps' must be at least 1.", param="max_steps")
    if body.permission_timeout_s is not None and body.permission_timeout_s <= 0:
        raise ApiError(400, "Field 'permission_timeout_s' must be a positive number of seconds.", param="permission_timeout_s")
    return RunPolicy(permission_mode=body.permission_mode, allowed_classes=classes, max_steps=body.max_steps,
                     permission_timeout_s=body.permission_timeout_s, origin="native")


def _new_messages(body: PostMessageBody) -> list[ChatMessage]:
    if (body.content is None) == (body.messages is None):
        raise ApiError(400, "Send exactly one of 'content' (a user message) or 'messages' (a list).", param="content")
    if body.content is not None:
        if not body.content.strip():
            raise ApiError(400, "Field 'content' must not be empty.", param="content")
        return [ChatMessage(role="user", content=body.content)]
    assert body.messages is not None
    if not body.messages:
        raise ApiError(400, "Field 'messages' must not be empty.", param="messages")
    for i, m in enumerate(body.messages):
        if m.role not in ("user", "tool", "system", "assistant"):
            raise ApiError(400, f"messages[{i}].role must be user, assistant, system or tool.", param=f"messages[{i}].role")
        if m.role == "tool" and not m.tool_call_id:
            raise ApiError(400, f"messages[{i}] is a tool result and needs 'tool_call_id'.", param=f"messages[{i}].tool_call_id")
    return list(body.messages)


async def post_message(request: web.Request) -> web.StreamResponse:
    co = _coordinator(request)
    session = await _session_or_404(co, request.match_info["session_id"], request)
    body = await decode(request, PostMessageBody)
    with stream_slot(_host(request), body.stream):  # past max_concurrent_streams: a 503 before the run starts
        return await _run_message(request, co, session, body)


async def _run_message(request: web.Request, co, session, body: PostMessageBody) -> web.StreamResponse:
    messages = _new_messages(body)
    policy = _policy(body, _agent_options(request).max_permission_mode)
    model = body.model or session.model
    try:
        co.check_model(model)
    except AgentError as exc:
        raise _model_error(exc) from None
    history, fork = await session.history(), None
    if body.fork_at is not None:
        if body.fork_at != 0 and body.fork_at not in history.seqs:
            raise ApiError(400, f"Field 'fork_at' ({body.fork_at}) names no message of this session's history; use a "
                                f"seq from message_seqs of GET /v1/sessions/{session.id}, or 0.", param="fork_at")
        fork = Fork(at_seq=body.fork_at, reason="native")
    try:
        run = await co.start_run(session, messages, policy=policy, model=model, requester=_requester(request),
                                 history=history, fork=fork)
    except HistoryChanged:
        raise ApiError(409, "The session's history changed while this message was being sent; send it again.",
                       code="session_changed") from None
    except SessionBusy as exc:
        raise ApiError(409, f"{exc} Wait for it to finish, follow it with GET /v1/sessions/{session.id}/events, "
                            f"or cancel it with POST /v1/sessions/{session.id}/cancel.",
                       code="session_busy", headers={"X-BMO-Run-Id": exc.run_id}) from None
    headers = {"X-BMO-Session-Id": session.id, "X-BMO-Run-Id": run.id}
    if not body.stream:
        # A client that leaves before the answer cancels the run, as a streaming one does.
        with DisconnectWatch(request) as watch:
            watch.on_lost(lambda: run.cancel("client disconnected"))
            result = await run.wait()
        if watch.lost:
            return web.Response(status=499, headers=headers)
        _raise_for_error(result, headers)
        return web.json_response({"run": run.describe(), "result": msgspec.to_builtins(result)}, headers=headers)
    stream = RunEventStream(request, headers, run_events(run))
    try:
        # The first event decides the status: an upstream failing before its first byte is an HTTP error.
        first = await stream.first()
        if isinstance(first, RunFinished):
            _raise_for_error(first, headers)
        await stream.start()
        await stream.relay(until_finished=True)
    except asyncio.CancelledError:
        run.cancel("client disconnected")
        raise
    except ConnectionResetError:  # the client left: the run stops, and there is nobody to answer
        run.cancel("client disconnected")
    finally:
        stream.close()
    return stream.response if stream.started else web.Response(status=499)


def _raise_for_error(result: RunFinished, headers: dict[str, str]) -> None:
    if result.outcome == run_outcomes.ERROR:
        raise ApiError(result.error_status or 500, result.error or "the run failed", code=result.error_code,
                       headers=headers)


async def cancel_run(request: web.Request) -> web.Response:
    co = _coordinator(request)
    session = await _session_or_404(co, request.match_info["session_id"], request)
    body = await decode(request, CancelBody, empty_ok=True)
    run = co.active_run(session.id)
    if run is None and (row := await co.cancel_elsewhere(body.reason, _requester(request), session_id=session.id,
                                                         run_id=body.run_id or None)):
        return web.json_response({"run": describe_run_row(row), "outcome": row["outcome"]})  # another server's run
    if run is None or (body.run_id and run.id != body.run_id):
        raise ApiError(409, f"Session '{session.id}' has no active run{' ' + body.run_id if body.run_id else ''} to cancel.",
                       code="no_active_run")
    await co.cancel_run(run, body.reason, requester=_requester(request))
    result = await asyncio.wait_for(asyncio.shield(run.wait()), 30)
    return web.json_response({"run": run.describe(), "outcome": result.outcome})


async def follow_session(request: web.Request) -> web.StreamResponse:
    """Every run of the session from now on (and the active one from its start), until the client leaves."""
    co = _coordinator(request)
    session = await _session_or_404(co, request.match_info["session_id"], request)
    with stream_slot(_host(request)):
        stream = RunEventStream(request, {"X-BMO-Session-Id": session.id}, session_runs(co, session.id, time.time()))
        try:
            await stream.start(comment=f"following {session.id}")
            await stream.relay(until_finished=False)
        except ConnectionResetError:
            pass  # the follower left; nothing to clean up
        finally:
            stream.close()
        return stream.response


async def list_branches(request: web.Request) -> web.Response:
    """The session's forks, oldest first, each with the point it was made at and the messages it set aside."""
    co = _coordinator(request)
    session = await _session_or_404(co, request.match_info["session_id"], request)
    forks = [] if session.in_memory else await co.store.branches(session.id)
    return web.json_response({"object": "list", "session_id": session.id,
                              "data": [{"object": "bmo.session_fork", **f} for f in forks]})


# -- permissions ------------------------------------------------------------------------
async def _pending(co, session_id: str) -> list[dict]:
    """The session's challenges waiting on this server, then those waiting on another one sharing the store."""
    pending = co.pending_permissions(session_id)
    if co.cluster is not None:
        pending += await co.cluster.challenges_elsewhere(session_id)
    return pending


async def list_permissions(request: web.Request) -> web.Response:
    co = _coordinator(request)
    session = await _session_or_404(co, request.match_info["session_id"], request)
    return web.json_response({"object": "list", "data": await _pending(co, session.id)})


async def decide_permission(request: web.Request) -> web.Response:
    co = _coordinator(request)
    session = await _session_or_404(co, request.match_info["session_id"], request)
    permission_id = request.match_info["permission_id"]
    body = await decode(request, DecisionBody)
    if body.decision not in DECISIONS:
        raise ApiError(400, f"Field 'decision' must be one of {', '.join(DECISIONS)}.", param="decision")
    requester = _requester(request)  # _session_or_404 already refused another requester's session
    if permission_id in {p["id"] for p in co.pending_permissions(session.id)}:
        answered = await co.decide_permission(permission_id, body.decision, requester)
    else:  # waiting on another server sharing the store, perhaps: it applies the answer within about a second
        answered = co.cluster is not None and await co.cluster.answer_elsewhere(permission_id, session.id,
                                                                                 body.decision, requester)
    if not answered:
        raise ApiError(404, f"No pending permission request '{permission_id}' in session '{session.id}' "
                            "(it may have been decided or timed out already).", param="permission_id",
                       code="permission_not_found")
    return web.json_response({"id": permission_id, "decision": body.decision, "session_id": session.id})


def register_routes(register) -> None:
    register("POST", "/v1/sessions", create_session)
    register("GET", "/v1/sessions", list_sessions)
    register("GET", "/v1/sessions/{session_id}", get_session)
    register("DELETE", "/v1/sessions/{session_id}", delete_session)
    register("POST", "/v1/sessions/{session_id}/messages", post_message)
    register("POST", "/v1/sessions/{session_id}/cancel", cancel_run)
    register("GET", "/v1/sessions/{session_id}/events", follow_session)
    register("GET", "/v1/sessions/{session_id}/branches", list_branches)
    register("GET", "/v1/sessions/{session_id}/permissions", list_permissions)
    register("POST", "/v1/sessions/{session_id}/permissions/{permission_id}", decide_permission)
