"""Schema-shaped fuzzing of the OpenAI-compatible routes: mutated bodies in, status counts out.

``python -m bench.fuzz_requests [--count N] [--seed S]`` starts the fake upstream and an in-process
BMO server, sends N mutated requests to the compat routes, and prints how many got each status.
A 5xx other than an upstream's 502/504, or a body that is not the OpenAI error envelope, is a finding.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import tempfile
from pathlib import Path

import aiohttp

from bmo.testing.fake_upstream import FakeUpstream
from bmo.testing.harness import start_server

TOKEN = "fuzz-token"
SEEDS = {
    "/v1/chat/completions": {"model": "local/fake-model", "messages": [{"role": "user", "content": "hi"}],
                             "stream": False, "temperature": 0.5, "max_tokens": 16, "tools": [],
                             "response_format": {"type": "text"}, "metadata": {"k": "v"}},
    "/v1/responses": {"model": "local/fake-model", "input": "hi", "instructions": "be brief", "stream": False,
                      "text": {"format": {"type": "text"}}, "tools": []},
    "/v1/completions": {"model": "local/fake-model", "prompt": "def f(", "suffix": "):", "max_tokens": 8},
    "/v1/sessions": {"model": "local/fake-model"},
}
WEIRD = [None, True, False, 0, -1, 2**63, 1e308, float("nan"), "", "x" * 5000, "\u0000", "\ud7ff\ue000",
         [], {}, [[[]]], {"": {}}, "local/../../etc", "<script>", 3.5, [None], {"role": "tool"}]


def mutate(value, rng: random.Random, depth: int = 0):
    """One random change somewhere in ``value`` (a deep copy)."""
    if depth > 6 or rng.random() < 0.25:
        choice = rng.random()
        if choice < 0.5:
            return rng.choice(WEIRD)
        if choice < 0.7:
            nest = rng.choice([[], {}])
            for _ in range(rng.randint(1, 80)):
                nest = [nest] if rng.random() < 0.5 else {"a": nest}
            return nest
        return value
    if isinstance(value, dict):
        out = dict(value)
        if out and rng.random() < 0.8:
            key = rng.choice(list(out))
            if rng.random() < 0.15:
                del out[key]
            else:
                out[key] = mutate(out[key], rng, depth + 1)
        else:
            out[rng.choice(["n", "stream_options", "tool_choice", "previous_response_id", "store", "x" * 300])] = \
                rng.choice(WEIRD)
        return out
    if isinstance(value, list):
        out = list(value) or [{"role": "user", "content": "hi"}]
        i = rng.randrange(len(out))
        out[i] = mutate(out[i], rng, depth + 1)
        return out
    return rng.choice(WEIRD)


async def main(count: int, seed: int) -> int:
    rng = random.Random(seed)
    up = await FakeUpstream().start()
    work = Path(tempfile.mkdtemp(prefix="bmo-fuzz-"))
    (work / "ws").mkdir()
    config = (f'[options.openai_compat]\nenabled = true\n\n[providers.local]\nkind = "openai"\n'
              f'base_url = "{up.url}/v1"\n\n[agent]\nworkspace = "{work / "ws"}"\n')
    server = await start_server(work / "data", config_toml=config, token=TOKEN)
    statuses: collections.Counter = collections.Counter()
    findings: list[str] = []
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as http:
        for i in range(count):
            path = rng.choice(list(SEEDS))
            body = mutate(SEEDS[path], rng)
            raw = json.dumps(body, allow_nan=True).encode() if rng.random() > 0.05 else b'{"model": "x", "messages": ['
            extra = {"X-BMO-Session-Id": f"fuzz-{rng.randrange(5)}"} if rng.random() < 0.2 else {}
            async with http.post(server.url + path, data=raw, headers=extra) as resp:
                text = await resp.text()
                statuses[resp.status] += 1
                if resp.status >= 400:
                    try:
                        envelope = json.loads(text)["error"]
                        ok = isinstance(envelope.get("message"), str) and "Traceback" not in text
                    except (ValueError, KeyError, TypeError):
                        ok = False
                    if not ok:
                        findings.append(f"{path} {resp.status}: not an envelope: {text[:200]}")
                if resp.status >= 500 and resp.status not in (502, 503, 504, 507):
                    findings.append(f"{path} {resp.status}: {text[:200]}  body={raw[:200]!r}")
    await server.stop()
    await up.stop()
    print(f"{count} requests (seed {seed}): " + ", ".join(f"{s}×{n}" for s, n in sorted(statuses.items())))
    print(f"findings: {len(findings)}")
    for f in findings[:20]:
        print("  " + f)
    return 1 if findings else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1400)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.count, args.seed)))
