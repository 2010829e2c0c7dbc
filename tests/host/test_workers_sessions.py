"""Sessions across the workers of one ``bmo serve --workers 2``: a turn running on worker A makes a request on
worker B get 409 ``queued``, ``X-BMO-Resume`` on B streams A's run to its end, and a cancel on B stops A's run.

Which worker serves a connection is the kernel's choice: a test opens connections until one lands on
the worker it wants, then keeps using that connection (keep-alive).
"""

from __future__ import annotations

import asyncio
import os
import signal

import httpx
import openai
import pytest

from bmo.testing.fake_replies import echo_last_user, reply, tool_call
from tests.host.workers_support import MODEL, ThreadedUpstream, serving_pids, start_workers, stop

TOKEN = "w-token"
SLOW = "the quick brown fox jumps over the lazy dog again and again"


def model(body: dict):
    """The router says clear; "slow ..." turns stream slowly; the rest are echoed."""
    if any((t.get("function") or {}).get("name") == "bmo_route" for t in body.get("tools") or []):
        return reply(tool_calls=[tool_call("bmo_route", {"decision": "clear", "question": ""})])
    last = body["messages"][-1]
    if str(last.get("content", "")).startswith("slow"):
        return reply(SLOW, chunks=40, chunk_delay_s=0.25)
    return echo_last_user(body)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    up = ThreadedUpstream(default=model)
    base = tmp_path_factory.mktemp("workers-sessions")
    running = start_workers(base, up.up, extra="[store]\nlease_ttl_s = 5\n")
    yield running
    stop(running)
    up.stop()


async def pinned(url: str, *, on: str | None = None, not_on: str | None = None):
    """(SDK client, worker, its httpx client): one kept-alive connection served by worker ``on`` (or not ``not_on``)."""
    for _ in range(100):
        http = httpx.AsyncClient(limits=httpx.Limits(max_connections=1, max_keepalive_connections=1), timeout=30,
                                 headers={"Authorization": f"Bearer {TOKEN}"})
        worker = (await http.get(url + "/healthz")).headers["x-bmo-worker"]
        if (on is None or worker == on) and worker != not_on:
            client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=TOKEN, max_retries=0, http_client=http)
            return client, worker, http
        await http.aclose()
    raise AssertionError(f"no connection landed on the worker wanted (on={on}, not_on={not_on})")


async def start_slow_turn(url: str, session: str):
    """A streamed slow turn on some worker: (client, stream, its request id, the worker running it)."""
    client, worker, _ = await pinned(url)
    stream = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "slow go"}],
                                                  stream=True, extra_headers={"X-BMO-Session-Id": session})
    assert stream.response.headers["x-bmo-worker"] == worker
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    return client, stream, stream.response.headers["x-request-id"], worker


async def test_a_turn_on_one_worker_makes_the_other_answer_409_queued(server):
    client_a, stream, running, worker_a = await start_slow_turn(server.url, "s-w-409")
    client_b, worker_b, _ = await pinned(server.url, not_on=worker_a)
    with pytest.raises(openai.ConflictError) as err:
        await client_b.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "me too"}],
                                               extra_headers={"X-BMO-Session-Id": "s-w-409"})
    assert err.value.response.headers["x-bmo-worker"] == worker_b != worker_a
    assert err.value.body["code"] == "queued" and err.value.body["running_request_id"] == running
    assert err.value.response.headers["x-should-retry"] == "false"
    await stream.close()
    await client_a.close()
    await client_b.close()


async def test_resume_on_the_other_worker_streams_the_run_to_its_end(server):
    client_a, stream, running, worker_a = await start_slow_turn(server.url, "s-w-resume")
    client_b, worker_b, _ = await pinned(server.url, not_on=worker_a)
    resumed = await client_b.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "slow go"}], stream=True,
        extra_headers={"X-BMO-Session-Id": "s-w-resume", "X-BMO-Resume": running})
    assert resumed.response.headers["x-bmo-worker"] == worker_b != worker_a
    got_b = [c async for c in resumed]
    rest_a = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in got_b if c.choices) == SLOW
    assert got_b[-1].choices[0].finish_reason == rest_a[-1].choices[0].finish_reason == "stop"
    await client_a.close()
    await client_b.close()


async def test_a_cancel_on_the_other_worker_stops_the_run(server):
    client_a, stream, running, worker_a = await start_slow_turn(server.url, "s-w-cancel")
    client_b, worker_b, http = await pinned(server.url, not_on=worker_a)  # http: the native session API
    r = await http.post(server.url + "/v1/sessions/s-w-cancel/cancel", json={"reason": "stop from B"})
    assert r.status_code == 200 and r.headers["x-bmo-worker"] == worker_b != worker_a
    body = r.json()
    assert body["outcome"] == "cancelled" and body["run"]["id"] == running
    with pytest.raises(openai.APIError):  # A's stream ends with the cancel's error event
        async for _ in stream:
            pass
    await client_a.close()
    await client_b.close()


async def test_a_killed_workers_follower_row_is_closed_once_it_restarts_under_the_same_id(server):
    # Last in this module: it kills a worker (the supervisor starts it again).
    client_a, stream, running, worker_a = await start_slow_turn(server.url, "s-w-orphan")
    client_b, worker_b, http = await pinned(server.url, not_on=worker_a)
    follower = await client_b.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "slow go"}], stream=True,
        extra_headers={"X-BMO-Session-Id": "s-w-orphan", "X-BMO-Resume": running})
    follower_id = follower.response.headers["x-request-id"]
    async for chunk in follower:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    os.kill(serving_pids(server)[worker_b], signal.SIGKILL)
    # The restarted worker has B's id but a later start: the row B left running is its predecessor's, so
    # the first sweep of any worker closes it as start-up recovery would (a bound, not a timing).
    async with asyncio.timeout(30):
        while True:
            r = await run_events(server.url, follower_id)
            if r and r[-1]["terminal"]:
                break
            await asyncio.sleep(0.2)
    assert r[-1]["outcome"] == "error_500" and r[-1]["detail"] == {"error": "interrupted: the server stopped",
                                                                   "interrupted": True}
    await stream.close()
    await client_a.close()
    await client_b.close()


async def run_events(url: str, request_id: str) -> list[dict]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as http:
        r = await http.get(f"{url}/v1/openai-compat/runs/{request_id}/events")
        return r.json()["data"] if r.status_code == 200 else []
