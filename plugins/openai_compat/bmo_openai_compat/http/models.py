"""``GET /v1/models`` and ``GET /v1/models/{id}``: the advertised models as OpenAI model objects."""

from __future__ import annotations

import time

from aiohttp import web

from bmo_openai_compat import wire
from bmo_openai_compat.http.error_replies import compat_error, guarded
from bmo_openai_compat.http.read_request import begin_read, json_reply
from bmo_openai_compat.observe import outcomes
from bmo_openai_compat.state import advertised_model_ids

# Model objects carry the time the server started: providers do not tell us when a model was made.
_STARTED = int(time.time())


async def list_models(request: web.Request) -> web.StreamResponse:
    rt = begin_read(request, outcomes.MODELS_LIST)

    async def work() -> web.Response:
        await rt.fire()
        ids = advertised_model_ids(rt.host)
        body = wire.encode(wire.ModelList(data=[model_object(m) for m in ids]))
        await rt.finish(outcomes.FINAL_ANSWER, 200, models=len(ids))
        return json_reply(rt, body)

    return await guarded(rt, work)


async def get_model(request: web.Request) -> web.StreamResponse:
    """One advertised model; ids hold a ``/`` (``NAME/model``), so the route takes the rest of the path."""
    rt = begin_read(request, outcomes.MODELS_GET)

    async def work() -> web.Response:
        model_id = request.match_info["model_id"]
        rt.set(model=model_id[:200])
        await rt.fire()
        ids = advertised_model_ids(rt.host)
        if model_id not in ids:
            raise compat_error(404, f"The model {model_id[:200]!r} is not advertised here. Models: "
                                    f"{', '.join(ids[:10]) or 'none'} (GET /v1/models lists them).",
                               param="model", code="model_not_found")
        await rt.finish(outcomes.FINAL_ANSWER, 200)
        return json_reply(rt, wire.encode(model_object(model_id)))

    return await guarded(rt, work)


def model_object(model_id: str) -> wire.ModelObject:
    return wire.ModelObject(id=model_id, created=_STARTED,
                            owned_by=model_id.split("/", 1)[0] if "/" in model_id else "bmo")
