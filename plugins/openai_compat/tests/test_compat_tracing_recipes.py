"""Every ``bmo logs`` recipe in docs/tracing.md, run as a real command against the log of a real ``bmo serve``."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import apsw
import openai
import pytest
from compat_support import MODEL, TOKEN, ScriptedModel, compat_toml

from bmo.testing.fake_upstream import FakeUpstream, reply
from bmo.testing.harness import free_port, spawn_serve

TRACING_DOC = Path(__file__).resolve().parents[3] / "docs" / "tracing.md"
UA = "my-client/2.0"
BLOCK = "CREATE TRIGGER block_runs BEFORE INSERT ON openai_compat_runs BEGIN SELECT RAISE(ABORT, 'disk full'); END"


def recipes() -> dict[str, str]:
    """``# recipe: NAME`` followed by its ``bmo logs`` line, from the doc's bash blocks."""
    text = TRACING_DOC.read_text()
    found = {}
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        lines = block.strip().splitlines()
        for comment, command in zip(lines, lines[1:]):
            match = re.match(r"# recipe: (\S+)$", comment)
            if match:
                assert command.startswith("bmo logs "), command
                found[match.group(1)] = command
    return found


# What a recipe's output must not show: a client's mistake is not trouble.
ABSENT = {"trouble": ["error_class=client", "status=404", "status=400"],
          "server-faults": ["error_class=client"]}
# What each recipe's output must show, given the traffic below.
EXPECT = {
    "client-hit": [UA, "openai_compat.fired"],
    "request-end": ["openai_compat.fired", "openai_compat.action", "outcome=final_answer"],
    "trouble": ["outcome=persist_failed", "error_class=server"],
    "client-errors": ["error_class=client", "status=404", "status=400"],
    "server-faults": ["outcome=persist_failed", "error_class=server"],
    "session-reuse": ["is_session_reuse=true", "session_id=s-trace"],
    "session-outcomes": ["outcome=final_answer", "session_id=s-trace"],
    "queued": ["outcome=queued"],
    "resumed": ["outcome=resumed"],
    "auth-failed": ["outcome=auth_failed"],
    "auth-failed-clients": [f'"value": "{UA}"'],
    "top-user-agents": [f'"value": "{UA}"'],
    "top-routes": ["chat_completions", "models_list"],
    "top-outcomes": ['"value": "final_answer"', '"value": "queued"'],
    "cancelled": ["outcome=cancelled", "stream=true"],
    "ledger-health": ["openai_compat.ledger_degraded", "openai_compat.ledger_recovered"],
    "persist-failed": ['"outcome":"persist_failed"', '"served_outcome":"final_answer"'],
    "window": ["openai_compat.action"],
    "follow": ["openai_compat.action"],
}


async def make_traffic(url: str, data_dir: Path, model: ScriptedModel) -> dict[str, str]:
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=TOKEN, default_headers={"User-Agent": UA},
                                max_retries=0, timeout=20)
    out = {}
    first = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hello"}], extra_headers={"X-BMO-Session-Id": "s-trace"})
    out["REQUEST_ID"] = first.headers["x-request-id"]
    out["SESSION_ID"] = "s-trace"
    await client.chat.completions.create(
        model=MODEL, extra_headers={"X-BMO-Session-Id": "s-trace"},
        messages=[{"role": "user", "content": "hello"}, {"role": "assistant", "content": "echo: hello"},
                  {"role": "user", "content": "again"}])
    await client.models.list()
    # two client mistakes: an unknown model (404) and n=2 (400)
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="fake/no-such-model", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model=MODEL, n=2, messages=[{"role": "user", "content": "x"}])
    # queued, then resumed
    model.answer(reply("slowly but surely", chunks=3, chunk_delay_s=0.3))
    slow = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "slow"}], stream=True,
                                                extra_headers={"X-BMO-Session-Id": "s-busy"})
    running = slow.response.headers["x-request-id"]
    with pytest.raises(openai.ConflictError):
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                             extra_headers={"X-BMO-Session-Id": "s-busy"})
    resumed = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                                   extra_headers={"X-BMO-Resume": running})
    assert resumed.choices[0].message.content == "slowly but surely"
    _ = [c async for c in slow]
    # auth failure
    bad = openai.AsyncOpenAI(base_url=url + "/v1", api_key="wrong", default_headers={"User-Agent": UA}, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await bad.models.list()
    await bad.close()
    # a client that walks away mid-stream
    model.answer(reply("half an answer", chunks=2, stall=True))
    async with aiohttp.ClientSession() as http:
        response = await http.post(url + "/v1/chat/completions",
                                   headers={"Authorization": f"Bearer {TOKEN}", "User-Agent": UA},
                                   json={"model": MODEL, "messages": [{"role": "user", "content": "hang"}], "stream": True})
        async with asyncio.timeout(10):
            seen = b""
            while b"answer" not in seen:
                seen += await response.content.readany()
        response.close()
    async with asyncio.timeout(15):  # its books must close before the ledger is sabotaged below
        while not (await client.get("/openai-compat/runs", cast_to=object,
                                    options={"params": {"outcome": "cancelled"}}))["data"]:
            await asyncio.sleep(0.05)
    # a ledger that refuses writes for one request, then recovers
    saboteur = apsw.Connection(str(data_dir / "bmo.sqlite3"))
    saboteur.setbusytimeout(5000)
    saboteur.execute(BLOCK)
    await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "still?"}])
    saboteur.execute("DROP TRIGGER block_runs")
    saboteur.close()
    await client.models.list()
    await client.close()
    return out


