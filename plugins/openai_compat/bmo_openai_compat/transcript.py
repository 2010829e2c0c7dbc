"""Reconcile the messages a client sends with the session's history: append, fork or continue.

BMO's history holds what the client never sees (its own tool calls and their results). The
*visible transcript* folds each stretch of BMO's answer (assistant messages and their internal
tool results) into one assistant turn, the way the client showed it. A request is the client's
*full transcript* when it carries an assistant message, when its session is keyed by a client
known to send whole chats (Open WebUI), or when it says ``X-BMO-Transcript: full``; otherwise its
messages are a *delta*, appended after the history.

A full transcript that extends the visible one appends the rest. One that diverges (regenerate,
edit, a message deleted) forks the session after the last turn both share, and appends the
client's messages from there. Ending in an assistant message asks the run to continue it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bmo.agent.history import Fork, History
from bmo.agent.messages import ChatMessage, text_of
from bmo.server.errors import ApiError

TRANSCRIPT_HEADER = "X-BMO-Transcript"
TRANSCRIPT_MODES = ("full", "delta")
# Open WebUI keeps reasoning and tool progress in <details> blocks of the content it shows.
_DETAILS = re.compile(r"<details\b[^>]*>.*?</details>", re.DOTALL | re.IGNORECASE)


@dataclass
class Plan:
    """What a turn does to the session before its run starts."""

    append: list[ChatMessage] = field(default_factory=list)
    fork: Fork | None = None
    full: bool = False
    common_turns: int = 0  # visible turns the client's messages share with the session
    visible_turns: int = 0
    set_aside: int = 0  # messages of the history the fork sets aside
    history: History | None = None  # what the plan was made on, handed to start_run (None: the loop reads it)


@dataclass
class Turn:
    key: tuple
    last_seq: int


def transcript_mode(value: str | None) -> str:
    """The ``X-BMO-Transcript`` header's value ("" when absent); anything else is a 400 naming the choices."""
    value = (value or "").strip().lower()
    if value and value not in TRANSCRIPT_MODES:
        raise ApiError(400, f"{TRANSCRIPT_HEADER} {value[:20]!r} is not a transcript mode: send \"full\" (the "
                            "messages are the whole chat) or \"delta\" (only what is new).", param=TRANSCRIPT_HEADER)
    return value


def is_full_transcript(messages: list[ChatMessage], *, whole_chat_client: bool, mode: str) -> bool:
    if mode:
        return mode == "full"
    return whole_chat_client or any(m.role == "assistant" for m in messages)


def _norm(content) -> str:
    """What a message shows, for comparing: the text without <details> blocks, and each image's address."""
    if isinstance(content, list):
        images = "".join(f"\x00image:{(p.image_url or {}).get('url', '')}" for p in content if p.type == "image_url")
        content = text_of(content) + images
    content = content or ""
    # Most messages hold no tag at all: the regex runs only where a <details> block can be (every turn reads all).
    return (_DETAILS.sub("", content) if "<" in content else content).strip()


def visible_turns(history: History) -> list[Turn]:
    """The session's history as the client saw it: one turn per user message, answer, or client tool result."""
    turns: list[Turn] = []
    callers: dict[str, str | None] = {}  # tool call id -> run id of the assistant message that made it
    answer: list[str] | None = None  # texts of the answer being folded
    calls: list[str] = []
    internal: set[str] = set()
    for message, seq, run_id in zip(history.messages, history.seqs, history.run_ids):
        role = message.role
        if role == "tool" and message.tool_call_id in callers and callers[message.tool_call_id] == run_id:
            internal.add(message.tool_call_id)  # BMO's own result, written by the run that called it
            if answer is not None:
                turns[-1].last_seq = seq
            continue
        if role == "assistant":
            if answer is None:
                answer, calls = [], []
                turns.append(Turn((), seq))
            answer.append(message.content or "")
            for call in message.tool_calls or []:
                callers[call.id] = run_id
                calls.append(call.id)
            turns[-1].last_seq = seq
            turns[-1].key = ("assistant", _norm("".join(answer)), calls)
            continue
        if answer is not None:
            _close(turns[-1], calls, internal)
            answer = None
        if role == "user":
            turns.append(Turn(("user", _norm(message.content)), seq))
        elif role == "tool":
            turns.append(Turn(("tool", message.tool_call_id, _norm(message.content)), seq))
    if answer is not None:
        _close(turns[-1], calls, internal)
    return turns


