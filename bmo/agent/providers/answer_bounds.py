"""The bounds on one upstream answer: total time (``max_answer_s``) and size (``max_answer_bytes``).

The time bound is one timer per model call, not a timeout per read: when it fires it closes
the upstream response, which wakes the pending read, and the reader turns that into a 504.
The size bound counts the answer's bytes as received (SSE framing included), so it also bounds
what the answer can make BMO hold.
"""

from __future__ import annotations

import asyncio

import aiohttp

from bmo.agent.errors import UpstreamError, UpstreamTimeout


class AnswerBounds:
    """One model call's budget; :meth:`watch` its response, :meth:`count` what arrives, :meth:`close` at the end."""

    def __init__(self, provider: str, max_s: float, max_bytes: int):
        self.provider = provider
        self.max_s = max_s
        self.max_bytes = max_bytes
        loop = asyncio.get_running_loop()
        self.deadline = loop.time() + max_s
        self.received = 0
        self.expired = False
        self._resp: aiohttp.ClientResponse | None = None
        self._timer = loop.call_at(self.deadline, self._expire)

    def remaining(self) -> float:
        return max(0.0, self.deadline - asyncio.get_running_loop().time())

    def watch(self, resp: aiohttp.ClientResponse) -> None:
        """The response the time bound closes when it runs out."""
        self._resp = resp
        if self.expired:
            resp.close()

    def _expire(self) -> None:
        self.expired = True
        if self._resp is not None:
            self._resp.close()

    def count(self, size: int) -> None:
        self.received += size
        if self.received > self.max_bytes:
            raise self.too_large()

    def too_large(self) -> UpstreamError:
        key = f"[providers.{self.provider}] max_answer_bytes"
        return UpstreamError(
            502, f"Provider '{self.provider}' sent an answer larger than {self.max_bytes} bytes ({key}); "
                 "it was cut off.",
            detail=f"provider {self.provider}: answer passed {key} = {self.max_bytes} after {self.received} bytes",
            code="upstream_answer_too_large")

    def timed_out(self) -> UpstreamTimeout:
        key = f"[providers.{self.provider}] max_answer_s"
        return UpstreamTimeout(
            f"Provider '{self.provider}' did not finish its answer within {self.max_s:g}s ({key}); it was cut off.",
            detail=f"provider {self.provider}: answer passed {key} = {self.max_s:g} after {self.received} bytes")

    def close(self) -> None:
        self._timer.cancel()
        self._resp = None
