"""The load generator: its own process, an aiohttp client driven by JSON lines on stdin.

Each stdin line is one command; each answer is one JSON line on stdout. Commands:

- ``{"op": "run", ...}``: closed-loop load. ``concurrency`` virtual users each send
  requests back to back until ``max_requests`` are sent or ``duration_s`` is over
  (after an unmeasured warm-up of ``warmup_s``). With ``session_prefix`` each virtual user
  sends its own ``X-BMO-Session-Id`` on every request (the session is reused).
- ``{"op": "hold", ...}``: open ``streams`` slow streams over ``ramp_s`` seconds and keep
  them open; prints ``{"event": "all_open"}`` once every stream has sent content (or the
  open timeout passed), then the final result when they end.

Latency is request sent -> last byte. Time to first chunk (TTFC) is request sent -> first
SSE event carrying non-empty ``delta.content`` (a role-only first chunk does not count).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import sys
import time
from collections import Counter

import aiohttp

from bench.loop import run_loop

FIRST_CONTENT = re.compile(rb'[{,]\s*"content"\s*:\s*"[^"]')


def percentiles(values: list[float]) -> dict | None:
    """p50/p90/p99/max/mean in milliseconds (nearest rank), or None when empty."""
    if not values:
        return None
    s = sorted(values)
    n = len(s)

    def rank(q: float) -> float:
        return s[min(n - 1, max(0, math.ceil(q * n) - 1))] * 1000.0

    return {"p50": rank(0.50), "p90": rank(0.90), "p99": rank(0.99), "max": s[-1] * 1000.0,
            "mean": sum(s) / n * 1000.0, "n": n}


def sse_text(raw: bytes) -> tuple[str, bool]:
    """(the concatenated ``delta.content``, saw ``[DONE]``) of a whole SSE body."""
    text, done = [], False
    for line in raw.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            done = True
            continue
        try:
            event = json.loads(data)
        except ValueError:
            continue
        for choice in event.get("choices") or []:
            text.append((choice.get("delta") or {}).get("content") or "")
    return "".join(text), done


def stream_content_chars(raw: bytes) -> tuple[int, bool]:
    """(characters of delta.content, saw [DONE]) for a whole SSE body."""
    text, done = sse_text(raw)
    return len(text), done


class Outcome:
    """What one measured phase collected."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.ttfc: list[float] = []
        self.errors: Counter[str] = Counter()
        self.samples: list[str] = []

    def fail(self, kind: str, detail: str = "") -> None:
        self.errors[kind] += 1
        if len(self.samples) < 5:
            self.samples.append(f"{kind}: {detail[:300]}")


async def one_request(session: aiohttp.ClientSession, cmd: dict, headers: dict, body: bytes,
                      out: Outcome | None, verify: bool) -> bool:
    """Send one request and record it in ``out`` (None: warm-up). True when it succeeded."""
    stream = cmd["stream"]
    expect = cmd.get("expect_chars")
    t0 = time.perf_counter()
    first = None
    try:
        async with session.post(cmd["url"], data=body, headers=headers) as resp:
            if resp.status != 200:
                text = await resp.text(errors="replace")
                if out is not None:
                    out.fail(f"http_{resp.status}", text)
                return False
            if stream:
                parts: list[bytes] = []
                tail = b""
                async for piece in resp.content.iter_any():
                    if first is None:
                        window = tail + piece
                        if FIRST_CONTENT.search(window):
                            first = time.perf_counter()
                        tail = window[-64:]
                    parts.append(piece)
                raw = b"".join(parts)
            else:
                raw = await resp.read()
                first = time.perf_counter()
    except asyncio.TimeoutError:
        if out is not None:
            out.fail("timeout", "")
        return False
    except aiohttp.ClientError as exc:
        if out is not None:
            out.fail(f"conn_{type(exc).__name__}", str(exc))
        return False
    t1 = time.perf_counter()
    if out is None:
        return True
    if stream:
        if not raw.rstrip().endswith(b"data: [DONE]"):
            out.fail("stream_incomplete", raw[-200:].decode(errors="replace"))
            return False
        if first is None:
            out.fail("no_content", raw[-200:].decode(errors="replace"))
            return False
        if verify and expect is not None:
            chars, _ = stream_content_chars(raw)
            if chars != expect:
                out.fail("bad_content", f"{chars} chars, expected {expect}")
                return False
    elif verify and expect is not None:
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            out.fail("bad_body", f"{exc}: {raw[:200]!r}")
            return False
        if len(content) != expect:
            out.fail("bad_content", f"{len(content)} chars, expected {expect}")
            return False
    out.latencies.append(t1 - t0)
    if stream:
        out.ttfc.append(first - t0)
    return True


