"""kind = "llamacpp": finding the GGUF file, clear config errors, and (opt-in) BMO on a real small model."""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.request
from pathlib import Path

import msgspec
import openai
import pytest

from bmo.agent.config import ProviderOptions
from bmo.agent.providers.llamacpp import model_file
from bmo.agent.providers.llamacpp.provider import LlamaCppProvider, create
from bmo.testing.harness import clean_env, spawn_serve

MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
MODEL_SIZE = 491_400_064
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


# -- opt-in: a real model ----------------------------------------------------------------------
e2e = pytest.mark.skipif(os.environ.get("BMO_E2E_LOCAL_MODEL") != "1",
                         reason="opt-in: BMO_E2E_LOCAL_MODEL=1 (and scripts/fetch-test-model, pip install '.[local]')")


def _model() -> Path:
    path = Path(os.environ.get("BMO_E2E_MODEL_PATH") or
                REPO_ROOT / ".cache/test-model/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
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
    tmp = tmp_path_factory.mktemp("local")
    workspace = tmp / "ws"
    workspace.mkdir()
    (workspace / "notes.txt").write_text("The secret word is PINEAPPLE.\n")
    (tmp / "bmo.toml").write_text(
        f'[options.openai_compat]\nenabled = true\nambiguity_action = "code"  # a 0.5B router asks back too often\n\n[providers.local]\nkind = "llamacpp"\n'
        f'model_path = {json.dumps(str(_model()))}\ncontext_size = 4096\nmodels = ["qwen"]\n\n'
        f'[agent]\ndefault_model = "local/qwen"\nworkspace = {json.dumps(str(workspace))}\nmax_steps = 6\n'
        # A 0.5B model calls tools for anything when told "use tools when they help": say when they help.
        'system_prompt = "You are a helpful assistant. Answer questions directly. Call a tool only when the user '
        'asks about a file."\n')
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
async def test_the_llamacpp_provider_answers_what_is_2_plus_3_with_a_5_streams_usage_and_stops_its_child():
    # Straight through the provider interface: with BMO's ten tools offered, this 0.5B model calls
    # tools even for arithmetic (recorded in the report), so the agent-level turns below use a file.
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
        model="local/qwen", stream=True, stream_options={"include_usage": True},
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


@e2e
@pytest.mark.local_model_e2e
def test_the_local_model_reads_a_workspace_file_through_a_text_tool_call(local_bmo):
    started = time.monotonic()
    answer = _client(local_bmo).chat.completions.create(
        model="local/qwen", messages=[{"role": "user", "content":
                                       "Use the read_file tool to read notes.txt, then tell me the secret word."}])
    print(f"\nread_file turn end to end: {time.monotonic() - started:.1f}s")
    assert "PINEAPPLE" in answer.choices[0].message.content.upper()
    log = (Path(local_bmo.stderr_path).parent / "logs" / "bmo.jsonl").read_text()
    assert "read_file" in log
