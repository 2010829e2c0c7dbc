"""Machine notes, the issue's targets checked against what was measured, and the Markdown/JSON report."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from bench.targets import BENCH, REPO, find_bmo

NOISE_NOTE = (
    "Numbers are noisy: a 2-core machine shared with other engineers running tests; the load generator, "
    "the fake upstream and the server under test share those cores. Compare targets within one run "
    "(they are interleaved round-robin per scenario), not across runs."
)


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _interpreter_of(script: Path) -> str:
    try:
        first = script.read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return ""
    return first[2:].strip() if first.startswith("#!") else ""


def _versions(python: str, dists: list[str]) -> dict[str, str]:
    code = ("import importlib.metadata as m, sys, json\nout = {'python': sys.version.split()[0]}\n"
            f"for d in {dists!r}:\n    try: out[d] = m.version(d)\n    except Exception: out[d] = None\n"
            "print(json.dumps(out))")
    text = _run([python, "-c", code]) if python else ""
    try:
        return json.loads(text)
    except ValueError:
        return {}


def machine_notes() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    except (OSError, IndexError):
        pass
    try:
        bmo = find_bmo()
        bmo_versions = _versions(_interpreter_of(bmo), ["bmo", "bmo-openai-compat", "aiohttp", "msgspec", "apsw",
                                                         "opentelemetry-sdk"])
        bmo_path = str(bmo)
    except Exception as exc:  # noqa: BLE001 - notes must not stop the report
        bmo_versions, bmo_path = {"error": str(exc)}, ""
    litellm_python = BENCH / ".venv-litellm/bin/python"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None,
        "bench_python": sys.version.split()[0],
        "bench_tools": _versions(sys.executable, ["aiohttp", "uvloop", "py-spy"]),
        "bmo_executable": bmo_path,
        "bmo": bmo_versions,
        "litellm": _versions(str(litellm_python), ["litellm", "uvicorn", "uvloop", "fastapi"]) if litellm_python.exists() else None,
        "git_commit": _run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
        # What was measured is the working tree: uncommitted edits to BMO's code are named here.
        "git_uncommitted": [parts[1] for parts in (line.split(maxsplit=1) for line in _run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "bmo", "plugins"]).splitlines())
            if len(parts) == 2 and parts[0] in ("M", "A", "MM", "AM")],
        "note": NOISE_NOTE,
    }


# --- the targets ---------------------------------------------------------------------

def _find(measurements: list[dict], target: str, scenario: str) -> dict | None:
    for m in measurements:
        if m["phase"] == "matrix" and m["target"] == target and m["scenario"] == scenario:
            return m
    return None


def _p(m: dict | None, metric: str, q: str) -> float | None:
    return ((m or {}).get(metric) or {}).get(q)


def ratios(measurements: list[dict]) -> list[dict]:
    scenarios = []
    for m in measurements:
        if m["phase"] == "matrix" and m["scenario"] not in scenarios:
            scenarios.append(m["scenario"])
    out = []
    for s in scenarios:
        d, b, o, ll = (_find(measurements, t, s) for t in ("direct", "bmo", "bmo-otlp", "litellm"))
        row = {"scenario": s}
        if b and d and d["rps"]:
            row["bmo_over_direct_rps"] = b["rps"] / d["rps"]
            for q in ("p50", "p99"):
                if _p(b, "latency_ms", q) is not None and _p(d, "latency_ms", q) is not None:
                    row[f"added_latency_{q}_ms"] = _p(b, "latency_ms", q) - _p(d, "latency_ms", q)
                if _p(b, "ttfc_ms", q) is not None and _p(d, "ttfc_ms", q) is not None:
                    row[f"added_ttfc_{q}_ms"] = _p(b, "ttfc_ms", q) - _p(d, "ttfc_ms", q)
        if b and ll and ll["rps"]:
            row["bmo_over_litellm_rps"] = b["rps"] / ll["rps"]
            if _p(b, "latency_ms", "p50") and _p(ll, "latency_ms", "p50"):
                row["bmo_over_litellm_p50"] = _p(b, "latency_ms", "p50") / _p(ll, "latency_ms", "p50")
        if b and o and b["rps"]:
            row["otlp_over_bmo_rps"] = o["rps"] / b["rps"]
        if b:
            row["bmo_cpu_ms_per_req"] = b["server_cpu_ms_per_req"]
        if o:
            row["bmo_otlp_cpu_ms_per_req"] = o["server_cpu_ms_per_req"]
        if ll:
            row["litellm_cpu_ms_per_req"] = ll["server_cpu_ms_per_req"]
        out.append(row)
    return out


def baseline_rows(measurements: list[dict]) -> list[dict]:
    """Per matrix scenario: this build (``bmo``) against ``bmo-base``, when the run had a baseline."""
    out = []
    for m in measurements:
        if m["phase"] != "matrix" or m["target"] != "bmo":
            continue
        b = _find(measurements, "bmo-base", m["scenario"])
        if b is None:
            continue
        out.append({"scenario": m["scenario"], "rps": m["rps"], "base_rps": b["rps"],
                    "ratio": m["rps"] / b["rps"] if b["rps"] else None,
                    "cpu": m["server_cpu_ms_per_req"], "base_cpu": b["server_cpu_ms_per_req"],
                    "p50": _p(m, "latency_ms", "p50"), "base_p50": _p(b, "latency_ms", "p50")})
    return out


def ledger_summary(measurements: list[dict]) -> dict | None:
    on = [m for m in measurements if m["phase"] == "ledger" and m["target"] == "bmo"]
    off = [m for m in measurements if m["phase"] == "ledger" and m["target"] == "bmo-noledger"]
    if not on or not off:
        return None
    on_rps = sum(m["rps"] for m in on) / len(on)
    off_rps = sum(m["rps"] for m in off) / len(off)
    off_rows = sum(m.get("ledger_rows") or 0 for m in off)
    return {
        "scenario": on[0]["scenario"], "rounds": len(on), "on_rps": on_rps, "off_rps": off_rps,
        "on_over_off": on_rps / off_rps if off_rps else None,
        "switch_honoured": off_rows == 0,
        "rows_written_with_switch": off_rows,
        "on_ledger_rows_per_s": sum(m.get("ledger_rows_per_s") or 0 for m in on) / len(on),
    }


def goals(result: dict) -> list[dict]:
    """The issue's targets, each with the measured value and whether it is met."""
    ms = result.get("measurements", [])
    rows = {r["scenario"]: r for r in ratios(ms)}
    out = []

    def add(goal: str, measured, ok, how: str) -> None:
        out.append({"goal": goal, "measured": measured, "met": ok, "how": how})

    r = rows.get("nonstream-c16-stateless", {})
    v = r.get("added_latency_p50_ms")
    add("added latency p50 ≤ 2 ms (non-streaming, c=16)", v, None if v is None else v <= 2.0,
        "bmo p50 − direct p50, nonstream-c16-stateless")
    v = r.get("added_latency_p99_ms")
    add("added latency p99 ≤ 10 ms (non-streaming, c=16)", v, None if v is None else v <= 10.0,
        "bmo p99 − direct p99, nonstream-c16-stateless")
    r = rows.get("nonstream-c1-stateless", {})
    v = r.get("added_latency_p50_ms")
    add("(context) added latency p50 at c=1, where nothing queues", v, None,
        "with an instant upstream, closed-loop c=16 saturates BMO, so its latency there is mostly queueing "
        "(≈ 16 × BMO's CPU ms/req); c=1 shows the per-request cost itself")
    r = rows.get("stream256-c16-stateless") or rows.get("stream256-c1-stateless") or {}
    v = r.get("added_ttfc_p50_ms")
    add("added time to first chunk p50 ≤ 2 ms", v, None if v is None else v <= 2.0,
        f"bmo TTFC p50 − direct TTFC p50, {r.get('scenario', 'stream256-c16-stateless')}")
    r = rows.get("nonstream-c64-stateless", {})
    v = r.get("bmo_over_litellm_rps")
    add("throughput at c=64 ≥ 2× LiteLLM", v, None if v is None else v >= 2.0, "bmo req/s ÷ litellm req/s, nonstream-c64-stateless")
    name = "stream256-c64-stateless" if "stream256-c64-stateless" in rows else "stream256-c64-session"
    r = rows.get(name) or {}
    v = r.get("bmo_over_litellm_rps")
    b, ll = _find(ms, "bmo", name), _find(ms, "litellm", name)
    if v is None and b and ll and b["rps"] > 0 and ll["ok"] == 0:
        add("throughput at c=64 ≥ 2× LiteLLM (streaming)", f"{b['rps']:.1f} req/s vs 0 (LiteLLM finished no stream "
            "within the window)", True, f"bmo req/s ÷ litellm req/s, {name}")
    else:
        add("throughput at c=64 ≥ 2× LiteLLM (streaming)", v, None if v is None else v >= 2.0,
            f"bmo req/s ÷ litellm req/s, {name}")
    hold = result.get("hold") or {}
    if hold:
        rss = hold.get("max_rss_sampled_mb")
        at_once = hold.get("max_open_at_once")
        ok = rss is not None and rss < 300 and hold.get("dropped") == 0 and at_once == hold.get("streams")
        add("1,000 open streams: RSS < 300 MB, none dropped",
            f"{rss or 0:.0f} MB; {at_once}/{hold.get('streams')} open at once; {hold.get('dropped')} dropped", ok,
            "max VmRSS of the bmo process tree sampled every 0.25 s during the hold")
    else:
        add("1,000 open streams: RSS < 300 MB, none dropped", None, None, "not measured")
    led = ledger_summary(ms)
    if led:
        ok = led["on_over_off"] >= 0.9 if led["switch_honoured"] else None
        add("ledger on ≥ 90% of ledger off throughput", led["on_over_off"], ok,
            "bmo ÷ bmo with BMO_TEST_NO_LEDGER=1" + ("" if led["switch_honoured"] else
                                                     " — switch NOT honoured (rows were written), comparison invalid"))
    else:
        add("ledger on ≥ 90% of ledger off throughput", None, None, "not measured")
    return out


