"""Delivery of a run's events: queued events are taken without waiting, and a burst goes out in one write."""

from __future__ import annotations

import asyncio

import aiohttp
import openai
from aiohttp import web
from aiohttp.test_utils import TestServer
from compat_support import MODEL, TOKEN

from bmo.agent import events as ev
from bmo.agent.run import Run
from bmo.streaming.event_feed import EventFeed
from bmo.streaming.sse_writer import SseWriter
from bmo.testing.fake_upstream import reply
from bmo_openai_compat.observe import outcomes
from bmo_openai_compat.observe.compat_request import CompatRequest
from bmo_openai_compat.stream.delivery import RunDelivery


async def test_event_pump_takes_queued_events_without_waiting():
    run = Run("run_pump", "sess_pump", MODEL)
    for i in range(5):
        run.emit(ev.TextDelta(text=f"t{i}"))
    feed = EventFeed(run.events())
    try:
        first = await feed.take(1)  # the copying task has not run yet: the one wait
        assert feed.waits == 1 and first == [ev.TextDelta(text="t0")]
        assert [await feed.take(1) for _ in range(2)] == [[ev.TextDelta(text="t1")], [ev.TextDelta(text="t2")]]
        assert feed.waits == 1  # already queued: no wait
        assert await feed.take(1) == [ev.TextDelta(text="t3")]
        assert await feed.take(10) == [ev.TextDelta(text="t4")]
        assert await feed.take(10, deadline=0.0) == []  # nothing queued and the deadline is past: no wait
        run.emit(ev.RunFinished(outcome="final_answer", finish_reason="stop", text="t0t1t2t3t4"))
        finished = await feed.take(10)
        assert isinstance(finished[0], ev.RunFinished)
        assert feed.waits == 2
    finally:
        await feed.aclose()


async def test_a_burst_of_queued_chunks_goes_out_in_one_write(compat, monkeypatch):
    writes: list[int] = []  # data events per write
    original = SseWriter.send

    async def counting(self, *payloads):
        writes.append(len(payloads))
        await original(self, *payloads)

    monkeypatch.setattr(SseWriter, "send", counting)
    run = Run("run_burst", "sess_burst", MODEL)
    pieces = [f"w{i} " for i in range(50)]
    for piece in pieces:  # all waiting before delivery starts, as after a burst from upstream
        run.emit(ev.TextDelta(text=piece))
    state = compat.host.state["openai_compat"]
    request_ids: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        rt = CompatRequest(compat.host, state.ledger, state.options, request, outcomes.CHAT_COMPLETIONS)
        rt.set(model=MODEL, stream=True)
        await rt.fire()
        request_ids.append(rt.request_id)
        delivery = RunDelivery(request, rt, run, stream=True, include_usage=True, model=MODEL,
                               headers={"X-Request-Id": rt.request_id}, keepalive_s=30.0,
                               cancel_on_disconnect=True, success_outcome=outcomes.FINAL_ANSWER)
        return await delivery.respond()

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    client = openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key=TOKEN, max_retries=0, timeout=20)
    try:
        stream = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                                      stream=True, stream_options={"include_usage": True})
        chunks = []
        async for chunk in stream:
            if not chunks:  # the burst has arrived; now the run ends
                run.emit(ev.RunFinished(outcome="final_answer", finish_reason="stop", text="".join(pieces)))
            chunks.append(chunk)
    finally:
        await client.close()
        await server.close()
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert deltas[0].role == "assistant"
    assert [d.content for d in deltas[1:51]] == pieces
    assert chunks[-2].choices[0].finish_reason == "stop" and chunks[-1].usage is not None
    # The role and the 50 waiting chunks in one write; finish and usage in another.
    assert writes == [51, 2]
    await compat.assert_outcome(request_ids[0], outcomes.FINAL_ANSWER, 200)


async def test_a_client_that_leaves_a_non_streamed_request_cancels_its_run(compat):
    compat.model.answer(reply("never finishing", stall=True))
    async with aiohttp.ClientSession() as http:
        async def post() -> None:
            async with http.post(compat.api + "/chat/completions", headers={"Authorization": f"Bearer {TOKEN}"},
                                 json={"model": MODEL, "messages": [{"role": "user", "content": "hang"}]}) as resp:
                await resp.read()

        request = asyncio.create_task(post())
        await compat.up.wait_requests(2, timeout=10)  # the router's call, then the stalled answer
        request.cancel()  # the client gives up: aiohttp closes its connection
        await asyncio.gather(request, return_exceptions=True)
    # Only connection_lost can notice this: nothing is written to a non-streamed client while it waits.
    await compat.up.wait_disconnect(timeout=10)
    async with asyncio.timeout(10):  # the row is written behind the request, not before it: wait for it
        while not (rows := (await compat.ledger.list_runs(limit=1))[0]):
            await asyncio.sleep(0.05)
    request_id = rows[0]["request_id"]
    async with asyncio.timeout(10):
        while (await compat.row(request_id))["status"] != "finished":
            await asyncio.sleep(0.05)
    await compat.assert_outcome(request_id, outcomes.CANCELLED, 499, level="info")
    timeline = await compat.timeline(request_id)
    left = [e for e in timeline if e["event"] == "client_disconnected"]
    assert len(left) == 1 and "run_cancelled" in [e["event"] for e in timeline]
    assert (await compat.row(request_id))["error"] == "client disconnected while waiting for the answer"


def test_a_text_chunk_is_byte_for_byte_the_encoded_chunk_struct():
    import json

    from bmo_openai_compat import wire
    from bmo_openai_compat.stream.chunks import Answer

    # Odd models (one holds the placeholder the fast path uses) and odd texts: the same bytes either way.
    for model in (MODEL, "\x00", 'a "quoted" \\ model', "模型"):
        answer = Answer("req_0123456789abcdef01234567", model)
        for text in ("hello", "", "\x00", 'é\n"\t\u2028', "🎉", "{\"json\": [1]}"):
            assert answer.content(text) == wire.encode(wire.ChatCompletionChunk(
                id=answer.id, created=answer.created, model=model,
                choices=[wire.ChunkChoice(delta=wire.Delta(content=text))]))
            reasoning = answer.reasoning(text)
            assert json.loads(reasoning)["choices"][0]["delta"] == {"reasoning_content": text}
            assert reasoning == wire.encode(wire.ChatCompletionChunk(
                id=answer.id, created=answer.created, model=model,
                choices=[wire.ChunkChoice(delta=wire.Delta(reasoning_content=text))]))
