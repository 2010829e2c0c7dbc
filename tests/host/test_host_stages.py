"""The host in two stages: hooks that build the app get the plan, startup and handlers the started host."""

from __future__ import annotations

import json
import subprocess
import sys

import aiohttp
import pytest
from aiohttp import web

from bmo.hookspecs import hookimpl
from bmo.host import Host, HostPlan
from bmo.server.app import get_host
from bmo.testing.harness import start_server


class Witness:
    """Keeps the ``host`` each hook and the handler were given."""

    def __init__(self):
        self.seen: dict[str, object] = {}

    @hookimpl
    def bmo_routes(self, register, host):
        self.seen["bmo_routes"] = host

        async def handler(request):
            self.seen["handler"] = get_host(request)
            return web.json_response({})

        register("GET", "/v1/test/witness", handler)

    @hookimpl
    def bmo_tools(self, register, host):
        self.seen["bmo_tools"] = host

    @hookimpl
    def bmo_startup(self, host):
        self.seen["bmo_startup"] = host

    @hookimpl
    def bmo_shutdown(self, host):
        self.seen["bmo_shutdown"] = host


async def test_startup_shutdown_and_handlers_get_one_started_host_with_everything_open(tmp_path):
    witness = Witness()
    srv = await start_server(tmp_path / "data", token="t", load_plugins="", plugins=[witness])
    try:
        async with aiohttp.ClientSession() as client:
            async with client.get(srv.api + "/test/witness", headers=srv.headers()) as resp:
                assert resp.status == 200
    finally:
        await srv.stop()
    started = witness.seen["bmo_startup"]
    assert isinstance(started, Host) and started is srv.host
    assert witness.seen["handler"] is started and witness.seen["bmo_shutdown"] is started
    assert (started.db.path, started.records.path.parent) == (started.db_path, started.log_dir)
    assert started.tracer is not None and started.tracer_provider is not None


async def test_hooks_that_build_the_app_get_the_plan_which_has_no_store(tmp_path):
    witness = Witness()
    srv = await start_server(tmp_path / "data", token="t", load_plugins="", plugins=[witness])
    await srv.stop()
    plan = witness.seen["bmo_routes"]
    assert isinstance(plan, HostPlan) and witness.seen["bmo_tools"] is plan
    assert srv.host.plan is plan and srv.host.registry is plan.registry and srv.host.config is plan.config
    assert not hasattr(plan, "db") and not hasattr(plan, "records")


class FailingStartup:
    @hookimpl
    def bmo_startup(self, host):
        raise RuntimeError("cannot reach the thing")


async def test_a_failed_start_winds_down_the_plugins_whose_startup_never_ran_cleanly(tmp_path):
    with pytest.raises(RuntimeError, match="cannot reach the thing"):
        # Registered last, so it starts first: the agent plugin's startup never runs.
        await start_server(tmp_path / "data", token="t", load_plugins="", plugins=[FailingStartup()])
    records = [json.loads(line) for line in (tmp_path / "data" / "logs" / "bmo.jsonl").read_text().splitlines()]
    assert [r for r in records if r["msg"] == "bmo.shutdown_failed"] == []


def test_the_host_module_imports_nothing_from_the_server():
    probe = "import json, sys, bmo.host; print(json.dumps(sorted(sys.modules)))"
    modules = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                        check=True, timeout=60).stdout)
    assert [m for m in modules if m == "bmo.server" or m.startswith(("bmo.server.", "aiohttp"))] == []
