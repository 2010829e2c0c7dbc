"""How many concurrent slow streams ``bmo serve`` takes on loopback, and what the rest get.

    python -m bench.stream_capacity --streams 2000 --ramp-s 5 --backlog 128 --max-streams 0

Starts the fake upstream and ``bmo serve`` as processes, opens ``--streams`` streaming chat
requests spread over ``--ramp-s``, each answered in ``--chunks`` chunks ``--chunk-delay-s``
apart, and counts outcomes: completed, refused (503), connect timeout, reset, other.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

from bmo.testing.harness import clean_env, free_port, spawn_serve

TOKEN = "bench-token"


def _script(upstream: str, count: int, chunks: int, delay: float) -> None:
    replies = [{"text": "slow stream " * chunks, "chunks": chunks, "chunk_delay_s": delay}] * count
    req = urllib.request.Request(upstream + "/_fake/script", data=json.dumps(replies).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=30).read()


async def _one(http: aiohttp.ClientSession, url: str, outcomes: collections.Counter) -> None:
    body = {"model": "fake/fake-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    try:
        async with http.post(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            if resp.status == 503:
                outcomes["refused_503"] += 1
                return
            text = await resp.text()
            outcomes["completed" if text.rstrip().endswith("[DONE]") else f"status_{resp.status}"] += 1
    except aiohttp.ConnectionTimeoutError:
        outcomes["connect_timeout"] += 1
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
        outcomes["reset"] += 1
    except Exception as exc:  # noqa: BLE001 - a bench counts every kind
        outcomes[type(exc).__name__] += 1


async def _load(url: str, streams: int, ramp_s: float, connect_s: float) -> collections.Counter:
    outcomes: collections.Counter = collections.Counter()
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_s, sock_read=60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as http:
        tasks = []
        started = time.monotonic()
        for i in range(streams):
            wait = started + ramp_s * i / streams - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.ensure_future(_one(http, url, outcomes)))
        await asyncio.gather(*tasks)
    return outcomes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--ramp-s", type=float, default=5.0)
    ap.add_argument("--chunks", type=int, default=10)
    ap.add_argument("--chunk-delay-s", type=float, default=0.5)
    ap.add_argument("--backlog", type=int, default=2048)
    ap.add_argument("--max-streams", type=int, default=0)
    ap.add_argument("--connect-s", type=float, default=10.0)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bmo-capacity-"))
    up_port = free_port()
    upstream = subprocess.Popen([sys.executable, "-m", "bmo.testing.fake_upstream", "--port", str(up_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    serve = None
    try:
        upstream_url = f"http://127.0.0.1:{up_port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(upstream_url + "/v1/models", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        _script(upstream_url, args.streams, args.chunks, args.chunk_delay_s)
        config = base / "bmo.toml"
        config.write_text(
            f'[options.http_server]\nbacklog = {args.backlog}\nmax_concurrent_streams = {args.max_streams}\n'
            f'[options.openai_compat]\nenabled = true\nambiguity_action = "code"\n'
            f'[agent]\nworkspace = "{base}"\n'
            f'[providers.fake]\nkind = "openai"\nbase_url = "{upstream_url}/v1"\nmodels = ["fake-model"]\n')
        port = free_port()
        serve = spawn_serve(["--addr", f"127.0.0.1:{port}", "--config", str(config)], data_dir=base / "data",
                            env=clean_env(base, BMO_AUTH_TOKEN=TOKEN, BMO_LOAD_PLUGINS="openai_compat"))
        assert serve.url, serve.stderr()
        began = time.monotonic()
        outcomes = asyncio.run(_load(serve.url + "/v1/chat/completions", args.streams, args.ramp_s, args.connect_s))
        total = sum(outcomes.values())
        print(json.dumps({"streams": args.streams, "ramp_s": args.ramp_s, "backlog": args.backlog,
                          "max_concurrent_streams": args.max_streams, "elapsed_s": round(time.monotonic() - began, 1),
                          "completed_pct": round(100 * outcomes["completed"] / max(1, total), 1),
                          "outcomes": dict(outcomes)}))
    finally:
        if serve is not None:
            serve.terminate()
        upstream.terminate()
        upstream.wait(10)


if __name__ == "__main__":
    main()
