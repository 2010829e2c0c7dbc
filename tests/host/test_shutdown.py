"""Stopping the server: plugins wind down first, in-flight handlers finish with the store still open."""

from __future__ import annotations

import asyncio

import aiohttp
import apsw
from aiohttp import web

from bmo.hookspecs import hookimpl
from bmo.server.app import get_host
from bmo.testing.harness import start_server


class LongPoll:
    """A route that waits until shutdown (like a streaming run), then writes its final row."""

    def __init__(self):
        self.entered = asyncio.Event()
        self.stop = asyncio.Event()
        self.order: list[str] = []

    @hookimpl
    def bmo_migrations(self, register):
        register("longpoll", 1, "CREATE TABLE longpoll_done (outcome TEXT)")

    @hookimpl
    def bmo_routes(self, register):
        async def wait(request):
            self.entered.set()
            await self.stop.wait()
            await get_host(request).db.write("INSERT INTO longpoll_done VALUES ('cancelled by shutdown')")
            self.order.append("handler finished")
            return web.json_response({"outcome": "cancelled"})

        register("GET", "/v1/test/wait", wait)

    @hookimpl
    def bmo_shutdown(self, host):
        self.order.append("bmo_shutdown")
        self.stop.set()


class BrokenShutdown:
    @hookimpl
    def bmo_shutdown(self):
        raise RuntimeError("shutdown bug")


async def test_shutdown_hooks_run_before_in_flight_requests_are_awaited(tmp_path):
    plugin = LongPoll()
    srv = await start_server(tmp_path / "data", token="t", load_plugins="", plugins=[plugin, BrokenShutdown()])
    db_path = srv.host.db_path
    async with aiohttp.ClientSession() as client:
        request = asyncio.ensure_future(client.get(srv.api + "/test/wait", headers=srv.headers()))
        await asyncio.wait_for(plugin.entered.wait(), 30)
        # The harness gives in-flight requests 5 s; a shutdown that waited for them first would
        # cancel the handler and lose its row instead of letting it finish.
        await asyncio.wait_for(srv.stop(), 30)
        resp = await asyncio.wait_for(request, 30)
        assert (resp.status, await resp.json()) == (200, {"outcome": "cancelled"})
        resp.release()
    assert plugin.order == ["bmo_shutdown", "handler finished"]
    conn = apsw.Connection(str(db_path))
    try:
        assert conn.execute("SELECT outcome FROM longpoll_done").fetchall() == [("cancelled by shutdown",)]
    finally:
        conn.close()
    log = (tmp_path / "data" / "logs" / "bmo.jsonl").read_text()
    assert '"msg":"bmo.shutdown_failed"' in log and "shutdown bug" in log  # and the others still ran


class FailingStartup:
    @hookimpl
    def bmo_startup(self, host):
        raise RuntimeError("cannot reach the thing")


async def test_a_failing_startup_hook_stops_the_start_and_closes_what_it_opened(tmp_path):
    import pytest

    with pytest.raises(RuntimeError, match="cannot reach the thing"):
        await start_server(tmp_path / "data", token="t", load_plugins="", plugins=[FailingStartup()])
    # The database was closed (its WAL checkpointed away) and is usable by the next start.
    srv = await start_server(tmp_path / "data", token="t", load_plugins="")
    try:
        assert await srv.host.db.fetchone("SELECT count(*) AS n FROM bmo_migrations") is not None
    finally:
        await srv.stop()


def test_bmo_serve_reports_a_failing_startup_without_a_traceback(run_bmo, tmp_path):
    site = tmp_path / "site"
    info = site / "bmo_failstart-0.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bmo-failstart\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text("[bmo]\nfailstart = bmo_failstart\n")
    (site / "bmo_failstart.py").write_text(
        "from bmo.hookspecs import hookimpl\n\n@hookimpl\ndef bmo_startup(host):\n    raise RuntimeError('cannot reach the thing')\n")
    result = run_bmo("serve", "--allow-no-auth", "--addr", "127.0.0.1:0",
                     env={"PYTHONPATH": str(site), "BMO_LOAD_PLUGINS": "failstart", "BMO_DATA_DIR": str(tmp_path / "d")})
    assert result.returncode == 1
    assert "startup failed: RuntimeError: cannot reach the thing" in result.stderr
    assert "Traceback" not in result.stderr
