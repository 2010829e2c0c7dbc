"""``bench/run --store``: one BMO worker on SQLite against one on PostgreSQL (``bmo-pg``), in one interleaved run.

Each pair also runs with the ledger off, for the ledger on/off ratio of each backend. The
PostgreSQL server is a throw-away cluster started by the bench (fsync on, over loopback TCP);
its own CPU per request is counted apart from BMO's.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from bench import runner
from bench.procs import BenchError
from bench.runner import say
from bench.scenarios import Scenario, quick_plan
from bench.targets import BENCH, start_bmo, start_postgres

# bmo-pg-async: synchronous_commit off for BMO's connections (through the URL), the durability SQLite's WAL with
# synchronous=NORMAL gives: a commit survives BMO or PostgreSQL crashing, but not the machine losing power.
TARGETS = ("bmo", "bmo-noledger", "bmo-pg", "bmo-pg-noledger", "bmo-pg-async")
ASYNC_COMMIT = "?options=-csynchronous_commit%3Doff"


def scenarios(quick: bool) -> list[Scenario]:
    d, w, n = (3.0, 0.5, 20_000) if quick else (6.0, 1.0, 50_000)
    return [Scenario(False, 1, False, d, w, n), Scenario(False, 16, False, d, w, n), Scenario(False, 16, True, d, w, n)]


def execute(quick: bool, results: Path, rounds: int = 2) -> dict:
    run = runner.Run(quick_plan(), litellm=False, bmo=False, profile_seconds=0, work=BENCH / ".work" / "store",
                     results=results)
    out: dict = {"plan": "store-quick" if quick else "store", "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
    started = time.time()
    try:
        run.start()
        pg, port = start_postgres(run.work, run.env, ["bmo_pg", "bmo_pg_noledger", "bmo_pg_async"])
        run.procs.append(pg)
        url = f"postgresql://postgres@127.0.0.1:{port}/"
        starts = {"bmo": {}, "bmo-noledger": {"no_ledger": True}, "bmo-pg": {"store_url": url + "bmo_pg"},
                  "bmo-pg-noledger": {"store_url": url + "bmo_pg_noledger", "no_ledger": True},
                  "bmo-pg-async": {"store_url": url + "bmo_pg_async" + ASYNC_COMMIT}}
        for name, kwargs in starts.items():
            target = start_bmo(name, run.work, run.upstream_port, run.models, **kwargs)
            run.procs.insert(len(run.procs), target.proc)  # stopped before the PostgreSQL server (reverse order)
            problem = run.smoke(target)
            if problem:
                raise BenchError(f"{name}: {problem}")
            run.targets[name] = target
        out["targets"] = {n: {"kind": t.kind, **t.notes} for n, t in run.targets.items()}
        for r in range(rounds):
            for i, scenario in enumerate(scenarios(quick)):
                k = (i + r) % len(TARGETS)
                for name in TARGETS[k:] + TARGETS[:k]:  # rotated: drift hits every target alike
                    pg_before = pg.cpu()
                    record = run.measure(run.targets[name], scenario, phase="store")
                    requests = max(1, record["ok"] + record.get("warm", 0))
                    record["postgres_cpu_ms_per_req"] = 1000.0 * (pg.cpu() - pg_before) / requests
    finally:
        out["measurements"] = run.measurements
        run.stop()
        out["duration_s"] = time.time() - started
    out["summary"] = summarise(out["measurements"])
    return out


def summarise(measurements: list[dict]) -> dict:
    """Per scenario and target, the median over rounds; then the figures the issue asks for."""
    cells: dict = {}
    for m in measurements:
        cells.setdefault(m["scenario"], {}).setdefault(m["target"], []).append(m)
    table: dict = {}
    for scenario, targets in cells.items():
        for target, ms in targets.items():
            table.setdefault(scenario, {})[target] = {
                "rps": statistics.median(m["rps"] for m in ms),
                "p50_ms": statistics.median((m.get("latency_ms") or {}).get("p50", 0) for m in ms),
                "bmo_cpu_ms_per_req": statistics.median(m["server_cpu_ms_per_req"] for m in ms),
                "postgres_cpu_ms_per_req": statistics.median(m["postgres_cpu_ms_per_req"] for m in ms),
                "errors": sum(sum(m["errors"].values()) for m in ms),
            }
    figures = {}
    c1, c16 = table.get("nonstream-c1-stateless", {}), table.get("nonstream-c16-stateless", {})
    if "bmo" in c1 and "bmo-pg" in c1:
        figures["added_p50_latency_c1_ms"] = c1["bmo-pg"]["p50_ms"] - c1["bmo"]["p50_ms"]
    if "bmo" in c1 and "bmo-pg-async" in c1:
        figures["added_p50_latency_c1_ms_async_commit"] = c1["bmo-pg-async"]["p50_ms"] - c1["bmo"]["p50_ms"]
    for backend, on, off in (("sqlite", "bmo", "bmo-noledger"), ("postgresql", "bmo-pg", "bmo-pg-noledger")):
        if on in c16 and off in c16 and c16[off]["rps"]:
            figures[f"ledger_on_off_rps_ratio_c16_{backend}"] = c16[on]["rps"] / c16[off]["rps"]
        if on in c1 and off in c1 and c1[off]["rps"]:
            figures[f"ledger_on_off_rps_ratio_c1_{backend}"] = c1[on]["rps"] / c1[off]["rps"]
    return {"table": table, "figures": figures}


def markdown(result: dict) -> str:
    lines = [f"# BMO store backends: SQLite vs PostgreSQL ({result['plan']}, {result['started_at']})", "",
             "One worker each, the same fake upstream; median of the rounds. CPU: BMO's process tree per request,",
             "and the PostgreSQL server's (all its processes) per request apart.", "",
             "| scenario | target | req/s | p50 ms | BMO CPU ms/req | PostgreSQL CPU ms/req | errors |",
             "|---|---|---|---|---|---|---|"]
    for scenario, targets in result["summary"]["table"].items():
        for target in TARGETS:
            if target in targets:
                row = targets[target]
                lines.append(f"| {scenario} | {target} | {row['rps']:.1f} | {row['p50_ms']:.2f} | "
                             f"{row['bmo_cpu_ms_per_req']:.2f} | {row['postgres_cpu_ms_per_req']:.2f} | {row['errors']} |")
    lines += ["", "| figure | value |", "|---|---|"]
    for name, value in result["summary"]["figures"].items():
        lines.append(f"| {name} | {value:.3f} |")
    load = open("/proc/loadavg").read().split()[:3]
    lines += ["", f"Load average at the end: {' '.join(load)} (2 cores shared with other work: compare within the run)."]
    return "\n".join(lines) + "\n"


def main(quick: bool, results: Path, stem: str | None = None) -> tuple[Path, Path]:
    result = execute(quick, results)
    stem = stem or ("store-quick" if quick else "store")
    md, js = results / f"{stem}.md", results / f"{stem}.json"
    js.write_text(json.dumps(result, indent=1, default=str) + "\n")
    md.write_text(markdown(result))
    say(f"wrote {md}")
    return md, js
