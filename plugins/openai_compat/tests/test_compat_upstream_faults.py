"""Issue 11: upstream answers are bounded, broken upstream streams are upstream errors, and a client's
error names the provider and the kind of failure without relaying internal addresses or bodies."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import openai
import pytest
from compat_support import MODEL, TOKEN

from bmo.testing.fake_upstream import Reply, error, reply
from bmo.testing.harness import free_port

HEADERS = {"Authorization": f"Bearer {TOKEN}"}
ASK = [{"role": "user", "content": "hi"}]


async def _chat(compat, *, stream: bool, model: str = MODEL) -> tuple[int, dict, str]:
    """One chat request: (status, the error object, request id); a stream's error is its error event."""
    async with aiohttp.ClientSession() as http:
        async with http.post(compat.api + "/chat/completions", headers=HEADERS,
                             json={"model": model, "messages": ASK, "stream": stream}) as resp:
            request_id = resp.headers["X-Request-Id"]
            if not stream or resp.content_type == "application/json":
                return resp.status, (await resp.json())["error"], request_id
            errors = [json.loads(line[6:])["error"] for line in (await resp.text()).splitlines()
                      if line.startswith("data: {\"error\"")]
            assert len(errors) == 1, errors
            return resp.status, errors[0], request_id


def _env(**keys) -> dict[str, str]:
    return {f"BMO_PROVIDERS__FAKE__{k.upper()}": str(v) for k, v in keys.items()}


@pytest.mark.parametrize("stream", [False, True])
async def test_an_endless_trickle_ends_at_max_answer_s_with_a_504_and_a_ledger_row(start_compat, stream):
    compat = await start_compat(env=_env(max_answer_s=1.5))
    compat.model.answer(reply("start", endless=True, chunk_delay_s=0.002))
    status, err, request_id = await _chat(compat, stream=stream)
    assert err["type"] == "upstream_error" and err["code"] == "upstream_timeout"
    assert "Provider 'fake'" in err["message"] and "max_answer_s" in err["message"]
    assert status == (200 if stream else 504)  # a stream already committed to 200 carries the error as an event
    row = await compat.row(request_id)
    assert (row["outcome"], row["http_status"]) == ("error_500", 504)
    assert "max_answer_s" in row["error"]
    await compat.up.wait_disconnect(5)  # the upstream call was closed, not left running


@pytest.mark.parametrize("stream", [False, True])
async def test_an_answer_over_max_answer_bytes_is_a_502_and_a_ledger_row(start_compat, stream):
    compat = await start_compat(env=_env(max_answer_bytes=20_000))
    compat.model.answer(reply("x" * 100_000, chunks=1000))
    status, err, request_id = await _chat(compat, stream=stream)
    assert err["code"] == "upstream_answer_too_large" and "max_answer_bytes" in err["message"]
    assert "Provider 'fake'" in err["message"]
    assert status == 502 or (stream and status == 200)  # a stream that already sent text carries it as an event
    row = await compat.row(request_id)
    assert (row["outcome"], row["http_status"]) == ("error_500", 502)


GARBAGE = "data: this is not json\n\n" * 5 + "data: [DONE]\n\n"
NO_FINISH = ('data: {"choices": [{"index": 0, "delta": {"content": "half an answer"}, "finish_reason": null}]}\n\n'
             "data: [DONE]\n\n")


@pytest.mark.parametrize("raw, words", [(GARBAGE, "not chat-completion chunks"),
                                        (NO_FINISH, "without a finish_reason")])
async def test_a_garbage_stream_or_done_without_finish_reason_is_a_502_not_a_final_answer(compat, raw, words):
    compat.model.answer(Reply(raw_stream=raw))
    client = compat.aclient(max_retries=0)
    with pytest.raises(openai.APIStatusError) as err:
        await client.chat.completions.create(model=MODEL, messages=ASK)
    assert err.value.status_code == 502 and err.value.body["code"] == "upstream_bad_stream"
    assert "Provider 'fake'" in err.value.message and words in err.value.message
    await compat.assert_outcome(err.value.request_id, "error_500", 502, level="warn")
    await client.close()


async def test_a_non_streaming_client_that_leaves_cancels_the_run_within_a_second(start_compat):
    compat = await start_compat(ambiguity_action="code")  # no router call: the only model call is the run's
    compat.model.answer(reply("thinking", stall=True))
    async with aiohttp.ClientSession() as http:
        task = asyncio.ensure_future(http.post(compat.api + "/chat/completions", headers=HEADERS,
                                               json={"model": MODEL, "messages": ASK}))
        await compat.up.wait_requests(1, timeout=10)  # the run is waiting on the model
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await compat.up.wait_disconnect(1.0)  # the model call was closed within a second
    request_id = (await compat.records("openai_compat.fired"))[-1]["request_id"]
    async with asyncio.timeout(5):
        while (row := await compat.row(request_id))["status"] != "finished":
            await asyncio.sleep(0.05)
    assert row["outcome"] == "cancelled", row


async def _down_compat(start_compat, base_url: str):
    extra = f'[providers.down]\nkind = "openai"\nbase_url = "{base_url}"\nmodels = ["m"]\nmax_retries = 0\n'
    return await start_compat(extra_toml=extra)


async def test_connection_refused_names_the_provider_not_its_address(start_compat):
    port = free_port()  # nothing listens here
    compat = await _down_compat(start_compat, f"http://127.0.0.1:{port}/v1")
    status, err, request_id = await _chat(compat, stream=False, model="down/m")
    assert status == 502 and err["code"] == "upstream_unreachable"
    assert "Cannot reach provider 'down'" in err["message"] and "refused" in err["message"]
    assert str(port) not in err["message"] and "127.0.0.1" not in err["message"]
    assert "Client" not in err["message"] and "Error" not in err["message"]
    row = await compat.row(request_id)
    assert f"127.0.0.1:{port}" in row["error"]  # the ledger keeps the full story
    action = (await compat.records("openai_compat.action", request_id=request_id))[0]
    assert f"127.0.0.1:{port}" in action["error"]


async def test_a_dns_failure_names_the_provider_not_the_host_name(start_compat):
    compat = await _down_compat(start_compat, "http://models.internal-cluster.invalid:8080/v1")
    status, err, request_id = await _chat(compat, stream=True, model="down/m")
    assert status == 502 and "Cannot reach provider 'down'" in err["message"]
    assert "does not resolve" in err["message"]
    assert "internal-cluster" not in err["message"] and "Client" not in err["message"]
    assert "internal-cluster.invalid" in (await compat.row(request_id))["error"]


async def test_an_upstream_5xx_body_is_not_relayed_to_the_client(compat):
    leak = "backend 10.20.30.40:8000 (vllm-0.gpu-pool.svc.cluster.local) is down"
    for stream in (False, True):
        compat.model.answer(error(500, leak))
        status, err, request_id = await _chat(compat, stream=stream)
        assert status == 502 and err["type"] == "upstream_error"
        assert "Provider 'fake' answered HTTP 500" in err["message"]
        assert "10.20.30.40" not in err["message"] and "cluster.local" not in err["message"]
        assert compat.up.base_url not in err["message"]
        assert leak in (await compat.row(request_id))["error"]
