"""One snapshot, four surfaces: the posture route, the agent tool, the slash command, the sidebar."""

from __future__ import annotations

import json

import openai
import pytest
from compat_support import MODEL, OTHER_MODEL

from bmo.agent.tools.base import ToolContext
from bmo_openai_compat.config import OpenAICompatOptions
from bmo_openai_compat.observe.posture import sidebar_label


@pytest.mark.parametrize("options, degraded, label", [
    (OpenAICompatOptions(), False, "disabled"),
    (OpenAICompatOptions(), True, "disabled"),
    (OpenAICompatOptions(enabled=True), False, "enabled (chat_only)"),
    (OpenAICompatOptions(enabled=True, tool_policy="auto_approve"), False, "enabled (auto_approve)"),
    (OpenAICompatOptions(enabled=True, tool_policy="auto_approve"), True, "degraded — persist failures"),
])
def test_sidebar_label_is_a_pure_function_of_config_and_degraded_flag(options, degraded, label):
    assert sidebar_label(options, degraded) == label


async def test_every_surface_reads_the_same_snapshot(compat):
    client = compat.aclient()
    await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                         extra_headers={"User-Agent": "posture-test/1.0"})
    await client.models.list()
    route = await client.get("/openai-compat/posture", cast_to=object)
    assert route["enabled"] is True and route["tool_policy"] == "chat_only"
    assert route["ambiguity_action"] == "ask" and route["model_override_policy"] == "reject"
    assert route["advertised_models"] == [MODEL, OTHER_MODEL]
    assert route["routes"]["chat_completions"] == 1 and route["routes"]["models_list"] == 1
    assert route["ledger"]["runs"] == 2 and route["degraded"] is False
    assert {"client_ua": "posture-test/1.0", "count": 1} in route["top_user_agents"]
    assert [o["outcome"] for o in route["last_outcomes"]] == ["final_answer"]  # chat outcomes only
    assert route["sidebar"] == "enabled (chat_only)"

    tool = compat.host.registry.tools["get_openai_compat_status"]
    ctx = ToolContext(host=compat.host, session_id="", run_id="", workspace=compat.workspace)
    assert json.loads(await tool.run({}, ctx)) == route
    assert (await compat.host.posture())["openai_compat"] == route
    assert dict(await compat.host.sidebar())["OpenAI compat"] == route["sidebar"]

    text = await compat.host.render_slash("/openai-compat", width=120)
    assert "OpenAI compat: enabled (chat_only)" in text
    assert "posture-test/1.0" in text and MODEL in text and "final_answer" in text
    assert "chat_completions" in text and "2 runs" in text
    await client.close()


async def test_agent_can_call_the_status_tool(compat):
    from bmo.testing.fake_upstream import reply, tool_call

    compat.model.answer(reply(tool_calls=[tool_call("get_openai_compat_status", {})]), reply("All good."))
    client = compat.aclient()
    await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "status?"}])
    result = [m for m in compat.up.chat_requests[-1].body["messages"] if m["role"] == "tool"][-1]["content"]
    assert json.loads(result)["sidebar"] == "enabled (chat_only)"
    await client.close()


async def test_disabled_routes_answer_404_and_posture_says_disabled(start_compat):
    compat = await start_compat(enabled=False)
    client = compat.aclient()
    with pytest.raises(openai.NotFoundError) as err:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert "enabled = true" in err.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        await client.models.list()
    for path in ("/openai-compat/posture", "/openai-compat/runs", "/openai-compat/runs/req_x/events"):
        with pytest.raises(openai.NotFoundError):
            await client.get(path, cast_to=object)
    snapshot = (await compat.host.posture())["openai_compat"]
    assert snapshot["enabled"] is False and snapshot["sidebar"] == "disabled"
    assert dict(await compat.host.sidebar())["OpenAI compat"] == "disabled"
    assert "OpenAI compat: disabled" in await compat.host.render_slash("/openai-compat")
    assert compat.up.chat_requests == []
    assert await compat.records("openai_compat.fired") == []
    await client.close()
