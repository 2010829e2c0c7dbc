"""DB growth per 1,000 compat requests, without retention and with a count-limited one at steady state.

    .venv/bin/python bench/retention_growth.py [--rounds 4] [--per-round 1000]

A real in-process server on a real socket, the fake upstream as the model, the real openai SDK as
the client. Sizes are the database file plus its WAL after each round of requests.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import openai

from bmo.testing.fake_upstream import FakeUpstream
from bmo.testing.fixtures import provider_toml
from bmo.testing.harness import start_server

RETENTION = {
    "off": "[store.retention]\ninterval_s = 0\n",
    "count-limited": ("[store.retention]\ninterval_s = 0.5\n"
                      "[store.retention.ledger]\nmax_rows = 1000\n[store.retention.runs]\nmax_rows = 1000\n"
                      "[store.retention.audit]\nmax_rows = 1000\n"),
}


def size(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())


async def measure(label: str, retention: str, rounds: int, per_round: int) -> list[float]:
    async with FakeUpstream() as up:
        with tempfile.TemporaryDirectory() as tmp:
            config = ("[options.openai_compat]\nenabled = true\n[agent]\ndefault_model = \"fake/fake-model\"\n"
                      + provider_toml(up) + "\n" + retention)
            srv = await start_server(Path(tmp) / "data", config_toml=config, token="t", load_plugins="openai_compat")
            client = openai.AsyncOpenAI(base_url=srv.api, api_key="t", max_retries=0)
            sizes = [size(srv.host.db_path)]
            try:
                for _ in range(rounds):
                    for start in range(0, per_round, 20):
                        await asyncio.gather(*(client.chat.completions.create(
                            model="fake/fake-model", messages=[{"role": "user", "content": f"hello {start + i}"}])
                            for i in range(20)))
                    await asyncio.sleep(1.5)  # a background pass, when configured
                    sizes.append(size(srv.host.db_path))
            finally:
                await client.close()
                await srv.stop()
    growth = [(b - a) / 1e6 for a, b in zip(sizes, sizes[1:])]
    print(f"{label:>14}: MB per {per_round} requests, round by round: {', '.join(f'{g:.3f}' for g in growth)}")
    return growth


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=1000)
    args = parser.parse_args()
    for label, retention in RETENTION.items():
        await measure(label, retention, args.rounds, args.per_round)


if __name__ == "__main__":
    asyncio.run(main())
