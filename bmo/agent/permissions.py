"""Permission decisions for tools that write, execute or reach the network.

A decision comes, in this order, from a config rule, an earlier "always" for the same tool
in the session, the run's policy (auto_approve), or a challenge a person answers through
the native API; an unanswered challenge is denied after the timeout. Every decision is
stored and audited with who made it.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bmo.agent.config import PermissionRule
from bmo.agent.events import PermissionDecided, PermissionRequested
from bmo.agent.tools.base import READ

ALLOW_ONCE, ALWAYS, DENY = "allow_once", "always", "deny"
DECISIONS = (ALLOW_ONCE, ALWAYS, DENY)


@dataclass
class Verdict:
    allowed: bool
    decision: str  # allow_once | always | deny ("" for read tools, which need none)
    decided_by: str  # policy | rule | always | user:<requester> | timeout | class


@dataclass
class PendingPermission:
    id: str
    session_id: str
    run_id: str
    tool: str
    tool_class: str
    target: str
    arguments: str
    requested_at: float
    timeout_s: float
    future: asyncio.Future = field(repr=False)

    def describe(self) -> dict:
        return {"id": self.id, "session_id": self.session_id, "run_id": self.run_id, "tool": self.tool,
                "tool_class": self.tool_class, "target": self.target, "arguments": self.arguments,
                "requested_at": self.requested_at, "timeout_s": self.timeout_s}


def digest(arguments: str) -> str:
    """A short fingerprint of a tool call's arguments, for the audit (never the arguments themselves)."""
    return "sha256:" + hashlib.sha256(arguments.encode()).hexdigest()[:16]


def rule_for(rules: list[PermissionRule], tool: str, target: str) -> PermissionRule | None:
    """The first config rule matching the tool name and target (both globs)."""
    for rule in rules:
        if fnmatch.fnmatchcase(tool, rule.tool) and fnmatch.fnmatchcase(target, rule.target):
            return rule
    return None


class PermissionBroker:
    """Decides, waits for challenges, and records every decision."""

    def __init__(self, store: Any, rules: list[PermissionRule], emit_record: Callable[..., Any]):
        self.store = store
        self.rules = list(rules)
        self.emit_record = emit_record
        self.pending: dict[str, PendingPermission] = {}

    async def check(
        self, *, tool: Any, arguments: str, args: dict, session_id: str, run_id: str, requester: str,
        permission_mode: str, timeout_s: float, emit: Callable[[Any], None],
    ) -> Verdict:
        if tool.tool_class == READ:
            return Verdict(True, "", "class")
        target = tool.permission_target(args)
        pid = "perm_" + secrets.token_hex(8)
        requested_at = time.time()
        rule = rule_for(self.rules, tool.name, target)
        if rule is not None:
            verdict = Verdict(rule.decision == "allow", ALLOW_ONCE if rule.decision == "allow" else DENY, "rule")
        elif await self.store.has_always(session_id, tool.name):
            verdict = Verdict(True, ALLOW_ONCE, "always")
        elif permission_mode == "auto_approve":
            verdict = Verdict(True, ALLOW_ONCE, "policy")
        else:
            verdict = await self._challenge(pid, tool, target, arguments, session_id, run_id, requested_at, timeout_s, emit)
        who = verdict.decided_by.partition(":")[2] if verdict.decided_by.startswith("user:") else requester
        emit(PermissionDecided(permission_id=pid, tool=tool.name, decision=verdict.decision, decided_by=verdict.decided_by))
        row = {
            "id": pid, "session_id": session_id, "run_id": run_id, "tool": tool.name, "tool_class": tool.tool_class,
            "target": target[:500], "arguments_digest": digest(arguments), "decision": verdict.decision,
            "decided_by": verdict.decided_by, "requester": who, "requested_at": requested_at, "decided_at": time.time(),
        }
        await self.store.insert_decision(row)
        await self.store.audit("permission.decided", actor=who, session_id=session_id, run_id=run_id,
                               permission_id=pid, tool=tool.name, decision=verdict.decision,
                               decided_by=verdict.decided_by, arguments_digest=row["arguments_digest"])
        self.emit_record("agent.permission.decided", session_id=session_id, run_id=run_id, permission_id=pid,
                         tool=tool.name, decision=verdict.decision, decided_by=verdict.decided_by, requester=who)
        return verdict

    async def _challenge(self, pid, tool, target, arguments, session_id, run_id, requested_at, timeout_s, emit) -> Verdict:
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.pending[pid] = PendingPermission(pid, session_id, run_id, tool.name, tool.tool_class, target, arguments,
                                              requested_at, timeout_s, future)
        emit(PermissionRequested(permission_id=pid, tool=tool.name, tool_class=tool.tool_class,
                                 arguments=arguments, timeout_s=timeout_s))
        try:
            decision, requester = await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except asyncio.TimeoutError:
            return Verdict(False, DENY, "timeout")
        finally:
            self.pending.pop(pid, None)
        return Verdict(decision != DENY, decision, f"user:{requester}")

    def resolve(self, permission_id: str, decision: str, requester: str = "") -> bool:
        """Answer a pending challenge; False when it is unknown or already decided."""
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
        pending = self.pending.get(permission_id)
        if pending is None or pending.future.done():
            return False
        pending.future.set_result((decision, requester))
        return True

    def pending_for(self, session_id: str | None = None) -> list[PendingPermission]:
        return [p for p in self.pending.values() if session_id is None or p.session_id == session_id]
