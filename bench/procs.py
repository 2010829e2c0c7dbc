"""Child processes of a bench run: start, wait until ready, read memory from /proc, stop."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path


class BenchError(RuntimeError):
    """A bench step that cannot go on; the message says what to check."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kb(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/PID/status (VmRSS, VmHWM), 0 if the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) if match else 0


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (servers may fork workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of one process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Proc:
    """One server process we started; ``log`` collects its stdout/stderr."""

    def __init__(self, name: str, argv: list[str], *, log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None, stdout_pipe: bool = False, stdin_pipe: bool = False):
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(log, "wb")
        self.popen = subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            bufsize=0,  # unbuffered pipes: select() on stdout must see every line we have not read
            stdout=subprocess.PIPE if stdout_pipe else self._log_file, stderr=self._log_file,
            start_new_session=True,  # our own process group: stop() reaches its workers too
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def read_ready_port(self, timeout: float = 30) -> int:
        """For our own bench servers: the port from their ``READY <port>`` stdout line."""
        line = _readline_with_timeout(self.popen, timeout)
        if not line.startswith("READY"):
            raise BenchError(f"{self.name} did not start: {line!r}\n{self.log_tail()}")
        return int(line.split()[1])

    def wait_log(self, pattern: str, timeout: float = 60) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log_tail(100_000))
            if match:
                return match
            if not self.alive():
                break
            time.sleep(0.1)
        raise BenchError(f"{self.name} did not become ready (waiting for {pattern!r}):\n{self.log_tail()}")

    def wait_http(self, url: str, timeout: float = 90, headers: dict | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                break
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise BenchError(f"{self.name} did not answer {url}:\n{self.log_tail()}")

    def memory(self) -> dict:
        """RSS now and peak RSS (VmHWM) in MB, summed over the process tree."""
        pids = descendants(self.pid) if self.alive() else []
        return {
            "rss_mb": sum(status_kb(p, "VmRSS") for p in pids) / 1024,
            "peak_rss_mb": sum(status_kb(p, "VmHWM") for p in pids) / 1024,
            "processes": len(pids),
        }

    def cpu(self) -> float:
        return sum(cpu_seconds(p) for p in descendants(self.pid)) if self.alive() else 0.0

    def stop(self, timeout: float = 15) -> int | None:
        if self.alive():
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._log_file.close()
        return self.popen.returncode


def _readline_with_timeout(popen: subprocess.Popen, timeout: float) -> str:
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(popen.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            return ""
        return popen.stdout.readline().decode(errors="replace").strip()
    finally:
        sel.close()


class LoadGen:
    """The load generator process (``bench.loadgen``), spoken to in JSON lines."""

    def __init__(self, python: str, *, log: Path, env: dict[str, str], cwd: Path):
        self.proc = Proc("loadgen", [python, "-m", "bench.loadgen"], log=log, env=env, cwd=cwd,
                         stdout_pipe=True, stdin_pipe=True)
        line = _readline_with_timeout(self.proc.popen, 30)
        if line != "READY":
            raise BenchError(f"load generator did not start: {line!r}\n{self.proc.log_tail()}")

    def command(self, cmd: dict, timeout: float, on_event=None) -> dict:
        """Send one command; intermediate events go to ``on_event``; returns the result line."""
        self.proc.popen.stdin.write((json.dumps(cmd) + "\n").encode())
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            line = _readline_with_timeout(self.proc.popen, max(0.1, left)) if left > 0 else ""
            if not line:
                raise BenchError(f"load generator gave no result within {timeout:.0f}s:\n{self.proc.log_tail()}")
            message = json.loads(line)
            if message.get("event") == "result":
                if "fatal" in message:
                    raise BenchError(f"load generator failed: {message['fatal']}")
                return message
            if on_event is not None:
                on_event(message)

    def close(self) -> None:
        if self.proc.popen.stdin:
            self.proc.popen.stdin.close()
        self.proc.stop()
