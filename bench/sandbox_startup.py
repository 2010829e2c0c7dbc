"""Sandbox start-up cost per command: median wall time of ``true`` through run_shell's runner, sandboxed or not.

    .venv/bin/python -m bench.sandbox_startup [--runs 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bmo.agent.sandbox import Sandbox, SandboxOptions
from bmo.agent.sandbox.probe import find_programs
from bmo.agent.sandbox.process import run_bounded


async def _time(runs: int, once) -> list[float]:
    await once()  # warm the page cache and the bwrap version probe out of the figures
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await once()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


async def main(runs: int) -> None:
    workspace = Path(tempfile.mkdtemp(prefix="bmo-bench-ws-"))
    programs = find_programs()
    bwrap = Sandbox(SandboxOptions(), programs)
    off = Sandbox(SandboxOptions(mode="off"), programs)
    kinds = {
        "plain /bin/sh -c true (run_shell before the sandbox)": lambda: run_bounded(
            ["/bin/sh", "-c", "true"], cwd=str(workspace), env={}, timeout=30, output_limit=1024),
        'mode = "off" (pids cgroup + prlimit + sh)': lambda: off.run(
            ["/bin/sh", "-c", "true"], workspace=workspace, timeout=30, output_limit=1024),
        'mode = "bwrap" (the sandbox)': lambda: bwrap.run(
            ["/bin/sh", "-c", "true"], workspace=workspace, timeout=30, output_limit=1024),
    }
    print(f"{runs} runs each; milliseconds per command")
    for name, once in kinds.items():
        samples = await _time(runs, once)
        q = statistics.quantiles(samples, n=20)
        print(f"  {name:55s} median {statistics.median(samples):6.2f}  p5 {q[0]:6.2f}  p95 {q[-1]:6.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    asyncio.run(main(parser.parse_args().runs))
