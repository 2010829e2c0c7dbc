"""Sampling BMO with py-spy while it is under load, and summarising where the time goes."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    """py-spy next to the bench's python (the bench venv), else on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def start_recording(pid: int, seconds: float, out: Path, *, gil: bool) -> subprocess.Popen | None:
    """One py-spy sampler (blocking mode: torn stacks would mislead, and only one tracer may attach).

    ``gil=True``: collapsed stacks of whichever thread holds the GIL, to count where the one
    interpreter's time goes. ``gil=False``: a flame graph of every thread's on-CPU stacks, to look at.
    """
    exe = py_spy()
    if exe is None:
        return None
    argv = [exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "100", "--threads"]
    argv += ["--gil", "--format", "raw"] if gil else ["--format", "flamegraph"]
    return subprocess.Popen(argv + ["-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish_recording(proc: subprocess.Popen, timeout: float = 60) -> str | None:
    """Wait for the sampler; its error text, or None when it succeeded."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return None if proc.returncode == 0 else err.decode(errors="replace")[-500:]


def _short_file(path: str) -> str:
    for marker in ("site-packages/", "/plugins/", "/bmo/", "/lib/python3"):
        i = path.find(marker)
        if i >= 0:
            return path[i + len(marker):] if marker != "/bmo/" else "bmo/" + path[i + len(marker):]
    return path


def _label(frame: str) -> str:
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    return f"{m.group('func')} ({_short_file(m.group('file'))})"


AREAS = [
    ("BMO openai_compat plugin", ("openai_compat",)),
    ("BMO agent core (coordinator/provider/loop)", ("bmo/agent",)),
    ("BMO store (ledger DB)", ("bmo/store", "apsw")),
    ("BMO records (JSON log)", ("bmo/tracing/records",)),
    ("OpenTelemetry", ("opentelemetry",)),
    ("aiohttp server/client", ("aiohttp",)),
    ("JSON / msgspec", ("json/", "msgspec")),
    ("asyncio event loop", ("asyncio/",)),
]


def summarise(raw: Path, top: int = 20) -> dict:
    """Per-thread share, self and inclusive time per function, and the share charged to each area."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        parts = stack.split(";")
        thread = next((p for p in parts if p.startswith("thread ")), "")
        threads[thread.split(": ", 1)[-1] if thread else "?"] += n
        frames = [f for f in parts if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        labels = [_label(f) for f in frames]
        self_time[labels[-1]] += n
        for label in set(labels):
            inclusive[label] += n
        # An area is charged with the samples whose innermost frame from a known area is its own.
        charged = "other"
        for frame in reversed(frames):
            hit = next((name for name, keys in AREAS if any(k in frame for k in keys)), None)
            if hit:
                charged = hit
                break
        areas[charged] += n
    pct = (lambda n: round(100.0 * n / total, 1)) if total else (lambda n: 0.0)
    return {
        "samples": total,
        "threads": [{"thread": t, "pct": pct(n)} for t, n in threads.most_common()],
        "self": [{"function": f, "pct": pct(n)} for f, n in self_time.most_common(top)],
        "inclusive": [{"function": f, "pct": pct(n)} for f, n in inclusive.most_common(top)],
        "areas": [{"area": a, "pct": pct(n)} for a, n in areas.most_common()],
    }
