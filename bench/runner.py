"""One bench run: start every server, drive the scenarios round-robin, measure memory, profile, stop."""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from bench import ledger, profiling
from bench.procs import BenchError, LoadGen, Proc
from bench.scenarios import S256, SHORT, Plan, Scenario, profile_arg, slow_profile
from bench.targets import (BENCH, REPO, Target, clean_env, direct_target, start_bmo, start_litellm,
                           start_sink, start_upstream, wait_litellm)

PROMPT = [{"role": "user", "content": "Say something short."}]


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Run:
    """State of one bench run: the processes, the targets, and everything measured."""

    def __init__(self, plan: Plan, *, litellm: bool, bmo: bool, profile_seconds: float, work: Path, results: Path,
                 baseline: Path | None = None):
        self.baseline = baseline
        self.plan = plan
        self.want_litellm = litellm
        self.want_bmo = bmo
        self.profile_seconds = profile_seconds
        self.work = work
        self.results_dir = results
        self.python = sys.executable
        self.env = clean_env()
        self.procs: list[Proc] = []
        self.targets: dict[str, Target] = {}
        self.unavailable: dict[str, str] = {}
        self.measurements: list[dict] = []
        self.slow = slow_profile(plan.hold_seconds)
        self.models = [SHORT.name, S256.name, self.slow.name]
        self.upstream_port = 0
        self.sink: Proc | None = None
        self.sink_port = 0
        self.loadgen: LoadGen | None = None

    # --- servers -------------------------------------------------------------------------

    def start(self) -> None:
        if self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True)
        upstream, self.upstream_port = start_upstream(
            self.python, self.work, [profile_arg(p) for p in (SHORT, S256, self.slow)], self.env)
        self.procs.append(upstream)
        self.targets["direct"] = direct_target(upstream, self.upstream_port)
        self.sink, self.sink_port = start_sink(self.python, self.work, self.env)
        self.procs.append(self.sink)
        litellm = None
        if self.want_litellm:
            try:
                litellm = start_litellm(self.work, self.upstream_port, self.models)
                self.procs.append(litellm.proc)
            except BenchError as exc:
                self.unavailable["litellm"] = str(exc)
        if self.want_bmo:
            starts = [("bmo", {}), ("bmo-otlp", {"otlp_port": self.sink_port}), ("bmo-noledger", {"no_ledger": True})]
            if self.baseline is not None:
                starts.insert(1, ("bmo-base", {"binary": self.baseline}))
            for name, kwargs in starts:
                try:
                    target = start_bmo(name, self.work, self.upstream_port, self.models, **kwargs)
                    self.procs.append(target.proc)
                    self.targets[name] = target
                except BenchError as exc:
                    self.unavailable[name] = str(exc)
        if litellm is not None:
            try:
                wait_litellm(litellm)
                self.targets["litellm"] = litellm
            except BenchError as exc:
                self.unavailable["litellm"] = str(exc)
        self.loadgen = LoadGen(self.python, log=self.work / "loadgen.log", env=self.env, cwd=REPO)
        for name in list(self.targets):
            problem = self.smoke(self.targets[name])
            if problem:
                self.unavailable[name] = problem
                del self.targets[name]
        for name, why in self.unavailable.items():
            say(f"target {name} unavailable: {why.splitlines()[0] if why else '?'}")
        say("targets: " + ", ".join(self.targets))

    def smoke(self, target: Target) -> str | None:
        """One checked request of each kind; the reason a target cannot be measured, or None."""
        for scenario in (Scenario(False, 1, False, 0, 0, 1), Scenario(True, 1, False, 0, 0, 1)):
            result = self.loadgen.command(self.command(target, scenario, verify_every=1), timeout=60)
            if result["ok"] != 1:
                return f"smoke test failed ({scenario.name}): {result['errors']} {result['error_samples'][:1]}"
        return None

    def stop(self) -> None:
        if self.loadgen is not None:
            self.loadgen.close()
        for proc in reversed(self.procs):
            proc.stop()

    # --- measuring -----------------------------------------------------------------------

    def command(self, target: Target, scenario: Scenario, verify_every: int = 8) -> dict:
        profile = scenario.profile
        body = {"model": target.model(profile.name), "messages": PROMPT}
        if scenario.stream:
            body["stream"] = True
        return {
            "op": "run", "url": target.chat_url, "headers": target.headers, "body": body, "stream": scenario.stream,
            "concurrency": scenario.concurrency, "max_requests": scenario.max_requests,
            "duration_s": scenario.duration_s, "warmup_s": scenario.warmup_s,
            "session_prefix": f"bench-{target.name}-{uuid.uuid4().hex[:8]}" if scenario.sessions else None,
            "expect_chars": len(profile.text()), "verify_every": verify_every, "timeout_s": 60, "grace_s": 10,
        }

    def measure(self, target: Target, scenario: Scenario, phase: str = "matrix") -> dict:
        rows_before = ledger.count_rows(target.data_dir)
        cpu_before, t0 = target.proc.cpu(), time.monotonic()
        result = self.loadgen.command(self.command(target, scenario),
                                      timeout=scenario.warmup_s + scenario.duration_s + 120)
        cpu_used, wall = target.proc.cpu() - cpu_before, time.monotonic() - t0
        rows_after = ledger.count_rows(target.data_dir)
        record = {
            "phase": phase, "target": target.name, "scenario": scenario.name, "stream": scenario.stream,
            "concurrency": scenario.concurrency, "sessions": scenario.sessions,
            **{k: result[k] for k in ("ok", "sent", "warm", "warmup_abandoned", "unfinished", "errors", "error_samples", "elapsed_s", "rps",
                                      "latency_ms", "ttfc_ms") if k in result},
            # CPU of the server process tree (the upstream's for direct) per request, warm-up included.
            "server_cpu_ms_per_req": 1000.0 * cpu_used / max(1, result["ok"] + result.get("warm", 0)),
            "server_cpu_util": cpu_used / wall if wall > 0 else 0.0,
            "loadavg_1m": float(Path("/proc/loadavg").read_text().split()[0]),  # how busy the shared machine was
        }
        if target.kind == "bmo":
            runs_before, runs_after = rows_before["openai_compat_runs"], rows_after["openai_compat_runs"]
            if runs_before is not None and runs_after is not None:
                record["ledger_rows"] = runs_after - runs_before
                record["ledger_rows_per_s"] = (runs_after - runs_before) / wall
                ev_b, ev_a = rows_before["openai_compat_run_events"], rows_after["openai_compat_run_events"]
                record["ledger_event_rows"] = (ev_a - ev_b) if ev_a is not None and ev_b is not None else None
                record["requests_incl_warmup"] = result["ok"] + result.get("warm", 0)
        record["settle_s"] = self.settle(target)
        lat, ttfc = result.get("latency_ms") or {}, result.get("ttfc_ms") or {}
        errs = sum(result["errors"].values())
        say(f"{scenario.name:28s} {target.name:13s} {result['rps']:8.1f} req/s  p50 {lat.get('p50', 0):7.2f}  "
            f"p99 {lat.get('p99', 0):7.2f} ms  ttfc p50 {ttfc.get('p50', 0):6.2f}  errors {errs}")
        self.measurements.append(record)
        return record

    @staticmethod
    def settle(target: Target, limit_s: float = 20.0) -> float:
        """Wait until the server just measured is idle again: a saturated server still working off
        abandoned requests must not steal CPU from the next target's run."""
        start = time.monotonic()
        while time.monotonic() - start < limit_s:
            before = target.proc.cpu()
            time.sleep(0.5)
            if target.proc.cpu() - before < 0.05:  # under 10% of a core
                break
        return time.monotonic() - start

    def matrix(self) -> None:
        names = [n for n in ("direct", "bmo", "bmo-base", "bmo-otlp", "litellm") if n in self.targets]
        for i, scenario in enumerate(self.plan.scenarios):
            # Round-robin, rotated per scenario: drift and ordering effects hit every target alike.
            k = i % len(names)
            for name in names[k:] + names[:k]:
                self.measure(self.targets[name], scenario)

    def drift_check(self) -> None:
        """The first scenario again on direct and bmo: machine drift, and BMO slowing down as it ages."""
        first = self.plan.scenarios[0] if self.plan.scenarios else None
        if first is None:
            return
        again = next((s for s in self.plan.scenarios if not s.stream and not s.sessions and s.concurrency == 16), first)
        for name in ("direct", "bmo", "bmo-base"):
            if name in self.targets:
                self.measure(self.targets[name], again, phase="drift")

    def ledger_pair(self) -> list[dict]:
        if "bmo" not in self.targets or "bmo-noledger" not in self.targets:
            return []
        out = []
        for r in range(self.plan.ledger_rounds):
            order = ["bmo", "bmo-noledger"] if r % 2 == 0 else ["bmo-noledger", "bmo"]
            for name in order:
                out.append(self.measure(self.targets[name], self.plan.ledger_pair, phase="ledger"))
        return out

    def memory(self) -> dict:
        out = {}
        for name, target in self.targets.items():
            out[name] = target.proc.memory()
        if self.sink is not None:
            out["otlp-sink"] = self.sink.memory()
        return out

    def worst_scenario(self) -> Scenario | None:
        """The scenario where BMO keeps the smallest share of direct's throughput."""
        by = {(m["target"], m["scenario"]): m for m in self.measurements if m["phase"] == "matrix"}
        worst, worst_ratio = None, None
        for scenario in self.plan.scenarios:
            b, d = by.get(("bmo", scenario.name)), by.get(("direct", scenario.name))
            if not b or not d or not d["rps"] or scenario.concurrency < 16:
                continue
            ratio = b["rps"] / d["rps"]
            if worst_ratio is None or ratio < worst_ratio:
                worst, worst_ratio = scenario, ratio
        return worst

    def profile(self, scenario: Scenario | None) -> dict | None:
        if self.profile_seconds <= 0 or scenario is None or "bmo" not in self.targets:
            return None
        if profiling.py_spy() is None:
            return {"error": "py-spy not installed in the bench venv (bench/run --setup)"}
        svg, raw = self.results_dir / "profile.svg", self.work / "profile.raw.txt"
        target = self.targets["bmo"]
        run = Scenario(scenario.stream, scenario.concurrency, scenario.sessions, self.profile_seconds + 1, 0.5,
                       scenario.max_requests * 4)
        errors = []
        for out, gil in ((raw, True), (svg, False)):
            say(f"profiling bmo (pid {target.proc.pid}) under {scenario.name} for {self.profile_seconds:.0f}s "
                f"({'GIL holder, collapsed stacks' if gil else 'all threads, flame graph'})")
            sampler = profiling.start_recording(target.proc.pid, self.profile_seconds, out, gil=gil)
            self.measure(target, run, phase="profile")
            error = profiling.finish_recording(sampler)
            if error:
                errors.append(error)
        if not raw.exists():
            return {"scenario": scenario.name, "error": " | ".join(errors) or "py-spy wrote nothing"}
        summary = profiling.summarise(raw)
        (self.results_dir / "profile-gil.txt").write_text(raw.read_text())
        return {"scenario": scenario.name, "svg": str(svg.relative_to(REPO)) if svg.exists() else None,
                "collapsed": str((self.results_dir / "profile-gil.txt").relative_to(REPO)),
                "errors": errors, **summary}

    def hold(self) -> dict | None:
        """RSS of a fresh BMO holding N slow streams open at once; streams dropped."""
        if not self.want_bmo or "bmo" not in self.targets:
            return None
        target = start_bmo("bmo-hold", self.work, self.upstream_port, self.models)
        self.procs.append(target.proc)
        plan = self.plan
        idle = target.proc.memory()
        samples: list[float] = []
        at_all_open: dict = {}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append(target.proc.memory()["rss_mb"])
                stop.wait(0.25)

        def on_event(event: dict) -> None:
            if event.get("event") == "all_open":
                at_all_open.update(event, **target.proc.memory())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        say(f"holding {plan.hold_streams} streams of ~{plan.hold_seconds:.0f}s on a fresh bmo")
        body = {"model": target.model(self.slow.name), "messages": PROMPT, "stream": True}
        try:
            result = self.loadgen.command({
                "op": "hold", "url": target.chat_url, "headers": target.headers, "body": body,
                "streams": plan.hold_streams, "ramp_s": plan.hold_ramp_s, "open_timeout_s": plan.hold_seconds,
                # A stream not done by then counts as dropped: BMO stalled it (e.g. a connection pool limit).
                "timeout_s": plan.hold_ramp_s + plan.hold_seconds + 15,
            }, timeout=plan.hold_ramp_s + plan.hold_seconds + 90, on_event=on_event)
        finally:
            stop.set()
            sampler.join(5)
        final = target.proc.memory()
        target.proc.stop()
        say(f"hold: opened {result['opened']}/{result['streams']} (max {result['max_open_at_once']} at once), dropped {result['dropped']}, "
            f"RSS at all open {at_all_open.get('rss_mb', 0):.0f} MB, max {max(samples or [0]):.0f} MB")
        return {
            **{k: result[k] for k in ("streams", "opened", "max_open_at_once", "completed", "dropped", "errors",
                                      "error_samples", "elapsed_s", "ttfc_ms")},
            "stream_seconds": plan.hold_seconds, "ramp_s": plan.hold_ramp_s,
            "idle_rss_mb": idle["rss_mb"], "rss_at_all_open_mb": at_all_open.get("rss_mb"),
            "open_at_sample": at_all_open.get("open"), "max_rss_sampled_mb": max(samples or [0]),
            "peak_rss_mb": final["peak_rss_mb"],
        }


