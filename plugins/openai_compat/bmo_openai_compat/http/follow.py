"""Following a run another request started: ``X-BMO-Resume``, and a retry that joins its first attempt.

The run is this process's own (``Coordinator.get_run``) or, on a shared store, one another server
holds, read from the run event log (``bmo.cluster``); either way one :class:`RunDelivery` turns its
events into the answer, so a follower gets what the starter's client got, in the same order.
"""

from __future__ import annotations

from aiohttp import web

from bmo.agent.ownership import may_reach
from bmo_openai_compat import wire
from bmo_openai_compat.http.error_replies import compat_error
from bmo_openai_compat.observe import outcomes
from bmo_openai_compat.sessions import RESUME_HEADER
from bmo_openai_compat.stream.delivery import RunDelivery


async def resume(handler, req: wire.ChatCompletionRequest, request_id: str) -> web.StreamResponse:
    """``X-BMO-Resume: request_id``: that run's events from the start; 404 when no server knows it."""
    coordinator = handler.coordinator
    run = coordinator.get_run(request_id)
    if run is None and coordinator.cluster is not None:
        run = await coordinator.cluster.follow(request_id)
    if run is None or not may_reach(await run_owner(coordinator, run), handler.rt.requester):
        raise compat_error(404, f"No run {request_id[:64]!r} is running or finished in the last 10 minutes; "
                                f"{RESUME_HEADER} takes the request_id a 409 queued answer named.",
                           param=RESUME_HEADER, code="run_not_found")
    if handler.session_header and run.session_id != handler.session_header:
        raise compat_error(400, f"Run {request_id[:64]!r} belongs to another session than {handler.session_header!r}.",
                           param=RESUME_HEADER)
    return await join(handler, req, run, RESUME_HEADER)


async def join(handler, req: wire.ChatCompletionRequest, run, joined_by: str) -> web.StreamResponse:
    """Follow ``run`` from its first event, as its starter does; outcome ``resumed``."""
    rt = handler.rt
    rt.set(run_id=run.id)
    await rt.event("resume", resumed_request_id=run.id, run_session_id=run.session_id, joined_by=joined_by)
    return await RunDelivery(
        handler.request, rt, run, stream=req.stream, include_usage=handler._include_usage(req), model=req.model,
        headers=handler._headers(), keepalive_s=handler.options.keepalive_interval_s,
        cancel_on_disconnect=False,  # the run belongs to the request that started it
        success_outcome=outcomes.RESUMED, finish_detail={"resumed_request_id": run.id},
    ).respond()


async def run_owner(coordinator, run) -> str:
    """A run belongs to its session's owner; a session already gone (ephemeral) leaves the run's requester."""
    session = await coordinator.get_session(run.session_id)
    return session.created_by if session is not None else run.requester
