"""Permission decisions for tools that write, execute, reach the network or read a cluster (cluster_read).

A decision comes, in this order, from the config rules, an earlier "always" of the session
for the same tool and a matching target pattern, the run's policy (auto_approve), or a
challenge a person answers through the native API; an unanswered challenge is denied after
the timeout. Rules and patterns match what the call really touches (``Tool.permission_scope``):
the resolved workspace path, every part of a command line, the URL. Every decision is stored
and audited with who made it.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bmo.agent.config import PermissionRule
from bmo.agent.events import PermissionDecided, PermissionRequested
from bmo.agent.tools.base import READ
from bmo.agent.tools.targets import COMMAND, PATH, TEXT, URL, Target

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


def rules_decide(rules: list[PermissionRule], tool: str, target: Target) -> str | None:
    """``deny`` when the first rule matching the whole target or any part denies; ``allow`` when
    every part's first matching rule allows (never for an unclassified command); else None."""
    firsts = [rule_for(rules, tool, part) for part in target.parts]
    whole = rule_for(rules, tool, target.text)
    if any(r is not None and r.decision == "deny" for r in [whole, *firsts]):
        return DENY
    if target.classified and all(r is not None and r.decision == "allow" for r in firsts):
        return "allow"
    return None


def always_patterns(target: Target) -> list[str]:
    """What an "always" answer to a call on ``target`` approves from then on, one glob per part.

    A path: the other files of its directory (``src/*``; ``*`` for the workspace root), not of
    subdirectories. A command: each simple command's program with any arguments (``ls`` and
    ``ls *``), and each redirection exactly; an unclassified line only itself. A URL: its
    origin (``https://example.com/*``). Anything else: exactly itself.
    """
    if target.kind == PATH:
        head, _, _ = target.text.rpartition("/")
        return [f"{_escape(head)}/*" if head else "*"]
    if target.kind == URL:
        origin = _origin(target.text)
        return [_escape(origin), _escape(origin) + "/*"] if origin else [_escape(target.text)]
    if target.kind == COMMAND and target.classified:
        patterns = []
        for part in target.parts:
            program = part.split(" ", 1)[0]
            if part.startswith(("<", ">", "&>")) or "=" in program or not program:
                patterns.append(_escape(part))
            else:
                patterns += [_escape(program), _escape(program) + " *"]
        return patterns
    return [_escape(target.text)]


def approved_by_always(patterns: list[str], target: Target) -> bool:
    """True when every part of ``target`` matches one of the session's "always" patterns for the tool."""
    if not patterns:
        return False
    match = _path_match if target.kind == PATH else fnmatch.fnmatchcase
    return all(any(match(part, p) for p in patterns) for part in target.parts)


def _escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _path_match(path: str, pattern: str) -> bool:
    """A glob on path segments: ``*`` and ``?`` never cross a ``/``; ``[c]`` is the literal ``c``."""
    regex, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "[" and i + 2 < len(pattern) and pattern[i + 2] == "]":
            regex.append(re.escape(pattern[i + 1]))
            i += 3
            continue
        regex.append("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c))
        i += 1
    return re.fullmatch("".join(regex), path) is not None


def _origin(url: str) -> str:
    match = re.match(r"^(https?://[^/?#]+)", url, re.IGNORECASE)
    return match.group(1).lower() if match else ""


class PermissionBroker:
    """Decides, waits for challenges, and records every decision."""

    def __init__(self, store: Any, rules: list[PermissionRule], emit_record: Callable[..., Any],
                 workspace: Path | None = None):
        self.store = store
        self.rules = list(rules)
        self.emit_record = emit_record
        self.workspace = workspace or Path.cwd()  # where file tools' targets resolve
        self.pending: dict[str, PendingPermission] = {}
        self.shared: Any = None  # on a shared store: told of each challenge, so other servers can answer it

    async def check(
        self, *, tool: Any, arguments: str, args: dict, session_id: str, run_id: str, requester: str,
        permission_mode: str, timeout_s: float, emit: Callable[[Any], None],
    ) -> Verdict:
        if tool.tool_class == READ:
            return Verdict(True, "", "class")
        try:
            scope = await asyncio.to_thread(tool.permission_scope, args, self.workspace)  # may walk the file system
        except Exception as exc:  # a plugin tool's bug: no rule may approve what nobody could name
            unknown = f"(target unknown: {type(exc).__name__})"
            scope = Target(TEXT, unknown, (unknown,), classified=False)
        target = scope.text
        pid = "perm_" + secrets.token_hex(8)
        requested_at = time.time()
        ruled = rules_decide(self.rules, tool.name, scope)
        if ruled is not None:
            verdict = Verdict(ruled == "allow", ALLOW_ONCE if ruled == "allow" else DENY, "rule")
        elif approved_by_always(await self.store.always_patterns(session_id, tool.name), scope):
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
            "pattern": json.dumps(always_patterns(scope)) if verdict.decision == ALWAYS else "",
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
        if self.shared is not None:
            self.shared.challenge_raised(self.pending[pid])
        emit(PermissionRequested(permission_id=pid, tool=tool.name, tool_class=tool.tool_class,
                                 arguments=arguments, timeout_s=timeout_s))
        try:
            decision, requester = await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except asyncio.TimeoutError:
            return Verdict(False, DENY, "timeout")
        finally:
            self.pending.pop(pid, None)
            if self.shared is not None:
                self.shared.challenge_ended(pid)
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