async def run_load(cmd: dict) -> dict:
    concurrency = int(cmd["concurrency"])
    body = json.dumps(cmd["body"]).encode()
    base_headers = {"Content-Type": "application/json", **cmd.get("headers", {})}
    prefix = cmd.get("session_prefix")
    verify_every = max(1, int(cmd.get("verify_every", 8)))
    timeout = aiohttp.ClientTimeout(total=float(cmd.get("timeout_s", 60)))
    connector = aiohttp.TCPConnector(limit=concurrency + 8, limit_per_host=0, ttl_dns_cache=None)
    out = Outcome()
    sent = 0
    warm = 0
    measuring = False
    abandoned: set[int] = set()  # virtual users whose warm-up request was given up

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def user(vu: int, deadline: float, budget: int | None) -> None:
            nonlocal sent, warm
            headers = dict(base_headers)
            if prefix:
                # A user whose warm-up request was abandoned gets a fresh session: the abandoned run may
                # still hold the old one, and a 409 queued answer would be the bench's doing, not BMO's.
                headers["X-BMO-Session-Id"] = f"{prefix}-{vu}" + ("-b" if vu in abandoned else "")
            first_round = True
            while time.perf_counter() < deadline or first_round:
                if budget is not None and sent >= budget:
                    return
                first_round = False
                if measuring:
                    sent += 1
                    await one_request(session, cmd, headers, body, out, verify=(sent % verify_every == 1))
                else:
                    warm += 1
                    await one_request(session, cmd, headers, body, None, verify=False)

        # Warm-up: every virtual user starts at least one request (this opens the connections and,
        # with sessions, creates each session) and keeps going until warmup_s is over. A saturated
        # server may not finish them all: what is still running a little later is abandoned.
        warmup_s = float(cmd.get("warmup_s", 1.0))
        warm_tasks = [asyncio.ensure_future(user(vu, time.perf_counter() + warmup_s, None)) for vu in range(concurrency)]
        _, stuck = await asyncio.wait(warm_tasks, timeout=warmup_s + max(3.0, 2 * warmup_s))
        for vu, task in enumerate(warm_tasks):
            if task in stuck:
                abandoned.add(vu)
                task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
        measuring = True
        start = time.perf_counter()
        deadline = start + float(cmd["duration_s"])
        tasks = [asyncio.ensure_future(user(vu, deadline, int(cmd["max_requests"]))) for vu in range(concurrency)]
        done, pending = await asyncio.wait(tasks, timeout=float(cmd["duration_s"]) + float(cmd.get("grace_s", 20)))
        for task in pending:
            task.cancel()
        unfinished = len(pending)
        await asyncio.gather(*pending, return_exceptions=True)
        elapsed = time.perf_counter() - start
    ok = len(out.latencies)
    return {
        "ok": ok, "sent": sent, "warm": warm, "warmup_abandoned": len(abandoned), "unfinished": unfinished, "errors": dict(out.errors), "error_samples": out.samples,
        "elapsed_s": elapsed, "rps": ok / elapsed if elapsed > 0 else 0.0,
        "latency_ms": percentiles(out.latencies), "ttfc_ms": percentiles(out.ttfc),
    }


async def hold_streams(cmd: dict) -> dict:
    """Open many slow streams and keep them open; report drops."""
    count = int(cmd["streams"])
    body = json.dumps(cmd["body"]).encode()
    headers = {"Content-Type": "application/json", **cmd.get("headers", {})}
    timeout = aiohttp.ClientTimeout(total=float(cmd.get("timeout_s", 180)))
    connector = aiohttp.TCPConnector(limit=count + 8, limit_per_host=0)
    out = Outcome()
    opened = 0  # streams that have sent content
    now_open = max_open = 0  # streams sending content and not finished yet
    all_open = asyncio.Event()
    ramp = float(cmd.get("ramp_s", 5.0))

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(i: int) -> None:
            nonlocal opened, now_open, max_open
            await asyncio.sleep(ramp * i / count)
            t0 = time.perf_counter()
            seen = False
            try:
                async with session.post(cmd["url"], data=body, headers=headers) as resp:
                    if resp.status != 200:
                        out.fail(f"http_{resp.status}", await resp.text(errors="replace"))
                        return
                    tail, parts = b"", []
                    async for piece in resp.content.iter_any():
                        if not seen:
                            window = tail + piece
                            if FIRST_CONTENT.search(window):
                                seen = True
                                out.ttfc.append(time.perf_counter() - t0)
                                opened += 1
                                now_open += 1
                                max_open = max(max_open, now_open)
                                if opened == count:
                                    all_open.set()
                            tail = window[-64:]
                        parts.append(piece)
                    raw = b"".join(parts)
            except asyncio.TimeoutError:
                out.fail("timeout")
                return
            except aiohttp.ClientError as exc:
                out.fail(f"conn_{type(exc).__name__}", str(exc))
                return
            finally:
                if seen:
                    now_open -= 1
            if not raw.rstrip().endswith(b"data: [DONE]"):
                out.fail("stream_incomplete", raw[-200:].decode(errors="replace"))
                return
            out.latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        tasks = [asyncio.ensure_future(one(i)) for i in range(count)]
        try:
            await asyncio.wait_for(all_open.wait(), timeout=ramp + float(cmd.get("open_timeout_s", 60)))
        except asyncio.TimeoutError:
            pass
        emit({"event": "all_open", "open": now_open, "t": time.perf_counter() - start})
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "streams": count, "opened": opened, "max_open_at_once": max_open, "completed": len(out.latencies),
        "dropped": count - len(out.latencies), "errors": dict(out.errors), "error_samples": out.samples,
        "elapsed_s": time.perf_counter() - start, "ttfc_ms": percentiles(out.ttfc), "latency_ms": percentiles(out.latencies),
    }


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def serve_commands() -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        cmd = json.loads(line)
        try:
            if cmd["op"] == "run":
                result = await run_load(cmd)
            elif cmd["op"] == "hold":
                result = await hold_streams(cmd)
            else:
                result = {"fatal": f"unknown op {cmd['op']!r}"}
        except Exception as exc:  # report, never die silently: the orchestrator waits for a line
            result = {"fatal": f"{type(exc).__name__}: {exc}"}
        emit({"event": "result", **result})


def main() -> None:
    print("READY", flush=True)
    run_loop(serve_commands())


if __name__ == "__main__":
    main()
