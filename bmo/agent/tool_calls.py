"""One step's tool calls: permission check, execution, audit, bounded output.

BMO's own tools run here; tools the client offered (OpenAI ``tools``) are not run, they end
the turn in the loop. Consecutive read-class calls run together, the others one at a time.
A read repeated with the same arguments and the same result gets that result with a note to
answer: small models otherwise call it again until loop detection stops the run.
"""

from __future__ import annotations

import asyncio
import json
import time
from fnmatch import fnmatchcase
import traceback
from typing import TYPE_CHECKING, Any

from bmo.agent.events import ReasoningDelta, ToolFinished, ToolStarted
from bmo.agent.messages import ChatMessage, ToolCall
from bmo.agent.permissions import DENY, digest
from bmo.agent.telemetry import mark_failed, record_tool_content, tool_span
from bmo.agent.tools.base import READ, ToolContext, ToolEndedRun, ToolFailed

if TYPE_CHECKING:
    from bmo.agent.run import Run
    from bmo.agent.services import RunServices
    from bmo.agent.session import Session

NO_SUCH_TOOL = "Error: there is no tool named"  # how a call of a tool that was not offered is answered
REPEATED_READ_NOTE = ("\n\n[This is the same result your earlier identical {name} call got: nothing has changed. "
                      "Do not call {name} again with these arguments; answer the user now, using this result.]")


def call_signature(call: ToolCall) -> tuple[str, str]:
    """Name and canonical arguments: two calls with the same signature do the same thing."""
    try:
        args = json.dumps(json.loads(call.function.arguments or "{}"), sort_keys=True)
    except ValueError:
        args = call.function.arguments
    return call.function.name, args


