"""One worker against two: ``bmo`` and ``bmo-w2`` (``bmo serve --workers 2``, one SQLite data dir) at c=64.

    bench/.venv-bench/bin/python -m bench.workers [--rounds 3] [--duration-s 4]

Both run against the bench's fake upstream, non-streamed short answers and 256-chunk streams,
alternating which goes first each round. Reports req/s and CPU ms per request of each server's
whole process tree, and how the requests spread over bmo-w2's workers (from its posture's
``workers`` section). Writes ``bench/results/workers.md`` and ``workers.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path

from bench.runner import Run, say
from bench.scenarios import Scenario, quick_plan
from bench.targets import BENCH, BMO_TOKEN, REPO, Target, start_bmo


def worker_spread(target: Target) -> dict[str, int]:
    """Requests each worker of ``target`` served so far, from the posture (its heartbeats are 2 s apart)."""
    url = target.chat_url.rsplit("/v1/", 1)[0] + "/v1/bmo/posture"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {BMO_TOKEN}"})
    with urllib.request.urlopen(request, timeout=20) as response:
        section = json.loads(response.read()).get("workers") or {}
    rows = [w for w in section.get("workers", []) if w["state"] == "serving"]
    return {w["worker"]: w["counts"].get("requests") or 0 for w in rows}


def summary(rows: list[dict]) -> dict:
    return {"rps": statistics.median(r["rps"] for r in rows),
            "cpu_ms_per_req": statistics.median(r["server_cpu_ms_per_req"] for r in rows),
            "cpu_util": statistics.median(r["server_cpu_util"] for r in rows),
            "p50_ms": statistics.median((r.get("latency_ms") or {}).get("p50", 0) for r in rows),
            "errors": sum(sum(r["errors"].values()) for r in rows), "runs": len(rows)}


def report(result: dict) -> str:
    lines = ["# 1 worker vs 2 workers (`bmo` vs `bmo-w2`)", "",
             f"{result['when']}, commit `{result['commit']}`, {result['cpus']} CPUs, load average before "
             f"{result['loadavg_before']}; {result['rounds']} rounds of {result['duration_s']:g} s per scenario, "
             "alternating order; medians.", "",
             "| scenario | target | req/s | CPU ms/req (process tree) | CPU cores used | p50 ms | errors |",
             "|---|---|---|---|---|---|---|"]
    for scenario, targets in result["summary"].items():
        for name, s in targets.items():
            lines.append(f"| {scenario} | {name} | {s['rps']:.1f} | {s['cpu_ms_per_req']:.2f} | {s['cpu_util']:.2f} "
                         f"| {s['p50_ms']:.2f} | {s['errors']} |")
    lines += ["", "| scenario | bmo-w2 / bmo req/s | CPU ms/req ratio |", "|---|---|---|"]
    for scenario, targets in result["summary"].items():
        one, two = targets.get("bmo"), targets.get("bmo-w2")
        if one and two:
            cpu = two["cpu_ms_per_req"] / one["cpu_ms_per_req"]
            lines.append(f"| {scenario} | {two['rps'] / one['rps']:.2f} | {cpu:.2f} |")
    spread = result.get("spread") or {}
    if spread:
        total = sum(spread.values()) or 1
        parts = ", ".join(f"{w} {n} ({100 * n / total:.0f}%)" for w, n in sorted(spread.items()))
        lines += ["", f"Requests per worker of bmo-w2 over the whole run (its posture): {parts}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration-s", type=float, default=4.0)
    args = parser.parse_args()
    plan = quick_plan()
    run = Run(plan, litellm=False, bmo=False, profile_seconds=0, work=BENCH / ".work" / "workers",
              results=BENCH / "results")
    out: dict = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
                 "python": platform.python_version(), "rounds": args.rounds, "duration_s": args.duration_s,
                 "loadavg_before": Path("/proc/loadavg").read_text().split()[0],
                 "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                          cwd=REPO).stdout.strip()}
    try:
        run.start()
        for name, kwargs in (("bmo", {}), ("bmo-w2", {"workers": 2})):
            target = start_bmo(name, run.work, run.upstream_port, run.models, **kwargs)
            run.procs.append(target.proc)
            run.targets[name] = target
        for name in ("bmo", "bmo-w2"):
            problem = run.smoke(run.targets[name])
            if problem:
                raise SystemExit(f"{name}: {problem}")
        scenarios = [Scenario(False, 64, False, args.duration_s, 1.0, 100_000),
                     Scenario(True, 64, False, args.duration_s, 1.0, 100_000)]
        rows: dict[str, dict[str, list[dict]]] = {s.name: {"bmo": [], "bmo-w2": []} for s in scenarios}
        for r in range(args.rounds):
            for scenario in scenarios:
                order = ["bmo", "bmo-w2"] if r % 2 == 0 else ["bmo-w2", "bmo"]
                for name in order:
                    rows[scenario.name][name].append(run.measure(run.targets[name], scenario, phase="workers"))
        time.sleep(2.5)  # one more heartbeat, so the posture counts every request
        out["spread"] = worker_spread(run.targets["bmo-w2"])
        out["summary"] = {s: {n: summary(v) for n, v in t.items()} for s, t in rows.items()}
        out["measurements"] = run.measurements
    finally:
        run.stop()
    results = BENCH / "results"
    (results / "workers.json").write_text(json.dumps(out, indent=2) + "\n")
    (results / "workers.md").write_text(report(out))
    say(f"wrote {results / 'workers.md'}")
    print(report(out))


if __name__ == "__main__":
    main()
