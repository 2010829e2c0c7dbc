"""A tool can end its run with an outcome of its own (``ToolEndedRun``); the compat surface maps one its enum names."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest
from openai import AsyncOpenAI

from bmo.agent.tools.base import Tool, ToolEndedRun
from bmo.hookspecs import hookimpl
from bmo.testing.fake_upstream import reply, tool_call
from bmo.testing.fixtures import provider_toml
from bmo.testing.harness import start_server


class GivesUp(Tool):
    name = "gives_up"
    description = "always ends the run"
    parameters = {"type": "object", "properties": {}}

    async def run(self, args, ctx):
        raise ToolEndedRun("the cluster stayed unreachable: connection refused", outcome="k8s_retry_failed")


class GivesUpPlugin:
    @hookimpl
    def bmo_tools(self, register, host):
        register(GivesUp())


async def test_a_tool_that_ends_its_run_ends_the_request_with_its_outcome_and_message(tmp_path, fake_upstream):
    text = (f'[agent]\nworkspace = "{tmp_path}"\n[options.openai_compat]\nenabled = true\n'
            f'{provider_toml(fake_upstream)}')
    server = await start_server(tmp_path / "data", config_toml=text, load_plugins="openai_compat",
                                plugins=[GivesUpPlugin()])
    try:
        fake_upstream.script(reply(tool_calls=[tool_call("bmo_route", {"decision": "clear", "question": ""})]),
                             reply(tool_calls=[tool_call("gives_up", {})]), reply("never asked"))
        sdk = AsyncOpenAI(base_url=server.api, api_key=server.token, max_retries=0)
        with pytest.raises(openai.APIStatusError) as err:
            await sdk.chat.completions.create(model="fake/fake-model", messages=[{"role": "user", "content": "go"}])
        await sdk.close()
        assert err.value.status_code == 502 and err.value.body["code"] == "k8s_retry_failed"
        assert "connection refused" in err.value.body["message"]
        assert fake_upstream.pending == 1  # the run stopped after the step; the model was not asked again
        await asyncio.to_thread(server.host.records.flush)
        finished = [json.loads(line) for line in server.host.records.path.read_text().splitlines()
                    if json.loads(line).get("msg") == "agent.run.finished"]
        assert finished[-1]["outcome"] == "k8s_retry_failed" and "connection refused" in finished[-1]["error"]
    finally:
        await server.stop()