def _close(turn: Turn, calls: list[str], internal: set[str]) -> None:
    """An answer's key names only the tool calls the client got (those BMO answered itself are not)."""
    turn.key = (turn.key[0], turn.key[1], frozenset(c for c in calls if c not in internal))


def client_turn(message: ChatMessage) -> tuple | None:
    if message.role == "user":
        return ("user", _norm(message.content))
    if message.role == "tool":
        return ("tool", message.tool_call_id, _norm(message.content))
    if message.role == "assistant":
        calls = frozenset(c.id for c in message.tool_calls or [])
        if not calls and not _norm(message.content):
            return None  # an empty answer (stopped before the first token) shows nothing
        return ("assistant", _norm(message.content), calls)
    return None  # system prompts count only when a session starts


def reconcile(messages: list[ChatMessage], history: History, *, full: bool) -> Plan:
    """The plan for ``messages`` (already in the agent's shape) on a session with ``history``."""
    if not history.messages:
        return Plan(append=list(messages), full=full, history=history)
    visible = visible_turns(history)
    if not full:
        plan = _delta(messages, visible)
        plan.history = history
        return plan
    sent = [(m, k) for m in messages if (k := client_turn(m)) is not None]
    common = 0
    while common < min(len(sent), len(visible)) and sent[common][1] == visible[common].key:
        common += 1
    rest = [m for m, _ in sent[common:]]
    plan = Plan(append=rest, full=True, common_turns=common, visible_turns=len(visible), history=history)
    if common < len(visible):
        at = visible[common - 1].last_seq if common else _system_end(history)
        plan.fork = Fork(at_seq=at, reason=_reason(sent[common:], visible[common:]))
        plan.set_aside = sum(1 for s in history.seqs if s > at)
    return plan


async def plan_turn(session, created: bool, messages: list[ChatMessage], *, mode: str | None,
                    whole_chat_client: bool) -> Plan:
    """Read the session's history once (none for a session this request created) and plan the turn on it."""
    history = History() if created else await session.history()
    full = is_full_transcript(messages, whole_chat_client=whole_chat_client, mode=transcript_mode(mode))
    return reconcile(messages, history, full=full)


def _delta(messages: list[ChatMessage], visible: list[Turn]) -> Plan:
    new = [m for m in messages if m.role != "system"]
    # A resend of the turn that failed: its messages are already the unanswered end of the history.
    tail = []
    for turn in reversed(visible):
        if turn.key[0] == "assistant":
            break
        tail.insert(0, turn.key)
    if tail and [client_turn(m) for m in new] == tail:
        return Plan(append=[], visible_turns=len(visible), common_turns=len(visible))
    return Plan(append=new, visible_turns=len(visible), common_turns=len(visible))


def _system_end(history: History) -> int:
    """The seq of the session's leading system messages, kept by a fork at the very start."""
    at = 0
    for message, seq in zip(history.messages, history.seqs):
        if message.role != "system":
            break
        at = seq
    return at


def _reason(sent: list, visible: list[Turn]) -> str:
    """Name the client action a divergence most likely was, for the timeline."""
    if not sent:
        return "regenerate" if visible and visible[0].key[0] == "assistant" else "truncated"
    first = sent[0][1]
    if first[0] == "user" and visible[0].key[0] == "user":
        return "edit"
    if first[0] == "assistant" and visible[0].key[0] == "assistant":
        return "answer_changed"
    return "diverged"
