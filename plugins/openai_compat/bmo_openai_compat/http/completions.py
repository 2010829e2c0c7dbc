"""``POST /v1/completions``: legacy text completion (autocomplete, fill-in-the-middle) as one direct model call.

No agent run, no session, no tool: autocomplete wants speed. The provider's own
``/completions`` endpoint answers when it has one (the provider learns a 404 once and then
stops asking); otherwise one chat call built from the prompt and the suffix does.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from bmo.agent import maybe_coordinator
from bmo.agent.errors import AgentError, NoProviderConfigured, UnknownModel
from bmo.agent.messages import ChatMessage, Usage
from bmo.server.app import get_host
from bmo.streaming.disconnect import ClientGone
from bmo.streaming.sse_writer import SseWriter
from bmo_openai_compat import completions_wire as cw
from bmo_openai_compat import wire
from bmo_openai_compat.http.error_replies import agent_error, compat_error, disabled_error, guarded, identity_headers
from bmo_openai_compat.observe import outcomes
from bmo_openai_compat.observe.compat_request import CompatRequest
from bmo_openai_compat.state import advertised_model_ids, state_of
from bmo_openai_compat.stream.chunks import usage_out
from bmo_openai_compat.stream.delivery import DONE

KIND = "completion"
FIM_SYSTEM = ("You are a text and code completion engine. Reply with only the text that belongs at the cursor: "
              "no explanation, no code fences, and do not repeat the text before or after the cursor.")


def fim_messages(prompt: str, suffix: str | None) -> list[ChatMessage]:
    """The chat call that stands in for a text completion (fill-in-the-middle when there is a suffix)."""
    if suffix:
        ask = (f"Fill in the text at the cursor.\n<before_cursor>\n{prompt}\n</before_cursor>\n"
               f"<after_cursor>\n{suffix}\n</after_cursor>\nReply with only the text to insert.")
    else:
        ask = f"Continue this text. Reply with only the continuation.\n<text>\n{prompt}\n</text>"
    return [ChatMessage(role="system", content=FIM_SYSTEM), ChatMessage(role="user", content=ask)]


async def completions(request: web.Request) -> web.StreamResponse:
    host = get_host(request)
    state = state_of(host)
    if not state.options.enabled:
        raise disabled_error()
    rt = CompatRequest(host, state.ledger, state.options, request, outcomes.COMPLETIONS, kind=KIND)

    async def work() -> web.StreamResponse:
        req = cw.decode_completion_request(await request.read())
        rt.set(model=req.model, stream=req.stream)
        await rt.fire()
        coordinator = _coordinator(host)
        _check_model(host, coordinator, req.model)
        with rt.active():  # the model span nests under this request's span
            answers = await asyncio.gather(*(_complete(rt, coordinator, req, p) for p in cw.prompts_of(req)))
        return await _deliver(request, rt, req, answers)

    return await guarded(rt, work)


async def _complete(rt: CompatRequest, coordinator, req: cw.CompletionRequest, prompt: str):
    sampling = cw.sampling_of(req)
    try:
        answer = await coordinator.complete_prompt(req.model, prompt, suffix=req.suffix, sampling=sampling)
        via = "upstream_completions"
        if answer is None:
            answer = await coordinator.complete(req.model, fim_messages(prompt, req.suffix), sampling=sampling)
            via = "chat"
    except AgentError as exc:
        raise agent_error(exc) from None
    await rt.event("completion_call", via=via, suffix=bool(req.suffix), finish_reason=answer.finish_reason)
    return answer


async def _deliver(request: web.Request, rt: CompatRequest, req: cw.CompletionRequest, answers) -> web.StreamResponse:
    completion_id, created = f"cmpl-{rt.request_id.removeprefix('req_')}", int(time.time())
    usage = Usage()
    for answer in answers:
        usage = usage + answer.usage
    choices = [cw.CompletionChoice(text=a.text or "", index=i, finish_reason=a.finish_reason)
               for i, a in enumerate(answers)]
    headers = identity_headers(rt)
    detail = {"prompts": len(answers), "usage": {"prompt_tokens": usage.prompt_tokens,
                                                 "completion_tokens": usage.completion_tokens}}
    if not req.stream:
        body = wire.encode(cw.TextCompletion(id=completion_id, created=created, model=req.model, choices=choices,
                                             usage=usage_out(usage)))
        await rt.finish(outcomes.FINAL_ANSWER, 200, **detail)
        return web.Response(body=body, content_type="application/json", headers=headers)

    def chunk(chunk_choices, **extra) -> bytes:
        return wire.encode(cw.TextCompletion(id=completion_id, created=created, model=req.model,
                                             choices=chunk_choices, **extra))

    # The whole text is known: one chunk per prompt carries it with its finish reason (the SDK's strict
    # validation refuses a null finish_reason), then the usage chunk if asked.
    frames = [chunk([c]) for c in choices]
    if req.stream_options is not None and req.stream_options.include_usage:
        frames.append(chunk([], usage=usage_out(usage)))
    sse = SseWriter(request, headers)
    try:
        await sse.start()
        await sse.send(*frames)
        await rt.finish(outcomes.FINAL_ANSWER, 200, **detail)  # before [DONE], as for chat
        await sse.finish(DONE)
    except ClientGone:
        await rt.finish(outcomes.CANCELLED, 499, error="client disconnected while streaming", **detail)
    return sse.response


def _coordinator(host):
    coordinator = maybe_coordinator(host)
    if coordinator is None:
        raise compat_error(503, "The agent core is not running on this server; no model can answer.")
    return coordinator


def _check_model(host, coordinator, model: str) -> None:
    try:
        coordinator.check_model(model)
    except UnknownModel as exc:
        raise compat_error(404, str(exc), param="model", code="model_not_found") from None
    except NoProviderConfigured as exc:
        raise compat_error(exc.status, str(exc), param="model") from None
    advertised = advertised_model_ids(host)
    if model not in advertised:
        raise compat_error(404, f"The model {model!r} is not advertised here. Models: "
                                f"{', '.join(advertised[:10]) or 'none'} (GET /v1/models lists them).",
                           param="model", code="model_not_found")
