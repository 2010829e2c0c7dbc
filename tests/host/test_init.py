"""``bmo init`` and the first start: a found model server serves a chat; nothing found says what to do."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest

from bmo.guidance import NO_MODEL
from bmo.testing.harness import clean_env, free_port, spawn_serve
from tests.host.test_repo_commands import ROOT


@pytest.fixture(autouse=True)
def no_models_of_this_machine(tmp_path, monkeypatch):
    """``bmo init`` looks for GGUF files in the Hugging Face cache and under $HOME: not this machine's."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-hub"))


def gguf(path: Path, size: int = 64) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"GGUF" + bytes(size - 4))
    return path


@pytest.fixture
def fake_server_port(tmp_path):
    """A fake OpenAI-compatible model server in its own process, on a free port."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bmo.testing.fake_upstream", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert "fake upstream serving" in proc.stdout.readline()
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def serve_in(tmp_path, **env):
    return spawn_serve(["--allow-no-auth", "--addr", "127.0.0.1:0"], data_dir=tmp_path / "data", cwd=tmp_path,
                       env=clean_env(tmp_path, **env))


def test_init_yes_with_a_model_server_on_a_probed_port_writes_a_config_that_serves_a_chat(
        run_bmo, tmp_path, fake_server_port):
    closed = free_port()
    result = run_bmo("init", "--yes", "--probe-port", str(closed), "--probe-port", str(fake_server_port))
    assert result.returncode == 0, result.stderr
    assert f"http://127.0.0.1:{fake_server_port}/v1" in result.stdout and "bmo serve --allow-no-auth" in result.stdout
    written = (tmp_path / "bmo.toml").read_text()
    config = tomllib.loads(written)
    assert config["options"]["openai_compat"]["enabled"] is True
    provider = config["providers"][f"local_{fake_server_port}"]
    assert provider == {"kind": "openai", "base_url": f"http://127.0.0.1:{fake_server_port}/v1"}
    assert config["agent"]["default_model"] == f"local_{fake_server_port}/fake-model"
    server = serve_in(tmp_path)
    try:
        assert server.url, server.stderr()
        assert NO_MODEL not in server.stderr()
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
        answer = client.chat.completions.create(model=f"local_{fake_server_port}/fake-model",
                                                messages=[{"role": "user", "content": "hello there"}])
        assert answer.choices[0].message.content == "echo: hello there"
    finally:
        assert server.terminate() == 0


def test_init_with_nothing_found_writes_what_to_fill_in_and_serve_starts_and_says_so(run_bmo, tmp_path):
    result = run_bmo("init", "--yes", "--probe-port", str(free_port()))
    assert result.returncode == 0, result.stderr
    assert "found nothing" in result.stdout
    written = (tmp_path / "bmo.toml").read_text()
    assert "uncomment ONE provider table" in written and 'kind = "llamacpp"' in written
    assert "providers" not in tomllib.loads(written)  # every example is commented out
    server = serve_in(tmp_path)
    try:
        assert server.url, server.stderr()
        stderr = server.stderr()
        assert stderr.count("bmo init") == 1 and "no [providers.NAME] table is configured" in stderr
        status, body = get_json(server.url + "/v1/bmo/posture")
        assert status == 200
        assert body["readiness"]["ready"] is False
        assert body["readiness"]["reasons"] == ["no [providers.NAME] table is configured"]
        assert "bmo init" in body["readiness"]["what_to_do"]
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model="x/y", messages=[{"role": "user", "content": "hi"}])
        assert failed.value.status_code == 503 and "bmo init" in failed.value.message
    finally:
        assert server.terminate() == 0


def test_init_refuses_to_overwrite_an_existing_file_without_force(run_bmo, tmp_path):
    (tmp_path / "bmo.toml").write_text("# mine\n")
    refused = run_bmo("init", "--yes", "--probe-port", str(free_port()))
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert (tmp_path / "bmo.toml").read_text() == "# mine\n"
    forced = run_bmo("init", "--yes", "--force", "--probe-port", str(free_port()))
    assert forced.returncode == 0 and "[options.openai_compat]" in (tmp_path / "bmo.toml").read_text()


def test_init_writes_the_api_key_variable_name_never_the_key(run_bmo, tmp_path):
    result = run_bmo("init", "--yes", "--path", "conf/bmo.toml", "--probe-port", str(free_port()),
                     env={"OPENAI_API_KEY": "sk-secret-value-123", "OPENROUTER_API_KEY": "or-secret-456"})
    assert result.returncode == 0, result.stderr
    written = (tmp_path / "conf" / "bmo.toml").read_text()
    assert "secret" not in written and "secret" not in result.stdout
    config = tomllib.loads(written)
    assert config["providers"]["openai"]["api_key_env"] == "OPENAI_API_KEY"
    assert config["providers"]["openrouter"]["api_key_env"] == "OPENROUTER_API_KEY"
    assert config["agent"]["default_model"] == "openai/gpt-4o-mini"
    assert "--config conf/bmo.toml" in result.stdout


def test_init_probe_ports_come_from_the_environment_too(run_bmo, tmp_path, fake_server_port):
    result = run_bmo("init", "--yes", env={"BMO_INIT_PROBE_PORTS": str(fake_server_port)})
    assert result.returncode == 0, result.stderr
    assert f"local_{fake_server_port}" in tomllib.loads((tmp_path / "bmo.toml").read_text())["providers"]


def test_init_local_model_writes_an_active_llamacpp_provider(run_bmo, tmp_path):
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")
    result = run_bmo("init", "--yes", "--probe-port", str(free_port()), "--local-model", str(gguf))
    assert result.returncode == 0, result.stderr
    config = tomllib.loads((tmp_path / "bmo.toml").read_text())
    assert config["providers"]["local"]["kind"] == "llamacpp"
    assert config["providers"]["local"]["model_path"] == str(gguf)
    assert config["agent"]["default_model"] == "local/tiny"


def test_init_yes_with_nothing_else_found_uses_the_smallest_gguf_in_the_hugging_face_cache(run_bmo, tmp_path):
    snapshot = tmp_path / "hf-hub" / "models--Owner--Tiny-GGUF" / "snapshots" / "0123abcd"
    small, big = gguf(snapshot / "tiny-q4_k_m.gguf"), gguf(snapshot / "tiny-q8_0.gguf", 4096)
    gguf(snapshot / "mmproj-tiny-f16.gguf", 8)  # a vision projector, not a model
    (snapshot / "notes.gguf").write_text("not a model")  # no GGUF magic
    result = run_bmo("init", "--yes", "--probe-port", str(free_port()))
    assert result.returncode == 0, result.stderr
    assert f"found: the embedded local model {small}" in result.stdout and "smallest of 2" in result.stdout
    text = (tmp_path / "bmo.toml").read_text()
    config = tomllib.loads(text)
    assert config["providers"]["local"] == {"kind": "llamacpp", "model_path": str(small), "context_size": 4096}
    assert config["agent"]["default_model"] == "local/tiny-q4_k_m"
    assert 'repo = "Owner/Tiny-GGUF", file = "tiny-q4_k_m.gguf"' in text and str(big) not in text


def test_init_with_a_server_found_lists_the_ggufs_of_lm_studio_in_comments_only(run_bmo, tmp_path, fake_server_port):
    model = gguf(tmp_path / "home" / ".lmstudio" / "models" / "lmstudio-community" / "Qwen-GGUF" / "qwen-q4.gguf")
    result = run_bmo("init", "--yes", "--probe-port", str(fake_server_port))
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "bmo.toml").read_text()
    config = tomllib.loads(text)
    assert list(config["providers"]) == [f"local_{fake_server_port}"]  # the server, not the file
    assert f"#   {model}  (0 MiB)" in text and "also found 1 GGUF file" in result.stdout


def test_serve_with_no_config_starts_prints_the_guidance_once_and_the_routes_answer_with_it(tmp_path):
    server = serve_in(tmp_path)
    try:
        assert server.url, server.stderr()
        stderr = server.stderr()
        assert stderr.count(NO_MODEL) == 1
        assert "the OpenAI-compatible API is disabled" in stderr
        with urllib.request.urlopen(server.url + "/healthz", timeout=30) as resp:
            assert resp.status == 200
        for path in ("/v1/models", "/v1/openai-compat/posture"):
            status, body = get_json(server.url + path)
            assert status == 404
            assert "bmo init" in body["error"]["message"] and "[providers.NAME]" in body["error"]["message"]
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.NotFoundError) as failed:
            client.chat.completions.create(model="x/y", messages=[{"role": "user", "content": "hi"}])
        assert "bmo init" in failed.value.message
        status, posture = get_json(server.url + "/v1/bmo/posture")
        assert status == 200 and posture["readiness"]["ready"] is False
        assert len(posture["readiness"]["reasons"]) == 2
    finally:
        assert server.terminate() == 0


def test_the_readme_first_line_after_setup_reaches_a_served_chat(tmp_path, fake_server_port):
    """The README's first command, its setup step left out (the suite runs in the set-up venv)."""
    first = (ROOT / "README.md").read_text().split("```bash\n", 1)[1].splitlines()[0].split("   #", 1)[0]
    assert first.startswith("bash scripts/setup && ")
    bin_dir = Path(sys.executable).parent
    line = first.removeprefix("bash scripts/setup && ").replace(".venv/bin/bmo", str(bin_dir / "bmo"))
    data = tmp_path / "data"
    env = clean_env(tmp_path, BMO_INIT_PROBE_PORTS=str(fake_server_port), BMO_ADDR="127.0.0.1:0",
                    BMO_DATA_DIR=str(data))
    with open(tmp_path / "stderr", "wb") as err:
        proc = subprocess.Popen(["bash", "-c", line],
                                cwd=tmp_path, env=env, stdout=err, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = ""
        for _ in range(600):  # until the ready line, or the process ends
            match = re.search(r"BMO serving on (http://\S+)/v1", (tmp_path / "stderr").read_text(errors="replace"))
            if match or proc.poll() is not None:
                url = match.group(1) if match else ""
                break
            time.sleep(0.1)
        assert url, (tmp_path / "stderr").read_text()
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        answer = client.chat.completions.create(model=f"local_{fake_server_port}/fake-model",
                                                messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content == "echo: hi"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def test_serve_with_an_unreachable_provider_starts_says_so_once_and_the_posture_says_why(tmp_path):
    (tmp_path / "bmo.toml").write_text(
        f'[options.openai_compat]\nenabled = true\n\n[providers.down]\nkind = "openai"\n'
        f'base_url = "http://127.0.0.1:{free_port()}/v1"\nmax_retries = 0\n')
    server = serve_in(tmp_path)
    try:
        assert server.url, server.stderr()
        stderr = server.stderr()
        assert stderr.count(NO_MODEL) == 1 and "no configured provider (down)" in stderr
        with urllib.request.urlopen(server.url + "/healthz", timeout=30) as resp:
            assert resp.status == 200
        status, posture = get_json(server.url + "/v1/bmo/posture")
        assert status == 200 and posture["readiness"]["ready"] is False
        assert "unreachable" in posture["readiness"]["reasons"][0]
    finally:
        assert server.terminate() == 0
