"""``GET /v1/models``: the advertised models as OpenAI model objects."""

from __future__ import annotations

import time

from aiohttp import web

from bmo_openai_compat import wire
from bmo_openai_compat.http.error_replies import guarded
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
        body = wire.encode(wire.ModelList(data=[
            wire.ModelObject(id=m, created=_STARTED, owned_by=m.split("/", 1)[0] if "/" in m else "bmo") for m in ids
        ]))
        await rt.finish(outcomes.FINAL_ANSWER, 200, models=len(ids))
        return json_reply(rt, body)

    return await guarded(rt, work)
