"""How many streamed answers the server holds open at once (``[options.http_server] max_concurrent_streams``).

Past the limit a new stream is refused at once with a 503 in the OpenAI envelope and a
``Retry-After``, before any run starts: a client learns the server is full and when to come
back, instead of a connect timeout or a reset from an overloaded accept queue. Non-streamed
requests are not counted (they hold no response open while the model streams).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from bmo.server.errors import ApiError

STATE_KEY = "stream_capacity"
RETRY_AFTER_S = 1  # streams are short-lived; a second later a slot is likely free


class StreamCapacity:
    """A counter of open streams with a limit (0: none); ``active`` is the current count."""

    def __init__(self, limit: int):
        self.limit = limit
        self.active = 0
        self.refused = 0  # streams refused since start

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one stream slot for the ``with`` body; :class:`ApiError` 503 when none is free."""
        if self.limit and self.active >= self.limit:
            self.refused += 1
            # The SDK honours Retry-After on a retried status; "true" lets it come back by itself.
            raise ApiError(
                503, f"The server is at its limit of {self.limit} concurrent streams "
                     "([options.http_server] max_concurrent_streams); retry shortly, or send the request without "
                     "stream.", code="too_many_streams",
                headers={"Retry-After": str(RETRY_AFTER_S), "x-should-retry": "true"})
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


def capacity_of(host) -> StreamCapacity:
    """The host's one stream counter, made on first use from ``[options.http_server]``."""
    capacity = host.state.get(STATE_KEY)
    if capacity is None:
        limit = host.config.section("options.http_server").max_concurrent_streams
        capacity = host.state[STATE_KEY] = StreamCapacity(limit)
    return capacity


def stream_slot(host, stream: bool = True):
    """A slot for a streamed answer; a no-op context for a non-streamed one."""
    return capacity_of(host).slot() if stream else contextlib.nullcontext()
