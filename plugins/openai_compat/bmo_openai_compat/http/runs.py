"""The run ledger's read routes: ``GET /v1/openai-compat/runs`` and ``.../runs/{request_id}/events``."""

from __future__ import annotations

import msgspec
from aiohttp import web

from bmo.agent.ownership import may_reach, owner_filter
from bmo_openai_compat import wire
from bmo_openai_compat.http.error_replies import compat_error, guarded
from bmo_openai_compat.http.read_request import begin_read, json_reply
from bmo_openai_compat.observe import outcomes
from bmo_openai_compat.observe.compat_request import CompatRequest

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


async def _reachable_run(rt: CompatRequest, request_id: str) -> bool:
    """Whether the ledger holds ``request_id`` and the requester may see it (their own row, or the operator)."""
    row = await rt.ledger.get_run(request_id)
    return row is not None and may_reach(row["requester"], rt.requester)


def _query_choice(request: web.Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query.get(name)
    if value is None:
        return None
    if value not in allowed:
        raise compat_error(400, f"Query parameter {name}={value!r} is not one of: {', '.join(allowed)}.", param=name)
    return value


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LIMIT:
        raise compat_error(400, f"Query parameter limit={raw!r} must be a whole number from 1 to {MAX_LIMIT}.",
                           param="limit")
    return value


async def list_runs(request: web.Request) -> web.StreamResponse:
    rt = begin_read(request, outcomes.RUNS_LIST)

    async def work() -> web.Response:
        await rt.fire()
        limit = _limit(request)
        route = _query_choice(request, "route", outcomes.ROUTES)
        outcome = _query_choice(request, "outcome", outcomes.OUTCOMES)
        session_id = request.query.get("session_id")
        after = request.query.get("after")
        if after is not None and not await _reachable_run(rt, after):
            raise compat_error(400, f"Query parameter after={after!r} is not a request_id in the ledger; pass the "
                                    "last_id of the previous page.", param="after")
        rows, has_more = await rt.ledger.list_runs(
            limit=limit, after=after, route=route, outcome=outcome, session_id=session_id, exclude=rt.request_id,
            requester=owner_filter(rt.requester),
        )
        data = [msgspec.convert(row, wire.RunRecord) for row in rows]
        body = wire.encode(wire.RunPage(
            data=data, first_id=data[0].request_id if data else None, last_id=data[-1].request_id if data else None,
            has_more=has_more,
        ))
        await rt.finish(outcomes.FINAL_ANSWER, 200, returned=len(data))
        return json_reply(rt, body)

    return await guarded(rt, work)


async def list_run_events(request: web.Request) -> web.StreamResponse:
    rt = begin_read(request, outcomes.RUN_EVENTS_LIST)
    request_id = request.match_info["request_id"]

    async def work() -> web.Response:
        await rt.fire()
        if not await _reachable_run(rt, request_id):
            raise compat_error(404, f"No compat request {request_id!r} in the run ledger; GET /v1/openai-compat/runs "
                                    "lists the request ids.", param="request_id", code="run_not_found")
        events = await rt.ledger.events(request_id)
        body = wire.encode(wire.RunEventList(
            request_id=request_id, data=[msgspec.convert(e, wire.RunEvent) for e in events],
        ))
        await rt.finish(outcomes.FINAL_ANSWER, 200, returned=len(events), of_request=request_id)
        return json_reply(rt, body)

    return await guarded(rt, work)
