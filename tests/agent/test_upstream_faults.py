"""Issue 11 on the native API: a non-streaming client that leaves cancels its run; upstream failures reach
the client as the provider's name and the kind of failure, while the run row keeps the full detail."""

from __future__ import annotations

import asyncio

import pytest

from bmo.agent.config import ProviderOptions
from bmo.agent.providers.openai import OpenAIProvider
from bmo.testing.fake_upstream import Reply, error, reply


async def _post(bmo, session_id: str) -> tuple[int, dict]:
    async with bmo.http.post(bmo.url(f"/sessions/{session_id}/messages"), json={"content": "hi", "stream": False},
                             headers=bmo.server.headers()) as resp:
        return resp.status, await resp.json()


async def test_a_native_non_streaming_client_that_leaves_cancels_its_run_within_a_second(agent, fake_upstream):
    bmo = await agent()
    session = await bmo.create_session()
    fake_upstream.script(reply("thinking", stall=True))
    task = asyncio.ensure_future(_post(bmo, session["id"]))
    await fake_upstream.wait_requests(1, timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await fake_upstream.wait_disconnect(1.0)  # the model call was closed within a second
    async with asyncio.timeout(5):
        while not (rows := await bmo.co.store.run_rows(session["id"])) or rows[0]["outcome"] is None:
            await asyncio.sleep(0.05)
    assert (rows[0]["outcome"], rows[0]["cancel_reason"]) == ("cancelled", "client disconnected")


async def test_a_native_5xx_answer_keeps_its_body_in_the_run_row_not_in_the_reply(agent, fake_upstream):
    bmo = await agent()
    session = await bmo.create_session()
    bmo.co.providers["fake"].options.max_retries = 0
    fake_upstream.script(error(503, "pool gpu-7.internal exhausted"))
    status, body = await _post(bmo, session["id"])
    assert status == 502
    assert body["error"]["message"] == "Provider 'fake' answered HTTP 503 (a server error on its side)"
    row = (await bmo.co.store.run_rows(session["id"]))[0]
    assert "gpu-7.internal" in row["error"] and fake_upstream.base_url in row["error"]


async def test_a_native_garbage_stream_is_an_upstream_error_not_a_final_answer(agent, fake_upstream):
    bmo = await agent()
    session = await bmo.create_session()
    fake_upstream.script(Reply(raw_stream="data: <html>oops</html>\n\ndata: [DONE]\n\n"))
    status, body = await _post(bmo, session["id"])
    assert status == 502 and body["error"]["code"] == "upstream_bad_stream"
    assert "<html>" not in body["error"]["message"]
    row = (await bmo.co.store.run_rows(session["id"]))[0]
    assert (row["outcome"], row["error_status"]) == ("error", 502) and "<html>oops</html>" in row["error"]


@pytest.mark.parametrize("field, value", [("max_answer_s", 0), ("max_answer_bytes", 0)])
def test_answer_bounds_below_one_are_refused_naming_the_table(field, value):
    with pytest.raises(ValueError, match=r"\[providers.bad\] max_answer_s and max_answer_bytes must be positive"):
        OpenAIProvider("bad", ProviderOptions(base_url="http://127.0.0.1:1/v1", **{field: value}))


async def test_the_time_bound_covers_retries_before_the_first_byte(fake_upstream):
    # Each attempt alone is under timeout_s; the answer's bound still ends the whole call.
    provider = OpenAIProvider("fake", ProviderOptions(base_url=fake_upstream.base_url, max_retries=5,
                                                      retry_backoff_s=0.3, max_answer_s=1.0))
    fake_upstream.script(*[error(503, "busy") for _ in range(6)])
    from bmo.agent.errors import UpstreamTimeout
    from bmo.agent.messages import ChatMessage

    try:
        with pytest.raises(UpstreamTimeout, match="max_answer_s"):
            async for _ in provider.stream("fake-model", [ChatMessage(role="user", content="hi")]):
                pass
    finally:
        await provider.close()
    assert len(fake_upstream.chat_requests) < 6
