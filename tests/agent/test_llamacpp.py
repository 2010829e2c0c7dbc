"""kind = "llamacpp": finding the GGUF file, clear config errors, and (opt-in) BMO on a real small model."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import msgspec
import openai
import pytest

from bmo.agent.config import ProviderOptions
from bmo.agent.messages import ChatMessage, FunctionCall, ToolCall
from bmo.agent.providers.llamacpp import file_hints, model_file, tool_rounds
from bmo.agent.providers.llamacpp.provider import LlamaCppProvider, create
from bmo.testing.fake_upstream import reply
from bmo.testing.harness import clean_env, spawn_serve

MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
MODEL_SIZE = 491_400_064
MODEL_FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
LOCAL_MODEL = "local/" + MODEL_FILE.removesuffix(".gguf")  # what `bmo init --local-model` names it
REPO_ROOT = Path(__file__).resolve().parents[2]


def options(**kw) -> ProviderOptions:
    return msgspec.convert({"kind": "llamacpp", **kw}, ProviderOptions)


def test_repo_and_file_resolve_from_a_prepared_hugging_face_cache_without_the_network(tmp_path, monkeypatch):
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = tmp_path / "hub" / "models--Owner--Tiny-GGUF"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "tiny-q4.gguf").write_bytes(b"GGUF")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = model_file.resolve("local", options(repo="Owner/Tiny-GGUF", file="tiny-q4.gguf"))
    assert path == snapshot / "tiny-q4.gguf" and path.read_bytes() == b"GGUF"
    with pytest.raises(ValueError, match="not in the Hugging Face cache"):
        model_file.resolve("local", options(repo="Owner/Tiny-GGUF", file="other.gguf"))


def test_a_llamacpp_table_without_a_model_says_which_keys_to_set():
    with pytest.raises(ValueError) as failed:
        create("local", options())
    assert "model_path" in str(failed.value) and "repo" in str(failed.value) and "[providers.local]" in str(failed.value)


def test_a_missing_model_path_names_the_path(tmp_path):
    with pytest.raises(ValueError, match="is not a file"):
        model_file.resolve("local", options(model_path=str(tmp_path / "nope.gguf")))


def test_text_tool_calls_default_on_for_llamacpp_and_may_be_turned_off(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert create("local", options(model_path=str(gguf))).text_tool_calls is True
    assert create("local", options(model_path=str(gguf), text_tool_calls=False)).text_tool_calls is False
    provider = create("local", options(model_path=str(gguf), models=["qwen"]))
    assert isinstance(provider, LlamaCppProvider) and provider.alias == "qwen" and provider.models == []


def test_llamacpp_samples_at_temperature_0_and_skips_the_ambiguity_router_by_default(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    local = create("local", options(model_path=str(gguf)))
    assert (local.temperature, local.ambiguity_router) == (0.0, False)
    configured = create("local", options(model_path=str(gguf), temperature=0.8, ambiguity_router=True))
    assert (configured.temperature, configured.ambiguity_router) == (0.8, True)


def test_llamacpp_offers_the_file_reads_by_default_and_a_tools_list_replaces_them(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert create("local", options(model_path=str(gguf))).offered_tools == ["read_file", "list_dir", "search_files"]
    assert create("local", options(model_path=str(gguf), tools=["*"])).offered_tools == ["*"]
    assert create("local", options(model_path=str(gguf), tools=[])).offered_tools == []


READ_FILE = {"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}
TOOL_ROUND = [ChatMessage(role="user", content="Read notes.txt and tell me the secret word."),
              ChatMessage(role="assistant", tool_calls=[ToolCall(id="c1", function=FunctionCall(
                  name="read_file", arguments='{"path": "notes.txt"}'))]),
              ChatMessage(role="tool", tool_call_id="c1", content="The secret word is PINEAPPLE.")]


async def _sent(up, provider, messages, **kw) -> dict:
    provider.base_url = up.base_url.rstrip("/")  # the fake upstream stands in for the model's child server
    try:
        [_ async for _ in provider.stream("fake-model", messages, tools=[READ_FILE], **kw)]
    finally:
        await provider.close()
    return up.chat_requests[-1].body


async def test_past_tool_rounds_the_model_answers_without_tools_and_with_its_calls_as_text(tmp_path, fake_upstream):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    first = await _sent(fake_upstream, create("local", options(model_path=str(gguf))), TOOL_ROUND[:1])
    assert [t["function"]["name"] for t in first["tools"]] == ["read_file"]
    after = await _sent(fake_upstream, create("local", options(model_path=str(gguf))), TOOL_ROUND)
    assert "tools" not in after and "tool_choice" not in after
    assert after["messages"] == [{"role": "user", "content": "Read notes.txt and tell me the secret word.\n\n"
                                  "read_file(notes.txt) returned:\nThe secret word is PINEAPPLE.\n\n"
                                  "Answer my request now. Use these results where they help; otherwise answer from what you know."}]
    unlimited = await _sent(fake_upstream, create("local", options(model_path=str(gguf), tool_rounds=0)), TOOL_ROUND)
    assert unlimited["tools"] and unlimited["messages"][-1]["role"] == "tool"


async def test_under_tool_choice_none_the_model_is_shown_no_tools(tmp_path, fake_upstream):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    sent = await _sent(fake_upstream, create("local", options(model_path=str(gguf))), TOOL_ROUND[:1], tool_choice="none")
    assert "tools" not in sent and "tool_choice" not in sent


# Recorded from Qwen2.5-Coder-0.5B at llama.cpp's default temperature, offered the file reads.
ADD_CALL = '{"name": "add", "arguments": {"a": 2, "b": 3}}'


@pytest.fixture
def local_agent(agent, tmp_path, fake_upstream, monkeypatch):
    """``await local_agent()``: a server whose one provider is kind = "llamacpp", its child the fake upstream."""
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")

    async def start(self):  # the fake upstream stands in for the model's child server
        self.base_url, self.models = fake_upstream.base_url.rstrip("/"), [self.alias]

    monkeypatch.setattr(LlamaCppProvider, "_start", start)
    return lambda: agent('default_model = "local/fake-model"',
                         f'[providers.local]\nkind = "llamacpp"\nmodel_path = "{gguf}"\nmodels = ["fake-model"]\n',
                         providers=False)


async def test_a_text_call_to_a_made_up_tool_is_told_there_is_none_and_the_next_round_answers(
        local_agent, fake_upstream):
    # Before: the made-up call was released as text, and that JSON was the answer to "What is 2+3?".
    bmo = await local_agent()
    fake_upstream.script(reply(ADD_CALL, chunks=6), reply("2 + 3 = 5"))
    session = await bmo.create_session()
    events = await bmo.run(session["id"], "What is 2+3?")
    assert events[-1]["outcome"] == "final_answer" and events[-1]["text"] == "2 + 3 = 5"
    first, second = (r.body for r in fake_upstream.chat_requests)
    assert first["temperature"] == 0 and [t["function"]["name"] for t in first["tools"]] == [
        "read_file", "list_dir", "search_files"]
    assert "tools" not in second
    # "There is no tool named add" tells the model nothing about the request: it is not shown.
    assert second["messages"][-1] == {"role": "user", "content": "What is 2+3?\n\n" + tool_rounds.ANSWER_NOW}
    history = await (await bmo.co.get_session(session["id"])).messages()
    assert history[1].tool_calls[0].function.name == "add" and "no tool named 'add'" in history[2].content


def _failed_read(path: str, request: str) -> list[ChatMessage]:
    call = ToolCall(id="c1", function=FunctionCall(name="read_file", arguments=json.dumps({"path": path})))
    return [ChatMessage(role="user", content=request), ChatMessage(role="assistant", tool_calls=[call]),
            ChatMessage(role="tool", tool_call_id="c1", content=f"Error: {path} does not exist")]


def test_a_failed_call_on_a_path_the_request_names_is_shown_and_one_on_a_guessed_path_is_not():
    # Recorded at temperature 0.8: "What is 12-5?" made the model read a guessed file; shown the error,
    # it answered "12-5 does not exist".
    named = tool_rounds.as_text(_failed_read("todo.txt", "What does todo.txt say?"))
    assert named[-1].content == ("What does todo.txt say?\n\nread_file(todo.txt) returned:\nError: todo.txt does not "
                                 "exist\n\n" + tool_rounds.ANSWER_NOW)
    guessed = tool_rounds.as_text(_failed_read("workspace/file.txt", "What is 12-5?"))
    assert guessed == [ChatMessage(role="user", content="What is 12-5?\n\n" + tool_rounds.ANSWER_NOW)]


async def test_a_requests_own_temperature_wins_over_the_llamacpp_default(tmp_path, fake_upstream):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    sent = await _sent(fake_upstream, create("local", options(model_path=str(gguf))), TOOL_ROUND[:1],
                       sampling={"temperature": 0.7})
    assert sent["temperature"] == 0.7
    configured = await _sent(fake_upstream, create("local", options(model_path=str(gguf), temperature=0.3)),
                             TOOL_ROUND[:1])
    assert configured["temperature"] == 0.3


def test_a_call_of_a_tool_that_does_not_exist_is_left_out_even_when_it_names_the_requests_file():
    # Recorded at temperature 0.8: the model called a tool "notes.txt"; shown "there is no tool named", it answered that.
    call = ToolCall(id="c1", function=FunctionCall(name="notes.txt", arguments='{"path": "notes.txt"}'))
    folded = tool_rounds.as_text([
        ChatMessage(role="user", content="What does notes.txt say?"), ChatMessage(role="assistant", tool_calls=[call]),
        ChatMessage(role="tool", tool_call_id="c1", content="Error: there is no tool named 'notes.txt'. Available tools: "
                                                            "read_file.")])
    assert folded == [ChatMessage(role="user", content="What does notes.txt say?\n\n" + tool_rounds.ANSWER_NOW)]


async def test_file_hints_name_only_regular_files_inside_the_workspace(tmp_path):
    workspace = tmp_path / "ws"
    (workspace / "src").mkdir(parents=True)
    (workspace / "notes.txt").write_text("x")
    (workspace / "src" / "app.py").write_text("y")
    (tmp_path / "secret.txt").write_text("outside")
    (workspace / "link.txt").symlink_to(tmp_path / "secret.txt")  # resolves out of the workspace

    async def hints(text: str) -> str:
        sent = await file_hints.with_file_hints([ChatMessage(role="user", content=text)], workspace)
        return sent[-1].content[len(text):]

    assert await hints("What does notes.txt say?") == "\n\n(notes.txt is a file in the workspace: read_file reads it.)"
    assert await hints("Compare src/app.py with notes.txt.") == (
        "\n\n(src/app.py is a file in the workspace: read_file reads it.)"
        "\n(notes.txt is a file in the workspace: read_file reads it.)")
    for text in ("What is 2.5+3?", "Read link.txt", "Read ../secret.txt", f"Read {tmp_path}/secret.txt",
                 "Read missing.txt", "Read src"):
        assert await hints(text) == "", text


async def test_the_first_model_call_is_told_of_a_named_workspace_file_and_the_history_is_not(
        local_agent, workspace, fake_upstream):
    # Measured: asked "What does notes.txt say?", the 0.5B model invented the content every time; told the
    # file exists, it read it (docs/local-model.md).
    (workspace / "notes.txt").write_text("The secret word is PINEAPPLE.")
    bmo = await local_agent()
    fake_upstream.script(reply('{"name": "read_file", "arguments": {"path": "notes.txt"}}'),
                         reply("It says the secret word is PINEAPPLE."))
    session = await bmo.create_session()
    events = await bmo.run(session["id"], "What does notes.txt say?")
    assert events[-1]["text"] == "It says the secret word is PINEAPPLE."
    first, second = (r.body["messages"][-1]["content"] for r in fake_upstream.chat_requests)
    assert first == "What does notes.txt say?\n\n(notes.txt is a file in the workspace: read_file reads it.)"
    assert second.startswith("What does notes.txt say?\n\nread_file(notes.txt) returned:")  # no hint past round one
    history = await (await bmo.co.get_session(session["id"])).messages()
    assert history[0].content == "What does notes.txt say?"  # the hint was for the model, not the transcript


def test_a_negative_tool_rounds_is_refused_with_the_key(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(ValueError, match=r"\[providers.local\] tool_rounds"):
        create("local", options(model_path=str(gguf), tool_rounds=-1))


# -- opt-in: a real model ----------------------------------------------------------------------
e2e = pytest.mark.skipif(os.environ.get("BMO_E2E_LOCAL_MODEL") != "1",
                         reason="opt-in: BMO_E2E_LOCAL_MODEL=1 (and scripts/fetch-test-model, pip install '.[local]')")
# BMO_E2E_LOCAL_RUNS=5 repeats each chat turn: a small model's answers vary, one pass proves little.
RUNS = range(int(os.environ.get("BMO_E2E_LOCAL_RUNS") or 1))


def _model() -> Path:
    path = Path(os.environ.get("BMO_E2E_MODEL_PATH") or
                REPO_ROOT / ".cache/test-model" / MODEL_FILE)
    assert path.is_file(), f"{path} is missing: run scripts/fetch-test-model"
    assert path.stat().st_size == MODEL_SIZE
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    assert digest.hexdigest() == MODEL_SHA256, "the test model's hash differs: run scripts/fetch-test-model again"
    return path


@pytest.fixture(scope="module")
def local_bmo(tmp_path_factory):
    # The config a new user gets from `bmo init --local-model`: BMO's own prompt, router and defaults.
    tmp = tmp_path_factory.mktemp("local")
    (tmp / "notes.txt").write_text("The secret word is PINEAPPLE.\n")
    init = subprocess.run([sys.executable, "-m", "bmo", "init", "--yes", "--probe-port", "9",
                           "--local-model", str(_model())], cwd=tmp, env=clean_env(tmp),
                          capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stderr
    started = time.monotonic()
    server = spawn_serve(["--allow-no-auth", "--addr", "127.0.0.1:0"], data_dir=tmp / "data", cwd=tmp,
                         env=clean_env(tmp), timeout=300)
    try:
        assert server.url, server.stderr()
        print(f"\nbmo serve ready with the local model in {time.monotonic() - started:.1f}s")
        yield server
    finally:
        assert server.terminate() == 0


def _client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=300)


@e2e
@pytest.mark.local_model_e2e
async def test_the_llamacpp_provider_streams_with_usage_cancels_and_stops_its_child():
    # The provider interface itself, no tools: streamed deltas, usage, the posture, cancellation, shutdown.
    from bmo.agent.events import TextDelta
    from bmo.agent.messages import ChatMessage
    from bmo.agent.providers.base import ModelTurn

    provider = create("local", options(model_path=str(_model()), models=["qwen"], threads=2))
    try:
        assert await provider.discover() == ["qwen"]
        started = time.monotonic()
        items = [i async for i in provider.stream("qwen", [ChatMessage(role="user", content="What is 2+3?")],
                                                  sampling={"temperature": 0, "max_tokens": 48})]
        elapsed = time.monotonic() - started
        turn = items[-1]
        assert isinstance(turn, ModelTurn) and "5" in turn.text
        assert len([i for i in items if isinstance(i, TextDelta)]) > 1 and turn.usage.completion_tokens > 0
        posture = provider.posture()
        assert posture["state"] == "running" and posture["load_s"] > 0 and posture["rss_bytes"] > 100 * 2**20
        assert (posture["temperature"], posture["ambiguity_router"]) == (0.0, False)
        print(f"\nload {posture['load_s']}s, RSS {posture['rss_bytes'] / 2**20:.0f} MiB, "
              f"{turn.usage.completion_tokens} tokens in {elapsed:.1f}s")
        # Cancellation: leaving mid-answer closes the connection; the next call is served at once.
        stream = provider.stream("qwen", [ChatMessage(role="user", content="Count from 1 to 500.")])
        async for item in stream:
            if isinstance(item, TextDelta):
                break
        await stream.aclose()
        again = [i async for i in provider.stream("qwen", [ChatMessage(role="user", content="Say ok.")],
                                                  sampling={"max_tokens": 8})]
        assert isinstance(again[-1], ModelTurn)
        proc = provider.proc
    finally:
        await provider.close()
    assert proc.returncode is not None  # the model's process is gone with the provider


@e2e
@pytest.mark.local_model_e2e
def test_the_local_model_streams_its_answer(local_bmo):
    started = time.monotonic()
    stream = _client(local_bmo).chat.completions.create(
        model=LOCAL_MODEL, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Write one sentence about the sea."}])
    pieces, usage = [], None
    for chunk in stream:
        pieces += [c.delta.content for c in chunk.choices if c.delta.content]
        usage = chunk.usage or usage
    elapsed = time.monotonic() - started
    assert len(pieces) > 3 and "".join(pieces).strip()
    with urllib.request.urlopen(local_bmo.url + "/v1/bmo/posture", timeout=30) as resp:
        posture = json.loads(resp.read())["local_models"]["local"]
    assert posture["state"] == "running" and posture["rss_bytes"] > 100 * 2**20
    if usage:
        print(f"\nstreamed {usage.completion_tokens} tokens in {elapsed:.1f}s "
              f"({usage.completion_tokens / elapsed:.1f} tokens/s end to end)")


def _turn(server, prompt: str) -> tuple[str, float]:
    started = time.monotonic()
    answer = _client(server).chat.completions.create(model=LOCAL_MODEL,
                                                     messages=[{"role": "user", "content": prompt}])
    return answer.choices[0].message.content or "", time.monotonic() - started


@e2e
@pytest.mark.local_model_e2e
@pytest.mark.parametrize("attempt", RUNS)
def test_the_local_model_answers_what_is_2_plus_3_through_the_chat_api(local_bmo, attempt):
    text, elapsed = _turn(local_bmo, "What is 2+3?")
    print(f"\n2+3 turn end to end: {elapsed:.1f}s: {text!r}")
    assert re.search(r"\b5\b", text) and "Stopped:" not in text  # an answer, not a loop-detection notice


@e2e
@pytest.mark.local_model_e2e
@pytest.mark.parametrize(("prompt", "answer"), [("What is 7 times 6?", "42"), ("What is 12-5?", "7"),
                                                ("What is the capital of France?", "Paris")])
def test_the_local_model_answers_other_plain_questions(local_bmo, prompt, answer):
    text, elapsed = _turn(local_bmo, prompt)
    print(f"\n{prompt!r} end to end: {elapsed:.1f}s: {text!r}")
    assert re.search(rf"\b{answer}\b", text) and "Stopped:" not in text


@e2e
@pytest.mark.local_model_e2e
def test_the_local_model_reads_a_file_the_request_names_without_being_told_to(local_bmo):
    # Without the file hint the model invented the content every time (docs/local-model.md).
    text, elapsed = _turn(local_bmo, "What does notes.txt say?")
    print(f"\n'What does notes.txt say?' end to end: {elapsed:.1f}s: {text!r}")
    assert "PINEAPPLE" in text.upper()


@e2e
@pytest.mark.local_model_e2e
@pytest.mark.parametrize("attempt", RUNS)
def test_the_local_model_reads_a_workspace_file_through_a_text_tool_call(local_bmo, attempt):
    log = Path(local_bmo.stderr_path).parent / "logs" / "bmo.jsonl"
    seen = len(log.read_text()) if log.exists() else 0
    text, elapsed = _turn(local_bmo, "Use the read_file tool to read notes.txt, then tell me the secret word.")
    print(f"\nread_file turn end to end: {elapsed:.1f}s")
    assert "PINEAPPLE" in text.upper() and "Stopped:" not in text  # not a notice quoting the call's arguments
    deadline = time.monotonic() + 10  # records reach the log from a writer thread
    while '"read_file"' not in log.read_text()[seen:] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert '"read_file"' in log.read_text()[seen:]