def execute(plan: Plan, *, litellm: bool = True, bmo: bool = True, profile_seconds: float | None = None,
            results: Path | None = None, baseline: Path | None = None) -> dict:
    """Run ``plan`` end to end and return everything measured (the report is written by the caller)."""
    results = results or BENCH / "results"
    results.mkdir(parents=True, exist_ok=True)
    run = Run(plan, litellm=litellm, bmo=bmo, work=BENCH / ".work" / "run", results=results,
              profile_seconds=plan.profile_seconds if profile_seconds is None else profile_seconds, baseline=baseline)
    started = time.time()
    out: dict = {"plan": plan.name, "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))}
    try:
        run.start()
        out["targets"] = {n: {"kind": t.kind, **t.notes} for n, t in run.targets.items()}
        out["unavailable"] = run.unavailable
        run.ledger_pair()  # first, while both BMO instances are fresh and alike
        run.matrix()
        run.drift_check()
        out["memory_after_load"] = run.memory()
        if "otlp-sink" in out["memory_after_load"]:
            out["otlp_sink_stats"] = _sink_stats(run)
        worst = run.worst_scenario()
        out["profile"] = run.profile(worst)
        for name in ("bmo-otlp", "bmo-noledger", "bmo-base", "litellm"):
            if name in run.targets:
                run.targets[name].proc.stop()
        out["hold"] = run.hold()
    finally:
        out["measurements"] = run.measurements
        run.stop()
        out["upstream_stats"] = _upstream_stats(run)
        out["duration_s"] = time.time() - started
    return out


def _sink_stats(run: Run) -> dict | None:
    """What the OTLP sink received: proof that spans really left BMO."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{run.sink_port}/stats", timeout=5) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


def _upstream_stats(run: Run) -> dict | None:
    """The fake upstream's totals (it prints them when stopped): router calls show BMO's extra upstream call."""
    direct = run.targets.get("direct")
    if direct is None:
        return None
    for line in reversed(direct.proc.log_tail(4000).splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None