async def run_recipe(command: list[str], env: dict, cwd: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(*command, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


async def follow_recipe(command: list[str], env: dict, cwd: Path) -> str:
    """--follow never ends by itself: read until a record shows, then stop it."""
    proc = await asyncio.create_subprocess_exec(*command, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL)
    seen = ""
    try:
        async with asyncio.timeout(30):
            while "openai_compat.action" not in seen:
                line = await proc.stdout.readline()
                if not line:
                    break
                seen += line.decode()
    finally:
        proc.terminate()
        await proc.wait()
    return seen


async def test_every_tracing_recipe_runs_against_a_real_server_log(tmp_path):
    found = recipes()
    assert set(found) == set(EXPECT), f"recipes and expectations differ: {set(found) ^ set(EXPECT)}"
    data_dir = tmp_path / "data"
    workspace = tmp_path / "ws"
    workspace.mkdir()
    model = ScriptedModel()
    async with FakeUpstream(models=["fake-model", "other-model"], default=model) as up:
        config = tmp_path / "bmo.toml"
        config.write_text(compat_toml(up, workspace))
        start = datetime.now(timezone.utc) - timedelta(seconds=5)
        server = await asyncio.to_thread(
            spawn_serve, ["--addr", f"127.0.0.1:{free_port()}", "--auth-token", TOKEN, "--config", str(config)],
            data_dir=data_dir, env={"BMO_LOAD_PLUGINS": "openai_compat"}, cwd=tmp_path)
        try:
            assert server.url, server.stderr()
            values = await make_traffic(server.url, data_dir, model)
        finally:
            assert await asyncio.to_thread(server.terminate) == 0, server.stderr()
    values["FROM"] = start.isoformat(timespec="seconds")
    values["TO"] = (datetime.now(timezone.utc) + timedelta(seconds=5)).isoformat(timespec="seconds")
    env = {**os.environ, "BMO_DATA_DIR": str(data_dir), "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
           "BMO_LOAD_PLUGINS": "openai_compat"}
    commands = {}
    for name, line in found.items():
        text = re.sub(r"\$([A-Z_]+)", lambda m: values[m.group(1)], line)
        commands[name] = [sys.executable, "-m", "bmo", *shlex.split(text)[1:]]
    names = [n for n in commands if n != "follow"]
    results = await asyncio.gather(*(run_recipe(commands[n], env, tmp_path) for n in names))
    outputs = dict(zip(names, results))
    outputs["follow"] = (0, await follow_recipe(commands["follow"], env, tmp_path), "")
    failures = []
    for name, (code, out, err) in outputs.items():
        missing = [want for want in EXPECT[name] if want not in out]
        unwanted = [text for text in ABSENT.get(name, ()) if text in out]
        if code != 0 or missing or unwanted:
            failures.append(f"{name}: `{found[name]}` exit {code}, missing {missing}, unwanted {unwanted}\n"
                            f"{out[:800]}{err[:400]}")
    assert not failures, "\n\n".join(failures)
    # The request-end recipe finds exactly the two records of that request.
    lines = [l for l in outputs["request-end"][1].splitlines() if values["REQUEST_ID"] in l]
    assert len(lines) == 2
