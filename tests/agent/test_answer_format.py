"""The answer format in the agent core: the check itself, and how the loop honours it on steps without tools."""

from __future__ import annotations

import pytest

from bmo.agent import run_outcomes
from bmo.agent.answer_format import FormatError, json_object, json_schema
from bmo.agent.events import AnswerChecked, TextDelta
from bmo.agent.loop import AgentLoop
from bmo.agent.messages import ChatMessage
from bmo.agent.run import Run, RunPolicy
from bmo.agent.services import RunServices
from bmo.testing.fake_upstream import reply

POINT = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}


def test_a_schema_check_names_where_the_answer_is_wrong():
    fmt = json_schema("point", POINT)
    assert fmt.check('{"x": 1}') is None
    assert fmt.check('{"x": "one"}') == "at x: 'one' is not of type 'integer'"
    assert "not valid JSON" in fmt.check("x is one")
    assert json_object().check("[1]") == "the answer is JSON but not an object (got list)"


def test_an_unusable_schema_or_name_is_refused_up_front():
    with pytest.raises(FormatError, match="not a valid JSON Schema"):
        json_schema("point", {"type": "nope"})
    with pytest.raises(FormatError, match="needs a 'name'"):
        json_schema("", POINT)


def test_a_code_fence_around_the_answer_is_tolerated():
    assert json_object().extract('```json\n{"a": 1}\n```') == '{"a": 1}'
    assert json_object().extract('  {"a": 1} ') == '{"a": 1}'


async def test_a_step_offered_no_tools_sends_the_format_upstream_and_repairs_once(agent, workspace, fake_upstream):
    bmo = await agent()
    co, host = bmo.co, bmo.server.host
    policy = RunPolicy(allowed_classes=frozenset())  # no BMO tool at all: the format can go upstream
    session = await co.create_session(model="fake/fake-model", ephemeral=True)
    run = Run("run_formatted", session.id, session.model, policy=policy)
    await session.append([ChatMessage(role="user", content="give me a point")], run.id)
    events: list = []
    services = RunServices(
        resolve_model=co.resolve_model, store=co.store, permissions=co.permissions, tools=co.tools,
        offered=co.tools_for(policy), workspace=workspace, options=host.config.section("agent"),
        loop_detection=host.config.section("agent.loop_detection"),
        length_recovery=host.config.section("agent.length_recovery"), emit=events.append,
        record=lambda msg, level="info", **fields: None, tracer=None, spawn=None, tool_host=None,
    )
    fake_upstream.script(reply('{"x": "one"}', chunks=3), reply('{"x": 1}'))
    row = {"id": run.id, "session_id": session.id, "model": run.model, "origin": policy.origin, "requester": "",
           "permission_mode": policy.permission_mode, "started_at": run.started_at, "parent_run_id": None}
    result = await AgentLoop(services, run, session, client_tools=None, sampling=None, unwritten_run_row=row,
                             answer_format=json_schema("point", POINT)).drive()

    assert result.outcome == run_outcomes.FINAL_ANSWER and result.text == '{"x": 1}'
    first, repair = (r.body for r in fake_upstream.chat_requests)
    assert "tools" not in first and first["response_format"]["json_schema"]["schema"] == POINT
    assert repair["response_format"] == first["response_format"]
    assert "at x:" in repair["messages"][-1]["content"]
    # Only the checked answer was streamed, and only it is in the history.
    assert [e.text for e in events if isinstance(e, TextDelta)] == ['{"x": 1}']
    assert [(e.attempt, e.ok) for e in events if isinstance(e, AnswerChecked)] == [(1, False), (2, True)]
    assert [m.content for m in await session.messages() if m.role == "assistant"] == ['{"x": 1}']
