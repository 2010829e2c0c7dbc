"""This build against another, on one or two scenarios, over many alternating rounds: a before/after that
one quick run (a single sample per scenario) cannot settle on a noisy machine.

    bench/.venv-bench/bin/python -m bench.ab --baseline OTHER/.venv/bin/bmo [--rounds 8] [--duration-s 3]

``bmo`` (this checkout) and ``bmo-base`` run against the bench's fake upstream, the order swapped every
round. Reports each target's median and spread of req/s and CPU ms per request (whole process tree),
and the ratio of the medians. Writes ``bench/results/ab.md`` and ``ab.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from bench.runner import Run, say
from bench.scenarios import Scenario, quick_plan
from bench.targets import BENCH, start_bmo

SCENARIOS = {"nonstream-c16-stateless": Scenario(False, 16, False, 3.0, 0.5, 100_000),
             "stream256-c16-session": Scenario(True, 16, True, 3.0, 0.5, 100_000)}


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def report(result: dict) -> str:
    lines = ["# This build against a baseline, alternating rounds", "",
             f"{result['when']}, baseline `{result['baseline']}`, {result['rounds']} rounds of "
             f"{result['duration_s']:g} s per scenario and target, order swapped each round; median (min–max).", "",
             "| scenario | target | req/s | CPU ms/req |", "|---|---|---|---|"]
    for scenario, targets in result["rows"].items():
        for name, rows in targets.items():
            lines.append(f"| {scenario} | {name} | {spread([r['rps'] for r in rows])} "
                         f"| {spread([r['server_cpu_ms_per_req'] for r in rows])} |")
    lines += ["", "| scenario | req/s this/base | CPU ms/req this/base |", "|---|---|---|"]
    for scenario, targets in result["rows"].items():
        this, base = targets["bmo"], targets["bmo-base"]
        rps = statistics.median(r["rps"] for r in this) / statistics.median(r["rps"] for r in base)
        cpu = (statistics.median(r["server_cpu_ms_per_req"] for r in this)
               / statistics.median(r["server_cpu_ms_per_req"] for r in base))
        lines.append(f"| {scenario} | {rps:.2f} | {cpu:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, metavar="BMO")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--duration-s", type=float, default=3.0)
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                        help="repeatable; default: every scenario listed")
    args = parser.parse_args()
    scenarios = [SCENARIOS[name] for name in (args.scenario or SCENARIOS)]
    scenarios = [Scenario(s.stream, s.concurrency, s.sessions, args.duration_s, s.warmup_s, s.max_requests)
                 for s in scenarios]
    run = Run(quick_plan(), litellm=False, bmo=False, profile_seconds=0, work=BENCH / ".work" / "ab",
              results=BENCH / "results")
    out: dict = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "baseline": str(args.baseline),
                 "rounds": args.rounds, "duration_s": args.duration_s}
    rows: dict[str, dict[str, list[dict]]] = {s.name: {"bmo": [], "bmo-base": []} for s in scenarios}
    try:
        run.start()
        for name, binary in (("bmo", None), ("bmo-base", args.baseline)):
            target = start_bmo(name, run.work, run.upstream_port, run.models, binary=binary)
            run.procs.append(target.proc)
            run.targets[name] = target
            if problem := run.smoke(target):
                raise SystemExit(f"{name}: {problem}")
        for r in range(args.rounds):
            for scenario in scenarios:
                for name in (("bmo", "bmo-base") if r % 2 == 0 else ("bmo-base", "bmo")):
                    rows[scenario.name][name].append(run.measure(run.targets[name], scenario, phase="ab"))
    finally:
        run.stop()
    out["rows"] = rows
    results = BENCH / "results"
    (results / "ab.json").write_text(json.dumps(out, indent=2) + "\n")
    (results / "ab.md").write_text(report(out))
    say(f"wrote {results / 'ab.md'}")
    print(report(out))


if __name__ == "__main__":
    main()
