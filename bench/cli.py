"""``python -m bench`` (or ``bench/run``): choose a plan, run it, write the report."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench import report, runner
from bench.procs import BenchError
from bench.scenarios import full_plan, quick_plan
from bench.targets import BENCH


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench", description="BMO vs direct upstream vs LiteLLM proxy.")
    parser.add_argument("--quick", action="store_true", help="a ~2 minute subset (for development)")
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM proxy target")
    parser.add_argument("--no-bmo", action="store_true", help="skip every BMO target (bench the bench)")
    parser.add_argument("--profile", type=float, default=None, metavar="SECONDS",
                        help="py-spy BMO under the worst scenario for SECONDS (full: 10, quick: off; 0 = off)")
    parser.add_argument("--baseline", type=Path, default=None, metavar="BMO",
                        help="also measure this other build's bmo executable as target bmo-base, interleaved with bmo")
    parser.add_argument("--store", action="store_true",
                        help="only SQLite against PostgreSQL (targets bmo-pg, bmo-pg-noledger); with --quick, shorter")
    parser.add_argument("--out", default=None, help="report file stem under bench/results/ (default: latest / quick)")
    args = parser.parse_args(argv)
    if args.store:  # its own report: bench/results/store[-quick].md
        from bench import store_backends

        try:
            md, _ = store_backends.main(args.quick, BENCH / "results", args.out)
        except BenchError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            sys.exit(1)
        print(md.read_text())
        return
    plan = quick_plan() if args.quick else full_plan()
    results = BENCH / "results"
    notes = report.machine_notes()
    try:
        result = runner.execute(plan, litellm=not args.no_litellm, bmo=not args.no_bmo,
                                profile_seconds=args.profile, results=results, baseline=args.baseline)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        sys.exit(1)
    notes["loadavg_at_end"] = open("/proc/loadavg").read().split()[:3]
    result["machine"] = notes
    md, js = report.write(result, results, args.out or ("quick" if args.quick else "latest"))
    print(md.read_text())
    print(f"bench: wrote {md} and {js} ({time.strftime('%H:%M:%S')})", file=sys.stderr)
