"""Two BMO instances (``bmo-a``, ``bmo-b``) on one throw-away PostgreSQL, the load spread over both.

    bench/.venv-bench/bin/python -m bench.two_instances [--quick]

One fake upstream (``short``: 16 tokens at once; ``paced``: a streamed answer of 24 chunks 25 ms
apart, so session turns overlap), one PostgreSQL cluster, two ``bmo serve`` on the same database.
The load is driven from this process (an aiohttp client), in three phases:

1. stateless non-streamed chats at c=16, request i to instance i mod 2: req/s, p50/p99 per
   instance and in total;
2. streamed session turns at c=16 over K sessions, each turn to a random session on a random
   instance: counts of 200 / 409 ``queued`` / other; every 409 must name a turn of that session
   that got a 200 (counted apart when that turn ran on the other instance);
3. for a sample of fresh sessions (a few at a time, with a stateless background load on both
   instances): a streamed turn on A; as soon as A's headers arrive, a turn on the same session to
   B (expected: 409 ``queued`` naming A's ``X-Request-Id``); then ``X-BMO-Resume`` on B, whose text
   must equal what A's client read. Matches / mismatches / errors and the resume's first-chunk latency.

Writes ``bench/results/two-instances[-quick].md`` and ``.json``; exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp

from bench.loadgen import FIRST_CONTENT, percentiles, sse_text
from bench.loop import run_loop
from bench.procs import BenchError, Proc
from bench.runner import say
from bench.scenarios import SHORT, profile_arg
from bench.targets import BENCH, REPO, Target, clean_env, start_bmo, start_postgres, start_upstream
from bench.upstream import Profile

PACED = Profile("paced", tokens=24, chunks=24, delay_s=0.025)  # ~0.6 s per streamed turn
NAMES = ("bmo-a", "bmo-b")
PROMPT = [{"role": "user", "content": "Say something short."}]


def queued_check(oks: dict[str, tuple[str, str]], queued: list[tuple[str, str, str]],
                 refused: dict[str, tuple[str, str]] | None = None) -> dict:
    """Every 409 against the 200s: did it name a turn of its session, and was that turn on the other instance?

    ``oks``: request id -> (session, instance) of each 200; ``queued``: (session, instance, named id) per 409;
    ``refused``: request id -> (session, instance) of each 409 itself (to tell what an unknown name was).
    """
    out: dict = {"named_turn_of_session": 0, "named_turn_on_other_instance": 0, "named_unknown": 0,
                 "unknown_samples": []}
    for session, instance, named in queued:
        hit = oks.get(named)
        if hit is None or hit[0] != session:
            out["named_unknown"] += 1
            if len(out["unknown_samples"]) < 5:
                was = ("a 200 of session " + hit[0]) if hit else (
                    f"a 409 of session {refused[named][0]} on {refused[named][1]}" if refused and named in refused
                    else "no response the client got")
                out["unknown_samples"].append(f"409 on {instance} for {session} named {named}: {was}")
            continue
        out["named_turn_of_session"] += 1
        if hit[1] != instance:
            out["named_turn_on_other_instance"] += 1
    return out


class Client:
    """The load: one aiohttp session for both instances."""

    def __init__(self, targets: list[Target]):
        self.targets = targets
        self.http: aiohttp.ClientSession | None = None

    def headers(self, target: Target, session: str | None = None, resume: str | None = None) -> dict:
        h = {"Content-Type": "application/json", **target.headers}
        if session:
            h["X-BMO-Session-Id"] = session
        if resume:
            h["X-BMO-Resume"] = resume
        return h

    @staticmethod
    def body(profile: Profile, stream: bool, turn: str = "") -> bytes:
        # Session turns each say something new: an identical turn on the instance already running one is
        # joined to it as a retry (200, not 409), which would hide the busy check this bench is about.
        messages = [{"role": "user", "content": f"{PROMPT[0]['content']} ({turn})"}] if turn else PROMPT
        return json.dumps({"model": "up/" + profile.name, "messages": messages, "stream": stream}).encode()

    async def stream_post(self, target: Target, session: str | None, resume: str | None = None):
        """POST a streamed turn; (status, headers, text or error body, done, first-chunk s, total s)."""
        t0 = time.perf_counter()
        async with self.http.post(target.chat_url, data=self.body(PACED, True, uuid.uuid4().hex[:12]),
                                  headers=self.headers(target, session, resume)) as resp:
            if resp.status != 200:
                return resp.status, resp.headers.copy(), await resp.read(), False, None, time.perf_counter() - t0
            first, tail, parts = None, b"", []
            async for piece in resp.content.iter_any():
                if first is None:
                    window = tail + piece
                    if FIRST_CONTENT.search(window):
                        first = time.perf_counter() - t0
                    tail = window[-64:]
                parts.append(piece)
            text, done = sse_text(b"".join(parts))
            return 200, resp.headers.copy(), text, done, first, time.perf_counter() - t0

    # --- phase 1 ---------------------------------------------------------------------------

    async def stateless(self, concurrency: int, duration_s: float, warmup_s: float, stop: asyncio.Event | None = None):
        """Non-streamed short chats, request i to instance i mod 2; per instance: latencies and errors."""
        lat = {t.name: [] for t in self.targets}
        errors: dict[str, dict[str, int]] = {t.name: {} for t in self.targets}
        counter = itertools.count()
        body, expect = self.body(SHORT, False), SHORT.text()
        measuring_from = time.perf_counter() + warmup_s
        deadline = measuring_from + duration_s

        async def user() -> None:
            while time.perf_counter() < deadline and not (stop is not None and stop.is_set()):
                target = self.targets[next(counter) % len(self.targets)]
                t0 = time.perf_counter()
                kind = None
                try:
                    async with self.http.post(target.chat_url, data=body, headers=self.headers(target)) as resp:
                        raw = await resp.read()
                        if resp.status != 200:
                            kind = f"http_{resp.status}"
                        elif json.loads(raw)["choices"][0]["message"]["content"] != expect:
                            kind = "bad_content"
                except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError) as exc:
                    kind = type(exc).__name__
                if t0 < measuring_from:
                    continue
                if kind:
                    errors[target.name][kind] = errors[target.name].get(kind, 0) + 1
                else:
                    lat[target.name].append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        elapsed = max(1e-9, time.perf_counter() - max(start, measuring_from))
        out = {name: {"ok": len(v), "rps": len(v) / elapsed, "latency_ms": percentiles(v), "errors": errors[name]}
               for name, v in lat.items()}
        every = [x for v in lat.values() for x in v]
        total_errors: dict[str, int] = {}
        for per in errors.values():
            for kind, n in per.items():
                total_errors[kind] = total_errors.get(kind, 0) + n
        out["total"] = {"ok": len(every), "rps": len(every) / elapsed, "latency_ms": percentiles(every),
                        "errors": total_errors}
        return out

    # --- phase 2 ---------------------------------------------------------------------------

    async def session_turns(self, concurrency: int, sessions: int, duration_s: float, prefix: str, seed: int = 14):
        rng = random.Random(seed)
        ids = [f"{prefix}-s{i}" for i in range(sessions)]
        counts: dict[str, dict[str, int]] = {t.name: {} for t in self.targets}
        oks: dict[str, tuple[str, str]] = {}
        queued: list[tuple[str, str, str]] = []
        refused: dict[str, tuple[str, str]] = {}
        lat: list[float] = []
        samples: list[str] = []
        deadline = time.perf_counter() + duration_s

        def count(name: str, kind: str) -> None:
            counts[name][kind] = counts[name].get(kind, 0) + 1

        async def user() -> None:
            while time.perf_counter() < deadline:
                session, target = rng.choice(ids), rng.choice(self.targets)
                try:
                    status, headers, payload, done, _, total = await self.stream_post(target, session)
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    count(target.name, type(exc).__name__)
                    continue
                if status == 200:
                    if not done or payload != PACED.text():
                        count(target.name, "200_bad_stream")
                        continue
                    count(target.name, "200")
                    oks[headers.get("X-Request-Id", "")] = (session, target.name)
                    lat.append(total)
                elif status == 409:
                    try:
                        err = json.loads(payload)["error"]
                    except (ValueError, KeyError):
                        err = {}
                    if err.get("code") == "queued" and err.get("running_request_id"):
                        count(target.name, "409_queued")
                        queued.append((session, target.name, err["running_request_id"]))
                        refused[headers.get("X-Request-Id", "")] = (session, target.name)
                    else:
                        count(target.name, "409_other")
                        if len(samples) < 5:
                            samples.append(payload[:300].decode(errors="replace"))
                    await asyncio.sleep(0.01)  # a client that got "busy" does not hammer the session
                else:
                    count(target.name, f"http_{status}")
                    if len(samples) < 5:
                        samples.append(f"{status}: {payload[:300].decode(errors='replace')}")

        start = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        total: dict[str, int] = {}
        for c in counts.values():
            for k, v in c.items():
                total[k] = total.get(k, 0) + v
        return {"sessions": sessions, "concurrency": concurrency, "elapsed_s": elapsed, "per_instance": counts,
                "total": total, "turns_per_s": total.get("200", 0) / elapsed, "latency_ms_200": percentiles(lat),
                "queued_names": queued_check(oks, queued, refused), "error_samples": samples}

    # --- phase 3 ---------------------------------------------------------------------------

    async def resume_sample(self, session: str) -> dict:
        a, b = self.targets
        row: dict = {"session": session}
        post = await self.http.post(a.chat_url, data=self.body(PACED, True, "first"), headers=self.headers(a, session))
        if post.status != 200:
            row.update(result="error", detail=f"A answered {post.status}: {(await post.read())[:200]!r}")
            post.release()
            return row
        rid = post.headers.get("X-Request-Id", "")
        a_done = asyncio.Event()

        async def read_a() -> tuple[str, bool]:
            try:
                text, done = sse_text(await post.read())
                return text, done
            finally:
                a_done.set()
                post.release()

        reader = asyncio.ensure_future(read_a())
        try:
            status, _, payload, *_ = await self.stream_post(b, session)
            row["a_finished_before_b_answered"] = a_done.is_set()
            if status != 409:
                row.update(result="not_queued", detail=f"B answered {status} (A's run was "
                           f"{'over' if row['a_finished_before_b_answered'] else 'still going'})")
                return row
            err = json.loads(payload).get("error") or {}
            if err.get("code") != "queued" or err.get("type") != "invalid_request_error":
                row.update(result="error", detail=f"409 without code queued: {payload[:200]!r}")
                return row
            if err.get("running_request_id") != rid:
                row.update(result="mismatch", detail=f"409 named {err.get('running_request_id')!r}, A's is {rid!r}")
                return row
            t0 = time.perf_counter()
            status, _, text_b, done_b, first, total = await self.stream_post(b, session, resume=rid)
            if status != 200:
                row.update(result="error", detail=f"resume on B answered {status}: {text_b[:200]!r}")
                return row
            text_a, done_a = await reader
            row.update(resume_first_chunk_s=first, resume_total_s=total, resume_started_at=t0,
                       a_chars=len(text_a), b_chars=len(text_b))
            if not (done_a and done_b):
                row.update(result="error", detail=f"stream without [DONE] (A {done_a}, resume {done_b})")
            elif text_a != text_b:
                row.update(result="mismatch", detail=f"A read {text_a[:80]!r} ({len(text_a)} chars), "
                                                     f"the resume on B {text_b[:80]!r} ({len(text_b)} chars)")
            else:
                row["result"] = "match"
            return row
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            row.update(result="error", detail=f"{type(exc).__name__}: {exc}")
            return row
        finally:
            if not reader.done():
                await asyncio.wait([reader], timeout=30)

    async def resumes(self, samples: int, at_once: int, prefix: str, background_c: int) -> dict:
        stop = asyncio.Event()
        background = asyncio.ensure_future(self.stateless(background_c, 3600.0, 0.0, stop=stop))
        gate = asyncio.Semaphore(at_once)

        async def one(i: int) -> dict:
            async with gate:
                return await self.resume_sample(f"{prefix}-r{i}")

        rows = await asyncio.gather(*(one(i) for i in range(samples)))
        stop.set()
        load = await background
        return summarise_resumes(rows) | {"background": load, "rows": rows}


def summarise_resumes(rows: list[dict]) -> dict:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["result"]] = counts.get(r["result"], 0) + 1
    firsts = [r["resume_first_chunk_s"] for r in rows if r.get("resume_first_chunk_s") is not None]
    return {"samples": len(rows), "counts": counts, "resume_first_chunk_ms": percentiles(firsts),
            "failures": [{"session": r["session"], "result": r["result"], "detail": r.get("detail", "")}
                         for r in rows if r["result"] != "match"][:10]}


async def drive(targets: list[Target], quick: bool) -> dict:
    prefix = f"two-{uuid.uuid4().hex[:6]}"
    client = Client(targets)
    connector = aiohttp.TCPConnector(limit=128, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
        client.http = http
        out: dict = {}
        procs = {t.name: t.proc for t in targets}

        async def phase(name: str, coro):
            cpu = {n: p.cpu() for n, p in procs.items()}
            t0 = time.monotonic()
            result = await coro
            wall = time.monotonic() - t0
            result["cpu_cores_used"] = {n: (p.cpu() - cpu[n]) / wall for n, p in procs.items()}
            say(f"{name}: done in {wall:.1f}s")
            out[name] = result

        await phase("stateless", client.stateless(16, 4.0 if quick else 10.0, 0.5))
        await phase("sessions", client.session_turns(16, 24, 6.0 if quick else 15.0, prefix))
        await phase("resume", client.resumes(50 if quick else 200, 5, prefix, background_c=4))
    return out


def execute(quick: bool) -> dict:
    work = BENCH / ".work" / "two-instances"
    if work.exists():
        import shutil
        shutil.rmtree(work)
    work.mkdir(parents=True)
    env = clean_env()
    procs: list[Proc] = []
    out: dict = {"plan": "two-instances-quick" if quick else "two-instances",
                 "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
                 "python": platform.python_version(), "loadavg_before": Path("/proc/loadavg").read_text().split()[0],
                 "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                          cwd=REPO).stdout.strip(),
                 "paced_profile": profile_arg(PACED)}
    started = time.time()
    try:
        upstream, upstream_port = start_upstream(sys.executable, work, [profile_arg(SHORT), profile_arg(PACED)], env)
        procs.append(upstream)
        pg, port = start_postgres(work, env, ["bmo_two"])
        procs.append(pg)
        url = f"postgresql://postgres@127.0.0.1:{port}/bmo_two"
        targets = []
        for name in NAMES:
            target = start_bmo(name, work, upstream_port, [SHORT.name, PACED.name], store_url=url)
            procs.append(target.proc)
            targets.append(target)
        say("bmo-a and bmo-b serving on one PostgreSQL database")
        pg_cpu = pg.cpu()
        holder: dict = {}
        run_loop(_into(holder, drive(targets, quick)))
        out.update(holder["result"])
        out["postgres_cpu_s"] = pg.cpu() - pg_cpu
    finally:
        for proc in reversed(procs):
            proc.stop()
        out["duration_s"] = time.time() - started
    return out


async def _into(holder: dict, coro) -> None:
    holder["result"] = await coro


def _lat(row: dict, key: str) -> str:
    lat = row.get("latency_ms") or {}
    return f"{lat.get(key, 0):.1f}"


def markdown(r: dict) -> str:
    lines = [f"# Two BMO instances on one PostgreSQL ({r['plan']}, {r['started_at']})", "",
             f"Commit `{r['commit']}`, {r['cpus']} CPUs shared by the load, the upstream, PostgreSQL and both "
             f"instances; load average before {r['loadavg_before']}; {r['duration_s']:.0f} s in all.", "",
             "## 1. Stateless chats, c=16, round-robin over A and B", "",
             "| instance | req/s | p50 ms | p99 ms | errors | CPU cores used |", "|---|---|---|---|---|---|"]
    st = r["stateless"]
    for name in (*NAMES, "total"):
        row = st[name]
        cpu = st["cpu_cores_used"].get(name)
        lines.append(f"| {name} | {row['rps']:.1f} | {_lat(row, 'p50')} | {_lat(row, 'p99')} | "
                     f"{sum(row['errors'].values())} | {'' if cpu is None else f'{cpu:.2f}'} |")
    se = r["sessions"]
    q = se["queued_names"]
    lines += ["", f"## 2. Session turns, c={se['concurrency']} over {se['sessions']} sessions, each turn to a random "
              "instance (streamed, paced answers)", "",
              "| instance | 200 | 409 queued | other |", "|---|---|---|---|"]
    for name in (*NAMES, "total"):
        c = se["total"] if name == "total" else se["per_instance"][name]
        other = {k: v for k, v in c.items() if k not in ("200", "409_queued")}
        lines.append(f"| {name} | {c.get('200', 0)} | {c.get('409_queued', 0)} | {other or 0} |")
    lines += ["", f"{se['turns_per_s']:.1f} answered turns/s, p50 {_lat({'latency_ms': se['latency_ms_200']}, 'p50')} ms. "
              f"Of the 409s, {q['named_turn_of_session']} named a turn of the same session that got a 200 "
              f"({q['named_turn_on_other_instance']} of them running on the other instance), {q['named_unknown']} "
              "named no such turn."]
    lines += [f"- unknown name: {u}" for u in q.get("unknown_samples", [])]
    re_ = r["resume"]
    counts = re_["counts"]
    first = re_["resume_first_chunk_ms"] or {}
    bg = re_["background"]["total"]
    lines += ["", f"## 3. Busy session across instances ({re_['samples']} fresh sessions, 5 at a time, with a "
              f"stateless c=4 background load at {bg['rps']:.1f} req/s)", "",
              "A streamed turn on A; a turn on the same session to B (expected: 409 `queued` naming A's request id); "
              "then `X-BMO-Resume` on B, its text compared with what A's client read.", "",
              "| match | mismatch | not queued | error | resume first chunk p50 / p99 / max ms |", "|---|---|---|---|---|",
              f"| {counts.get('match', 0)} | {counts.get('mismatch', 0)} | {counts.get('not_queued', 0)} | "
              f"{counts.get('error', 0)} | {first.get('p50', 0):.1f} / {first.get('p99', 0):.1f} / "
              f"{first.get('max', 0):.1f} |"]
    if re_["failures"]:
        lines += ["", "Failures:", ""] + [f"- `{f['session']}`: {f['result']}: {f['detail']}" for f in re_["failures"]]
    lines += ["", f"PostgreSQL server CPU over the three phases: {r.get('postgres_cpu_s', 0):.1f} s.",
              f"Load average at the end: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter phases, 50 resume samples (about a minute)")
    args = parser.parse_args()
    try:
        result = execute(args.quick)
    except BenchError as exc:
        raise SystemExit(f"two_instances: {exc}") from None
    results = BENCH / "results"
    stem = result["plan"]
    (results / f"{stem}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (results / f"{stem}.md").write_text(markdown(result))
    say(f"wrote {results / (stem + '.md')}")
    print(markdown(result))
    counts = result["resume"]["counts"]
    if counts.get("mismatch") or result["sessions"]["queued_names"]["named_unknown"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