# --- rendering -------------------------------------------------------------------------------

def _f(v, digits: int = 2, suffix: str = "") -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}{suffix}"
    return f"{v}{suffix}"


def markdown(result: dict) -> str:
    notes = result.get("machine", {})
    ms = result.get("measurements", [])
    lines = [f"# BMO benchmark — {result['plan']} run, {result.get('started_at', '')}", ""]
    bmo = notes.get("bmo", {})
    ll = notes.get("litellm") or {}
    lines += [
        f"Machine: {notes.get('nproc')} CPUs ({notes.get('cpu_model')}), {notes.get('memory')}, Linux {notes.get('kernel')}, "
        f"load average at start {' '.join(notes.get('loadavg_at_start') or [])}.",
        f"BMO {bmo.get('bmo')} (openai_compat {bmo.get('bmo-openai-compat')}, Python {bmo.get('python')}, "
        f"aiohttp {bmo.get('aiohttp')}), git {notes.get('git_commit')}"
        + (f" plus uncommitted edits to {', '.join(notes['git_uncommitted'])}" if notes.get("git_uncommitted") else "")
        + f"; LiteLLM {ll.get('litellm')} "
        f"(uvicorn {ll.get('uvicorn')}, Python {ll.get('python')}); bench tools Python {notes.get('bench_python')}, "
        f"aiohttp {notes.get('bench_tools', {}).get('aiohttp')}, uvloop {notes.get('bench_tools', {}).get('uvloop')}.",
        f"Run took {result.get('duration_s', 0):.0f} s.",
        "",
        f"> {notes.get('note', NOISE_NOTE)}",
        "",
    ]
    if result.get("unavailable"):
        lines += ["Targets not measured:", ""]
        for name, why in result["unavailable"].items():
            lines.append(f"- `{name}`: {why.splitlines()[0] if why else '?'}")
        lines.append("")
    lines += ["## Issue targets", "", "| goal | measured | met | how |", "|---|---|---|---|"]
    for g in goals(result):
        met = {True: "yes", False: "**no**", None: "n/a"}[g["met"]]
        lines.append(f"| {g['goal']} | {_f(g['measured'])} | {met} | {g['how']} |")
    lines += ["", "## Results per scenario and target", "",
              "Latency: request sent → last byte. TTFC: request sent → first SSE event with non-empty `delta.content`. "
              "CPU ms/req: CPU of the server's process tree per request (for `direct`, the fake upstream's). "
              "Load: the machine's 1-minute load average after the run (2 cores; above 2 means queueing).", "",
              "| scenario | target | req/s | p50 ms | p99 ms | TTFC p50 | TTFC p99 | CPU ms/req | load | errors |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for m in ms:
        if m["phase"] != "matrix":
            continue
        errs = ", ".join(f"{k}×{v}" for k, v in m["errors"].items()) or "0"
        if m.get("unfinished"):
            errs += f", {m['unfinished']} unfinished"
        if m.get("warmup_abandoned"):
            errs += f" ({m['warmup_abandoned']} warm-up requests abandoned)"
        lines.append(
            f"| {m['scenario']} | {m['target']} | {m['rps']:.1f} | {_f(_p(m, 'latency_ms', 'p50'))} | "
            f"{_f(_p(m, 'latency_ms', 'p99'))} | {_f(_p(m, 'ttfc_ms', 'p50'))} | {_f(_p(m, 'ttfc_ms', 'p99'))} | "
            f"{m['server_cpu_ms_per_req']:.2f} | {_f(m.get('loadavg_1m'), 1)} | {errs} |")
    lines += ["", "## Ratios", "",
              "| scenario | BMO/direct req/s | BMO/LiteLLM req/s | BMO+OTLP / BMO req/s | added p50 ms | added p99 ms | "
              "added TTFC p50 ms | CPU ms/req BMO · +OTLP · LiteLLM |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in ratios(ms):
        lines.append(
            f"| {r['scenario']} | {_f(r.get('bmo_over_direct_rps'))} | {_f(r.get('bmo_over_litellm_rps'))} | "
            f"{_f(r.get('otlp_over_bmo_rps'))} | {_f(r.get('added_latency_p50_ms'))} | {_f(r.get('added_latency_p99_ms'))} | "
            f"{_f(r.get('added_ttfc_p50_ms'))} | {_f(r.get('bmo_cpu_ms_per_req'))} · "
            f"{_f(r.get('bmo_otlp_cpu_ms_per_req'))} · {_f(r.get('litellm_cpu_ms_per_req'))} |")
    base = baseline_rows(ms)
    if base:
        lines += ["", "## This build against the baseline build", "",
                  f"`bmo` is this checkout, `bmo-base` is `{result.get('targets', {}).get('bmo-base', {}).get('binary')}`; "
                  "both ran in this run, interleaved per scenario.", "",
                  "| scenario | req/s base | req/s this | this/base | CPU ms/req base | CPU ms/req this | p50 ms base | p50 ms this |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in base:
            lines.append(f"| {r['scenario']} | {r['base_rps']:.1f} | {r['rps']:.1f} | {_f(r['ratio'])} | "
                         f"{r['base_cpu']:.2f} | {r['cpu']:.2f} | {_f(r['base_p50'])} | {_f(r['p50'])} |")
    lines += ["", "## Memory", "", "Peak RSS (VmHWM, summed over the process tree) after the load matrix:", "",
              "| server | peak RSS MB | RSS now MB |", "|---|---:|---:|"]
    for name, mem in (result.get("memory_after_load") or {}).items():
        label = "direct (fake upstream)" if name == "direct" else name
        lines.append(f"| {label} | {mem['peak_rss_mb']:.0f} | {mem['rss_mb']:.0f} |")
    hold = result.get("hold")
    if hold:
        lines += ["", f"Holding {hold['streams']} concurrent streams (each ~{hold['stream_seconds']:.0f} s, opened over "
                      f"{hold['ramp_s']:.0f} s) on a fresh `bmo`: idle RSS {hold['idle_rss_mb']:.0f} MB, "
                      f"RSS once all were open {_f(hold.get('rss_at_all_open_mb'), 0)} MB "
                      f"({hold.get('open_at_sample')} open), max sampled {hold['max_rss_sampled_mb']:.0f} MB, "
                      f"peak {hold['peak_rss_mb']:.0f} MB; opened {hold['opened']} (at most {hold.get('max_open_at_once')} "
                      f"sending at once), completed {hold['completed']}, "
                      f"dropped {hold['dropped']} {hold['errors'] or ''}; TTFC p50 {_f(_p(hold, 'ttfc_ms', 'p50'))} ms, "
                      f"p99 {_f(_p(hold, 'ttfc_ms', 'p99'))} ms."]
    lines += ["", "## Ledger", "",
              "| scenario | target | ledger rows/s | run rows per request | event rows per request |", "|---|---|---:|---:|---:|"]
    for m in ms:
        if "ledger_rows_per_s" in m and m["phase"] in ("matrix", "ledger"):
            n = max(1, m.get("requests_incl_warmup") or 1)
            ev = m.get("ledger_event_rows")
            lines.append(f"| {m['scenario']} ({m['phase']}) | {m['target']} | {m['ledger_rows_per_s']:.1f} | "
                         f"{m['ledger_rows'] / n:.2f} | {_f(None if ev is None else ev / n)} |")
    drift = [m for m in ms if m["phase"] == "drift"]
    if drift:
        lines += ["", "## Drift check", "",
                  f"`{drift[0]['scenario']}` again after the whole matrix, against the same servers (BMO keeps state "
                  "as it ages: sessions, ledger, finished runs):", "",
                  "| target | req/s at first | req/s at the end | p50 ms first → end | CPU ms/req first → end |",
                  "|---|---:|---:|---:|---:|"]
        for d in drift:
            f = _find(ms, d["target"], d["scenario"])
            if f:
                lines.append(f"| {d['target']} | {f['rps']:.1f} | {d['rps']:.1f} | {_f(_p(f, 'latency_ms', 'p50'))} → "
                             f"{_f(_p(d, 'latency_ms', 'p50'))} | {f['server_cpu_ms_per_req']:.2f} → {d['server_cpu_ms_per_req']:.2f} |")
    led = ledger_summary(ms)
    if led:
        lines += ["", f"Ledger on vs off ({led['scenario']}, {led['rounds']} round(s), alternating, run first while "
                      f"both instances are fresh): on {led['on_rps']:.1f} req/s, "
                      f"off {led['off_rps']:.1f} req/s, ratio {_f(led['on_over_off'])}. "
                      + ("`BMO_TEST_NO_LEDGER=1` honoured (no rows written)." if led["switch_honoured"] else
                         f"`BMO_TEST_NO_LEDGER=1` is NOT honoured yet ({led['rows_written_with_switch']} rows written): "
                         "the ratio compares two identical servers.")]
    up = result.get("upstream_stats")
    if up:
        lines += ["", f"The fake upstream served {up['requests']} chat requests, {up['router_calls']} of them BMO's "
                      f"ambiguity-router calls (a session's first turn costs BMO two upstream calls), "
                      f"{up['streams']} streams, {up['disconnects']} client disconnects mid-stream."]
    if result.get("otlp_sink_stats"):
        s = result["otlp_sink_stats"]
        lines += ["", f"OTLP sink received {s['posts']} export batches ({s['bytes'] / 1024:.0f} KiB) from `bmo-otlp`."]
    prof = result.get("profile")
    if prof:
        lines += ["", "## Profile", ""]
        if prof.get("error"):
            lines.append(f"py-spy failed: {prof['error']}")
        else:
            lines += [f"py-spy, {prof['samples']} samples of the GIL-holding thread of `bmo` under `{prof['scenario']}` "
                      f"(`--gil`: where the one interpreter's time goes; flame graph of all threads' on-CPU stacks: "
                      f"`{prof['svg']}`; collapsed GIL stacks: `{prof.get('collapsed')}`).", "", "| thread | share of GIL samples |", "|---|---:|"]
            lines += [f"| {t['thread']} | {t['pct']:.1f}% |" for t in prof.get("threads", [])]
            lines += ["", "| area (innermost known frame) | share |", "|---|---:|"]
            lines += [f"| {a['area']} | {a['pct']:.1f}% |" for a in prof["areas"]]
            lines += ["", "| top self time | share |", "|---|---:|"]
            lines += [f"| `{a['function']}` | {a['pct']:.1f}% |" for a in prof["self"][:15]]
            lines += ["", "| top inclusive time | share |", "|---|---:|"]
            lines += [f"| `{a['function']}` | {a['pct']:.1f}% |" for a in prof["inclusive"][:20]]
    return "\n".join(lines) + "\n"


def write(result: dict, results_dir: Path, stem: str) -> tuple[Path, Path]:
    result["goals"] = goals(result)
    result["ratios"] = ratios(result.get("measurements", []))
    result["ledger"] = ledger_summary(result.get("measurements", []))
    md, js = results_dir / f"{stem}.md", results_dir / f"{stem}.json"
    js.write_text(json.dumps(result, indent=1, default=str) + "\n")
    md.write_text(markdown(result))
    return md, js
