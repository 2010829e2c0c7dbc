"""One run per intent: a client's retry of a request joins the run the first attempt started.

Two ways to tell a retry: the same trailing messages sent to a session whose run is still
going (what the Vercel AI SDK and LiteLLM do after a 409 or 502 whatever ``x-should-retry``
says), and an ``Idempotency-Key`` header seen before (Stripe-style; kept ``KEY_TTL_S`` and at
most ``MAX_KEYS`` keys, oldest forgotten first). Memory stays bounded: one intent per busy
session, dropped when its run ends, and the capped key table.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections import OrderedDict

import msgspec

from bmo.server.errors import ApiError
from bmo_openai_compat.wire import ChatCompletionRequest

IDEMPOTENCY_HEADER = "Idempotency-Key"
KEY_TTL_S = 600.0  # as long as a finished run can be followed (the coordinator keeps it 10 minutes)
MAX_KEYS = 10_000
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
STATE_KEY = "openai_compat.retries"


def check_key(value: str) -> str:
    value = value.strip()
    if not _KEY.match(value):
        raise ApiError(400, f"{IDEMPOTENCY_HEADER} must be 1-255 printable ASCII characters without spaces "
                            "(a UUID is usual).", param=IDEMPOTENCY_HEADER)
    return value


def intent_of(session_id: str, req: ChatCompletionRequest) -> str:
    """What the request asks for: its session, model, format and the messages after the last answer."""
    messages = req.messages
    last_answer = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
    trailing = [m for m in messages[last_answer + 1:] if m.role != "system" or not session_id]
    data = msgspec.json.encode([session_id, req.model, req.response_format, req.tool_choice, trailing])
    return hashlib.sha256(data).hexdigest()


class RetryIndex:
    """Which run each busy session's intent and each idempotency key started.

    A key is claimed when its first request arrives, before that request has a run: a retry
    sent meanwhile waits for the run to start (``run_of``), so concurrent retries make one run.
    """

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._busy: dict[str, tuple[str, str]] = {}  # session id -> (intent, run id)
        # key -> (expiry, intent, the first request's run id: None if it ended without a run)
        self._keys: OrderedDict[str, tuple[float, str, asyncio.Future]] = OrderedDict()

    def started(self, run, session_id: str, intent: str, key: str = "", *, durable: bool = True) -> None:
        """Remember what ``run`` was started for."""
        if durable:
            self._busy[session_id] = (intent, run.id)
            run.on_finish(lambda r: self._busy.pop(session_id, None) if self._busy.get(session_id, ("", ""))[1] == r.id
                          else None)
        if key:
            entry = self._keys.get(key)
            if entry is None or entry[2].done():
                self.claim(key, intent)
            future = self._keys[key][2]
            if not future.done():
                future.set_result(run.id)

    def same_intent(self, session_id: str, intent: str, busy_run_id: str) -> bool:
        """True when the session's running run was started by a request with this intent."""
        return self._busy.get(session_id) == (intent, busy_run_id)

    def seen(self, key: str) -> tuple[str, asyncio.Future] | None:
        """(intent, future run id) of a live key; None for a new or expired key."""
        self._prune()
        entry = self._keys.get(key)
        return (entry[1], entry[2]) if entry else None

    def claim(self, key: str, intent: str) -> None:
        """Make the caller the key's first request (a new key, or one whose run is gone)."""
        self._prune()
        self._keys.pop(key, None)
        self._keys[key] = (self._clock() + KEY_TTL_S, intent, asyncio.get_running_loop().create_future())
        while len(self._keys) > MAX_KEYS:
            _, (_, _, future) = self._keys.popitem(last=False)
            if not future.done():
                future.set_result(None)

    def release(self, key: str) -> None:
        """The key's first request ended without starting a run: waiting retries start their own."""
        entry = self._keys.get(key)
        if entry is not None and not entry[2].done():
            entry[2].set_result(None)
            del self._keys[key]

    def _prune(self) -> None:
        now = self._clock()
        while self._keys:
            first = next(iter(self._keys))
            if self._keys[first][0] > now:
                break
            _, _, future = self._keys.pop(first)
            if not future.done():
                future.set_result(None)


def retries_of(host) -> RetryIndex:
    index = host.state.get(STATE_KEY)
    if index is None:
        index = host.state[STATE_KEY] = RetryIndex()
    return index
