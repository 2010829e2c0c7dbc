"""Other plugins reach the agent core through ``bmo.agent.coordinator_of``, not through a slot on the host."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from bmo.agent import COORDINATOR_STATE_KEY, AgentNotStarted, coordinator_of, maybe_coordinator
from bmo.agent.coordinator import Coordinator


async def test_a_started_server_serves_its_coordinator_from_the_agent_plugin_state(agent):
    bmo = await agent()
    host = bmo.server.host
    coordinator = coordinator_of(host)
    assert isinstance(coordinator, Coordinator)
    assert maybe_coordinator(host) is coordinator
    assert host.state[COORDINATOR_STATE_KEY] is coordinator
    assert not hasattr(host, "coordinator")  # no Host slot kept for one plugin


def test_before_the_agent_started_the_accessor_says_so():
    not_started = SimpleNamespace(state={})  # what the accessor reads of a host: its per-plugin state
    assert maybe_coordinator(not_started) is None
    with pytest.raises(AgentNotStarted, match="agent core is not running") as raised:
        coordinator_of(not_started)
    assert raised.value.status == 503


async def test_a_stopped_server_still_names_its_coordinator_and_it_is_closed(agent):
    bmo = await agent()
    host = bmo.server.host
    await bmo.stop()
    assert coordinator_of(host).closed


def test_importing_the_accessor_loads_neither_the_coordinator_nor_aiohttp():
    code = ("import sys\nfrom bmo.agent import coordinator_of\n"
            "print(sorted(m for m in ('bmo.agent.coordinator', 'aiohttp') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]", result.stderr
