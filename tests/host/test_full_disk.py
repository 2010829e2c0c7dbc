"""Issue 11.6 acceptance: a data dir on a tmpfs that fills while BMO serves, and one that is read-only.

Real sockets, the real openai SDK, a real SQLite file on a real 3 MiB tmpfs. While the disk is
full: stateless requests are answered 200; anything that must be written to a durable session
(compat ``X-BMO-Session-Id``, native create and message) is a 507 ``disk_full`` envelope; the
posture shows it; the records writer counts what it drops. After space is freed, all of it
works again and the log says how many records it missed.
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import openai
import pytest
from disk_mounts import fill, free, remount_read_only, tmpfs

from bmo.testing.fixtures import provider_toml
from bmo.testing.harness import free_port, start_server

MODEL = "fake/fake-model"
BIG = "x" * 1_200_000  # more than the WAL has room for, on a disk with none left


def config(up, workspace) -> str:
    return (f'[agent]\ndefault_model = "{MODEL}"\nworkspace = "{workspace}"\n\n'
            '[options.openai_compat]\nenabled = true\nambiguity_action = "code"\n\n'
            + provider_toml(up, extra="max_retries = 0\n"))


@pytest.fixture
def disk(tmp_path):
    with tmpfs(tmp_path / "disk", "3m") as mounted:
        yield mounted


async def posture(http, server) -> dict:
    async with http.get(server.api + "/bmo/posture", headers=server.headers()) as resp:
        assert resp.status == 200
        return await resp.json()


async def eventually(check, timeout: float = 30.0):
    """Poll ``check()`` (async, returns a value or None) until it is truthy; generous bound, noisy machine."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.1)


def chat(client, content: str, session: str | None = None, stream: bool = False):
    headers = {"X-BMO-Session-Id": session} if session else {}
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}],
                                          stream=stream, extra_headers=headers)


async def test_a_full_data_dir_answers_507_for_durable_writes_serves_the_rest_and_recovers(disk, tmp_path, fake_upstream):
    data_dir = disk / "data"
    server = await start_server(data_dir, config_toml=config(fake_upstream, tmp_path))
    client = openai.AsyncOpenAI(base_url=server.api, api_key=server.token, max_retries=0)
    http = aiohttp.ClientSession()
    try:
        answer = await chat(client, "hello", session="s-before")
        assert answer.choices[0].message.content
        fill(disk)

        # Stateless: served, whatever the ledger and the records writer can or cannot save.
        served = await chat(client, "stateless while full")
        assert served.choices[0].message.content

        # Durable sessions: a clear 507 in the envelope, new or existing, streamed or not.
        for session, stream in (("s-new", False), ("s-before", False), ("s-new-stream", True)):
            with pytest.raises(openai.APIStatusError) as caught:
                await chat(client, BIG, session=session, stream=stream)
            assert caught.value.status_code == 507, (session, caught.value)
            error = caught.value.body if "code" in (caught.value.body or {}) else caught.value.body["error"]
            assert error["code"] == "disk_full" and "full" in error["message"]
            assert caught.value.response.headers["X-Request-Id"]

        # The native API answers the same way.
        async with http.post(server.api + "/sessions", json={"model": MODEL}, headers=server.headers()) as resp:
            assert resp.status == 507
            assert (await resp.json())["error"]["code"] == "disk_full"
        async with http.post(server.api + "/sessions/s-before/messages", json={"content": BIG, "stream": False},
                             headers=server.headers()) as resp:
            assert resp.status == 507
            assert (await resp.json())["error"]["code"] == "disk_full"

        async def degraded():
            snap = await posture(http, server)
            return snap if snap["records"]["dropped"] > 0 and snap["openai_compat"]["degraded"] else None

        snap = await eventually(degraded)
        assert snap["store_writer"]["degraded"] is True and snap["store_writer"]["disk_full"] is True
        assert snap["store_writer"]["writer"] == "running" and snap["records"]["writer"] == "running"
        assert "No space left" in snap["records"]["last_error"]
        assert snap["store_writer"]["queue_depth"] >= 0 and snap["records"]["queue_depth"] >= 0
        dropped = snap["records"]["dropped"]

        free(disk)
        again = await chat(client, "after", session="s-new")
        assert again.choices[0].message.content
        async with http.post(server.api + "/sessions", json={"model": MODEL}, headers=server.headers()) as resp:
            assert resp.status == 201
        async with http.post(server.api + "/sessions/s-before/messages", json={"content": "again", "stream": False},
                             headers=server.headers()) as resp:
            assert resp.status == 200
        await chat(client, "last one")

        async def recovered():
            snap = await posture(http, server)
            healthy = (not snap["openai_compat"]["degraded"] and not snap["store_writer"]["degraded"]
                       and not snap["records"]["degraded"])
            return snap if healthy else None

        snap = await eventually(recovered)
        assert snap["records"]["dropped"] >= dropped and snap["records"]["written"] > 0
        await asyncio.to_thread(server.host.records.flush)
        records = [json.loads(line) for line in (data_dir / "logs" / "bmo.jsonl").read_text().splitlines()]
        marker = next(i for i, r in enumerate(records) if r["msg"] == "bmo.records.dropped")
        assert records[marker]["dropped"] > 0
        # Written again after the gap: the terminal records of the requests made once space was back.
        after = [r for r in records[marker:] if r["msg"] == "openai_compat.action"]
        assert any(r.get("session_id") == "s-new" and r["status"] == 200 for r in after)
        assert after[-1]["status"] == 200
        statuses = [r["status"] for r in records if r["msg"] == "openai_compat.action"]
        assert 500 not in statuses  # the 507s' own records may be among those the full disk dropped
    finally:
        await http.close()
        await client.close()
        await server.stop()


def test_a_read_only_data_dir_fails_start_up_naming_the_data_dir(tmp_path, run_bmo):
    with tmpfs(tmp_path / "disk", "3m") as mounted:
        (mounted / "data").mkdir()
        remount_read_only(mounted)
        result = run_bmo("serve", "--allow-no-auth", "--addr", f"127.0.0.1:{free_port()}",
                         "--data-dir", str(mounted / "data"), env={"BMO_LOAD_PLUGINS": ""})
    assert result.returncode != 0
    assert f"data dir {mounted / 'data'}" in result.stderr and "Read-only file system" in result.stderr
    assert "cannot bind" not in result.stderr and "Traceback" not in result.stderr