def short_arguments(arguments: str, limit: int = 60) -> str:
    """``notes.txt`` for ``{"path": "notes.txt"}``: what a person wants to see in a progress line."""
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed:
        text = ", ".join(str(v) if len(parsed) == 1 else f"{k}={v}" for k, v in parsed.items())
    else:
        text = arguments or ""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bound_output(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", errors="ignore") + f"\n[output truncated: {len(data) - limit} more bytes]"


def tool_name(entry: dict) -> str:
    """The function name of an OpenAI ``tools`` entry; "" when it has none."""
    fn = entry.get("function") if isinstance(entry, dict) else None
    return fn.get("name", "") if isinstance(fn, dict) else ""


class ToolCallRunner:
    """Runs the BMO tool calls of one run's steps and answers each with a tool message."""

    def __init__(self, services: RunServices, run: Run, session: Session, *, client_tools: list[dict] | None,
                 depth: int = 0):
        self.services = services
        self.run = run
        self.session = session
        self.depth = depth
        self.client_tools = [t for t in (client_tools or []) if tool_name(t)]
        self.client_names = {tool_name(t) for t in self.client_tools}
        # Every BMO tool can be looked up (to explain a refusal); only the policy's classes are offered.
        allowed = self._provider_allows(services, run)
        self.tools = {n: t for n, t in services.tools.items() if n not in self.client_names and allowed(n)}
        self.offered = [t.schema() for n, t in services.offered.items() if n in self.tools]
        self.ended: ToolEndedRun | None = None  # the first call of the run that ended it (the loop stops after the step)
        self.read_results: dict[tuple[str, str], str] = {}  # the last result of each read-class call signature

    @staticmethod
    def _provider_allows(services: RunServices, run: Run):
        """Whether the run's provider offers a BMO tool (``[providers.NAME] tools``: names or globs; None: all)."""
        try:
            provider, _ = services.resolve_model(run.model)
        except Exception:  # the model step reports an unknown model; tools are not the place
            return lambda name: True
        patterns = getattr(provider, "offered_tools", None)
        if patterns is None:
            return lambda name: True
        return lambda name: any(fnmatchcase(name, p) for p in patterns)

    def model_tools(self) -> list[dict]:
        """The ``tools`` the model is offered: BMO's under the run's policy, then the client's."""
        return self.offered + self.client_tools

    def is_client_call(self, call: ToolCall) -> bool:
        """True for a call of a tool the client offered: the client runs it, not BMO."""
        return call.function.name in self.client_names

    async def execute(self, calls: list[ToolCall]) -> list[ChatMessage]:
        """Run the calls; consecutive read-class calls run together, the others one at a time, in order."""
        batches: list[list[ToolCall]] = []
        for call in calls:
            if self._parallel(call) and batches and self._parallel(batches[-1][0]):
                batches[-1].append(call)
            else:
                batches.append([call])
        results: dict[str, str] = {}
        for batch in batches:
            outputs = await asyncio.gather(*(self._run_tool(c) for c in batch))
            results.update(zip((c.id for c in batch), outputs, strict=True))
            if not self._parallel(batch[0]):  # a write, command or unknown tool may change what reads see
                self.read_results.clear()
        return [ChatMessage(role="tool", tool_call_id=c.id, content=self._noted(c, results[c.id])) for c in calls]

    def _noted(self, call: ToolCall, content: str) -> str:
        """A read-class call's result; with a note to answer when it repeats an earlier call and its result."""
        if not self._parallel(call):
            return content
        signature = call_signature(call)
        if self.read_results.get(signature) != content:
            self.read_results[signature] = content
            return content
        self.services.record("agent.tool.repeated", "warn", run_id=self.run.id, session_id=self.session.id,
                             tool=call.function.name, call_id=call.id)
        return content + REPEATED_READ_NOTE.format(name=call.function.name)

    def _parallel(self, call: ToolCall) -> bool:
        tool = self.tools.get(call.function.name)
        return tool is not None and tool.tool_class == READ

    async def _run_tool(self, call: ToolCall) -> str:
        services, run = self.services, self.run
        name, arguments = call.function.name, call.function.arguments or "{}"
        services.emit(ToolStarted(call_id=call.id, name=name, arguments=arguments))
        services.emit(ReasoningDelta(text=f"running {name}({short_arguments(arguments)})…\n"))
        tool = self.tools.get(name)
        ok = False
        executed = False
        failure = ""  # the span's error.type when the call failed
        started = time.monotonic()
        with tool_span(services.tracer, name=name, call_id=call.id, tool_class=getattr(tool, "tool_class", "unknown"),
                       run_id=run.id, session_id=self.session.id) as span:
            if tool is None:
                offered = sorted(t["function"]["name"] for t in self.model_tools())
                content = f"{NO_SUCH_TOOL} {name!r}. Available tools: {', '.join(offered) or 'none'}."
                failure = "tool_not_found"
            else:
                try:
                    args = json.loads(arguments)
                    if not isinstance(args, dict):
                        raise ValueError("arguments must be a JSON object")
                except ValueError as exc:
                    args = None
                    content = f"Error: the arguments for {name} are not a valid JSON object ({exc}); call it again with valid JSON."
                    failure = "invalid_arguments"
                if args is not None:
                    content, ok, executed, failure = await self._permitted_run(tool, arguments, args)
            span.set_attribute("bmo.tool.ok", ok)
            content = bound_output(content, services.options.max_tool_output_bytes)
            if failure:
                mark_failed(span, failure, content)
            record_tool_content(span, services.tracer, arguments, content)
        if executed:
            await services.store.audit("tool.executed", actor=run.requester, session_id=self.session.id, run_id=run.id,
                                       tool=name, call_id=call.id, ok=ok, arguments_digest=digest(arguments))
        services.record("agent.tool.finished", "info" if ok else "warn", run_id=run.id, session_id=self.session.id,
                        tool=name, call_id=call.id, ok=ok, executed=executed,
                        elapsed_ms=round((time.monotonic() - started) * 1000, 1))
        services.emit(ToolFinished(call_id=call.id, name=name, ok=ok, summary=content[:300]))
        return content

    async def _permitted_run(self, tool: Any, arguments: str, args: dict) -> tuple[str, bool, bool, str]:
        """(content, ok, executed, error type or "") after the permission check."""
        services, run = self.services, self.run
        policy = run.policy
        if policy.allowed_classes is not None and tool.tool_class not in policy.allowed_classes:
            allowed = ", ".join(sorted(policy.allowed_classes)) or "none"
            return (f"Permission denied: {tool.name} is a {tool.tool_class} tool and this run only allows {allowed} tools. "
                    "Answer with what you can do without it.", False, False, "refused")
        timeout = policy.permission_timeout_s if policy.permission_timeout_s is not None else \
            services.options.permission_timeout_s
        verdict = await services.permissions.check(
            tool=tool, arguments=arguments, args=args, session_id=self.session.id, run_id=run.id,
            requester=run.requester, permission_mode=policy.permission_mode, timeout_s=timeout, emit=services.emit,
        )
        if not verdict.allowed:
            why = "nobody answered the permission request in time" if verdict.decided_by == "timeout" else \
                  f"it was denied ({verdict.decided_by})"
            return (f"Permission denied: {tool.name} was not run because {why}. Do not retry it; tell the user "
                    "what you wanted to do and why.", False, False,
                    "permission_timeout" if verdict.decided_by == "timeout" else "denied")
        assert verdict.decision != DENY
        ctx = ToolContext(host=services.tool_host, session_id=self.session.id, run_id=run.id,
                          workspace=services.workspace, requester=run.requester, depth=self.depth, spawn=services.spawn)
        try:
            return await tool.run(args, ctx), True, True, ""
        except ToolEndedRun as exc:
            self.ended = self.ended or exc
            return f"Error: {exc}", False, True, getattr(exc, "error_type", "tool_error")
        except ToolFailed as exc:
            return f"Error: {exc}", False, True, getattr(exc, "error_type", "tool_error")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a tool's bug goes back to the model; the run goes on
            services.record("agent.tool.crashed", "error", tool=tool.name, run_id=run.id,
                            error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=6))
            return f"Error: {tool.name} failed: {type(exc).__name__}: {exc}", False, True, "crashed"
