"""What a run emits, in order. Every subscriber of a run sees the whole sequence from the start."""

from __future__ import annotations

import msgspec

from bmo.agent.messages import ToolCall, Usage


class Event(msgspec.Struct, kw_only=True, tag_field="type"):
    pass


class StepStarted(Event, tag="step.started"):
    step: int
    model: str


class TextDelta(Event, tag="text.delta"):
    text: str


class ReasoningDelta(Event, tag="reasoning.delta"):
    """Progress worth showing a person (e.g. BMO's own tool activity), not answer text."""

    text: str


class ToolStarted(Event, tag="tool.started"):
    call_id: str
    name: str
    arguments: str


class ToolFinished(Event, tag="tool.finished"):
    call_id: str
    name: str
    ok: bool
    summary: str  # first part of the output or the error, for display


class PermissionRequested(Event, tag="permission.requested"):
    permission_id: str
    tool: str
    tool_class: str
    arguments: str
    timeout_s: float


class PermissionDecided(Event, tag="permission.decided"):
    permission_id: str
    tool: str
    decision: str  # allow_once | always | deny
    decided_by: str  # policy | always | user:<requester> | timeout


class AnswerChecked(Event, tag="answer.checked"):
    """The final answer checked against the run's answer format (attempt 2 is the repair)."""

    attempt: int
    ok: bool
    format: dict  # AnswerFormat.describe()
    error: str | None = None


class RunFinished(Event, tag="run.finished"):
    """Always the last event of a run."""

    outcome: str  # see bmo.agent.run_outcomes
    finish_reason: str  # stop | length | tool_calls
    text: str = ""
    tool_calls: list[ToolCall] = []  # client tool calls (auto_approve round-trip) only
    usage: Usage = msgspec.field(default_factory=Usage)
    error: str | None = None
    error_status: int | None = None  # HTTP status a route should answer with, when outcome is error
    error_code: str | None = None  # the error envelope's code, when the failure has its own (upstream_timeout ...)
    refusal: str | None = None  # the model declined to answer; ``text`` is then empty


AnyEvent = (StepStarted | TextDelta | ReasoningDelta | ToolStarted | ToolFinished | PermissionRequested
            | PermissionDecided | AnswerChecked | RunFinished)
