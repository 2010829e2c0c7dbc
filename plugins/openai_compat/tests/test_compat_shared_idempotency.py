"""An ``Idempotency-Key`` across servers sharing one store: a retry that lands on another server joins the run
its first attempt started (or replays its finished answer), as a retry on the same server does.

Two real servers over one store (SQLite WAL in one data dir, or one throw-away PostgreSQL through the
``store_url`` fixture), the real ``openai`` SDK as the client, one scripted fake model behind both.
"""

from __future__ import annotations

import asyncio
import signal

import openai
import pytest
import pytest_asyncio
from compat_support import MODEL, TOKEN, Compat, ScriptedModel, compat_toml, is_router_call

from bmo.testing.fake_upstream import FakeUpstream, reply
from bmo.testing.harness import clean_env, spawn_serve, start_server

SHARED = "[store]\nshared = true\n"
SLOW = dict(chunks=6, chunk_delay_s=0.3)


@pytest_asyncio.fixture
async def pair(tmp_path, store_url):
    """Two servers on the test's shared store, in front of one fake model."""
    model = ScriptedModel()
    up = await FakeUpstream(models=["fake-model"], default=model).start()
    workspace = tmp_path / "ws"
    workspace.mkdir()
    started: list[Compat] = []
    for _ in range(2):
        toml = compat_toml(up, workspace, SHARED, ambiguity_action="code")
        server = await start_server(tmp_path / "data", config_toml=toml, token=TOKEN, load_plugins="openai_compat",
                                    store_url=store_url)
        started.append(Compat(server, up, model, workspace))
    yield started
    for compat in reversed(started):
        await compat.server.stop()
    await up.stop()


def agent_calls(compat: Compat) -> int:
    return sum(1 for r in compat.up.chat_requests if not is_router_call(r.body))


async def first_content(stream) -> str:
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            return chunk.choices[0].delta.content
    raise AssertionError("the stream ended before any content")


async def test_a_keyed_retry_on_the_other_server_joins_the_running_stateless_run(pair):
    a, b = pair
    a.model.answer(reply("paid exactly once", **SLOW))
    body = {"model": MODEL, "messages": [{"role": "user", "content": "charge it"}]}
    key = {"Idempotency-Key": "key-across-1"}
    on_a, on_b = a.aclient(max_retries=0), b.aclient(max_retries=0)
    first = await on_a.chat.completions.create(**body, stream=True, extra_headers=key)
    seen = await first_content(first)
    # The SDK's retry of the same POST, carried by a load balancer to the other server.
    retry = await on_b.chat.completions.with_raw_response.create(**body, extra_headers=key)
    rest = "".join([c.choices[0].delta.content or "" async for c in first if c.choices])
    assert seen + rest == "paid exactly once"
    assert retry.parse().choices[0].message.content == "paid exactly once"
    assert agent_calls(a) == 1  # one run reached the model
    retry_id = retry.headers["x-request-id"]
    await b.assert_outcome(retry_id, "resumed", 200)
    resume = next(e for e in await b.timeline(retry_id) if e["event"] == "resume")
    assert resume["detail"]["joined_by"] == "idempotency_key"
    assert resume["detail"]["resumed_request_id"] == first.response.headers["x-request-id"]
    await on_a.close()
    await on_b.close()


async def test_a_keyed_retry_on_the_other_server_after_the_end_replays_the_answer(pair):
    a, b = pair
    a.model.answer(reply("the stored answer"))
    body = {"model": MODEL, "messages": [{"role": "user", "content": "once"}]}
    key = {"Idempotency-Key": "key-across-2"}
    on_a, on_b = a.aclient(max_retries=0), b.aclient(max_retries=0)
    first = await on_a.chat.completions.with_raw_response.create(**body, extra_headers=key)
    assert first.parse().choices[0].message.content == "the stored answer"
    again = await on_b.chat.completions.with_raw_response.create(**body, extra_headers=key)
    assert again.parse().choices[0].message.content == "the stored answer"
    assert agent_calls(a) == 1
    await b.assert_outcome(again.headers["x-request-id"], "resumed", 200)
    await on_a.close()
    await on_b.close()


