"""Shared pieces of the ``bmo serve --workers N`` tests: a fake model on its thread, the process tree, HTTP probes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
import urllib.request
from pathlib import Path

from bmo.testing.fake_upstream import FakeUpstream
from bmo.testing.fixtures import provider_toml
from bmo.testing.harness import ServeProcess, clean_env, spawn_serve

MODEL = "fake/fake-model"


class ThreadedUpstream:
    """A :class:`FakeUpstream` served by its own event loop thread, so sync tests can block freely."""

    def __init__(self, **kwargs):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-upstream", daemon=True)
        self.thread.start()
        self.up: FakeUpstream = self.call(FakeUpstream(**kwargs).start())

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def stop(self) -> None:
        self.call(self.up.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def config_text(up: FakeUpstream, extra: str = "") -> str:
    return (f'[options.openai_compat]\nenabled = true\n\n[agent]\ndefault_model = "{MODEL}"\n\n'
            f'[options.http_server]\nshutdown_grace_s = 5\n\n{provider_toml(up)}\n{extra}')


def start_workers(base: Path, up: FakeUpstream, *, workers: int = 2, extra: str = "", token: str = "w-token",
                  timeout: float = 120) -> ServeProcess:
    """``bmo serve --workers N`` on a free port over ``base/data``; waits for its one ready line."""
    data = base / "data"
    data.mkdir(parents=True, exist_ok=True)
    cfg = base / "bmo.toml"
    cfg.write_text(config_text(up, extra))
    env = clean_env(base, BMO_AUTH_TOKEN=token)
    server = spawn_serve(["--workers", str(workers), "--addr", "127.0.0.1:0", "--config", str(cfg)],
                         data_dir=data, env=env, cwd=base, timeout=timeout)
    assert server.url, server.stderr()
    return server


def children_of(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (zombies excluded), read from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(predicate, timeout: float = 30, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def get_json(url: str, token: str = "w-token") -> tuple[dict, dict]:
    """GET on a new connection: (body, headers)."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Connection": "close"})
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.loads(response.read()), dict(response.headers)


def posture_workers(server: ServeProcess) -> dict:
    return get_json(server.url + "/v1/bmo/posture")[0]["workers"]


def serving_pids(server: ServeProcess) -> dict[str, int]:
    """Worker id -> pid of each worker the posture shows serving."""
    return {w["worker"]: w["pid"] for w in posture_workers(server)["workers"] if w["state"] == "serving"}


def records(data: Path, msg: str) -> list[dict]:
    """Every record named ``msg`` in the supervisor's and the workers' logs."""
    found = []
    for path in sorted((data / "logs").rglob("bmo.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record.get("msg") == msg:
                found.append(record)
    return found


def stop(server: ServeProcess, sig: int = signal.SIGTERM) -> int:
    return server.terminate(sig, timeout=60)