async def test_a_keyed_retry_on_the_other_server_joins_a_session_turn_instead_of_a_409(pair):
    a, b = pair
    a.model.answer(reply("one turn, one answer", **SLOW))
    body = {"model": MODEL, "messages": [{"role": "user", "content": "go on"}]}
    headers = {"Idempotency-Key": "key-across-3", "X-BMO-Session-Id": "s-keyed-across"}
    on_a, on_b = a.aclient(max_retries=0), b.aclient(max_retries=0)
    first = await on_a.chat.completions.create(**body, stream=True, extra_headers=headers)
    await first_content(first)
    retry = await on_b.chat.completions.with_raw_response.create(**body, extra_headers=headers)
    [c async for c in first]
    assert retry.parse().choices[0].message.content == "one turn, one answer"
    assert agent_calls(a) == 1
    await b.assert_outcome(retry.headers["x-request-id"], "resumed", 200)
    await on_a.close()
    await on_b.close()


async def test_concurrent_keyed_requests_on_both_servers_make_one_run(pair):
    a, b = pair
    a.model.answer(reply("only one of us ran", **SLOW))
    body = {"model": MODEL, "messages": [{"role": "user", "content": "race"}]}
    key = {"Idempotency-Key": "key-across-4"}
    on_a, on_b = a.aclient(max_retries=0), b.aclient(max_retries=0)
    answers = await asyncio.gather(on_a.chat.completions.create(**body, extra_headers=key),
                                   on_b.chat.completions.create(**body, extra_headers=key))
    assert [r.choices[0].message.content for r in answers] == ["only one of us ran"] * 2
    assert agent_calls(a) == 1
    await on_a.close()
    await on_b.close()


async def test_a_key_reused_for_another_request_on_the_other_server_is_a_422(pair):
    a, b = pair
    key = {"Idempotency-Key": "key-across-5"}
    on_a, on_b = a.aclient(max_retries=0), b.aclient(max_retries=0)
    await on_a.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "one"}], extra_headers=key)
    with pytest.raises(openai.UnprocessableEntityError) as err:
        await on_b.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "two"}],
                                           extra_headers=key)
    assert err.value.body["code"] == "idempotency_key_reused" and err.value.body["param"] == "Idempotency-Key"
    await on_a.close()
    await on_b.close()


async def test_a_keyed_retry_on_the_other_server_follows_a_run_through_its_quiet_spells(pair):
    a, b = pair
    a.model.answer(reply("slow but whole", chunks=3, chunk_delay_s=1.5))  # longer than a follower's quiet check
    body = {"model": MODEL, "messages": [{"role": "user", "content": "take your time"}]}
    key = {"Idempotency-Key": "key-across-6"}
    on_a, on_b = a.aclient(max_retries=0), b.aclient(max_retries=0)
    first = await on_a.chat.completions.create(**body, stream=True, extra_headers=key)
    await first_content(first)
    retry = await on_b.chat.completions.create(**body, extra_headers=key)
    [c async for c in first]
    assert retry.choices[0].message.content == "slow but whole"
    assert agent_calls(a) == 1
    await on_a.close()
    await on_b.close()


async def test_a_keyed_retry_after_the_first_server_died_starts_a_fresh_run(tmp_path, pair, store_url):
    a, b = pair  # `a` only lends its model; the first attempt goes to a `bmo serve` that is killed
    b.model.answer(reply("never finished", chunks=400, chunk_delay_s=0.1), reply("the fresh answer"))
    config = tmp_path / "killed.toml"
    config.write_text(compat_toml(b.up, b.workspace, SHARED, ambiguity_action="code"))
    killed = spawn_serve(["--addr", "127.0.0.1:0", "--config", str(config), "--auth-token", TOKEN],
                         data_dir=b.host.data_dir,
                         env=clean_env(tmp_path, BMO_LOAD_PLUGINS="openai_compat", BMO_WORKER_ID="killed",
                                       **({"BMO_STORE_URL": store_url} if store_url else {})))
    body = {"model": MODEL, "messages": [{"role": "user", "content": "try again"}]}
    key = {"Idempotency-Key": "key-across-7"}
    try:
        assert killed.url, killed.stderr()
        on_killed = openai.AsyncOpenAI(base_url=killed.url + "/v1", api_key=TOKEN, max_retries=0, timeout=30)
        first = await on_killed.chat.completions.create(**body, stream=True, extra_headers=key)
        await first_content(first)
        killed.terminate(signal.SIGKILL)
        on_b = b.aclient(max_retries=0, timeout=60)
        # The retry follows the dead server's run until its heartbeat is stale: then that run ends as interrupted.
        with pytest.raises(openai.APIStatusError) as err:
            await on_b.chat.completions.create(**body, extra_headers=key)
        assert err.value.status_code == 500
        again = await on_b.chat.completions.create(**body, extra_headers=key)  # the SDK's next retry
        assert again.choices[0].message.content == "the fresh answer"
        assert agent_calls(a) == 2
        await on_b.close()
        await on_killed.close()
    finally:
        killed.terminate(signal.SIGKILL)
