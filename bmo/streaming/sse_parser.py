"""An incremental server-sent-events parser: bytes in, events out, lines bounded.

It follows the WHATWG event-stream rules: lines end in CRLF, LF or CR (also when a
CRLF is split across two chunks); a leading UTF-8 BOM is dropped; ``data:`` lines of
one event are joined with ``\\n``; ``event:``, ``id:`` and ``retry:`` set their fields;
lines starting with ``:`` are comments; a blank line dispatches the event. It is not
tied to an HTTP client: feed it whatever chunks the transport delivers.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

import msgspec

# Bound on one line (the bytes between two line ends), so a peer cannot grow our buffer without limit.
DEFAULT_MAX_LINE_BYTES = 1024 * 1024
_BOM = b"\xef\xbb\xbf"


class SseLineTooLong(ValueError):
    """A line of the event stream is longer than the parser's bound."""

    def __init__(self, limit: int):
        super().__init__(f"a server-sent-events line is longer than {limit} bytes")
        self.limit = limit


class SseEvent(msgspec.Struct, frozen=True, gc=False):
    """One dispatched event: ``data`` is its ``data:`` lines joined with ``\\n``."""

    data: str
    event: str = "message"
    id: str = ""  # the stream's last event id when this event was dispatched
    retry: int | None = None  # the reconnection time (ms) last announced by the stream


class SseParser:
    """Feed it byte chunks with :meth:`feed`; it returns the events those chunks completed."""

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES):
        if max_line_bytes < 1:
            raise ValueError(f"max_line_bytes must be 1 or more, got {max_line_bytes}")
        self.max_line_bytes = max_line_bytes
        self.last_event_id = ""
        self.retry: int | None = None
        self._pending = bytearray()  # the current line, not yet ended
        self._skip_lf = False  # the last chunk ended in CR: a LF opening the next one belongs to it
        self._bom_checked = False
        self._data: list[bytes] = []
        self._event = ""

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """The events completed by ``chunk``; :class:`SseLineTooLong` once a line passes the bound."""
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[0] == 10:
                chunk = chunk[1:]
        if not self._bom_checked:
            chunk = self._strip_bom(chunk)
        cut = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        if cut < 0:  # no line end: the current line just grows
            self._pending += chunk
            if len(self._pending) > self.max_line_bytes:
                raise SseLineTooLong(self.max_line_bytes)
            return []
        if cut == len(chunk) - 1 and chunk[cut] == 13:
            self._skip_lf = True
        head, tail = chunk[: cut + 1], chunk[cut + 1 :]
        if self._pending:
            head = bytes(self._pending) + head
            self._pending.clear()
        if len(tail) > self.max_line_bytes:
            raise SseLineTooLong(self.max_line_bytes)
        self._pending += tail
        if b"\r" in head:
            head = head.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = head.split(b"\n")
        lines.pop()  # the empty piece after the last line end
        return self._lines(lines)

    def _strip_bom(self, chunk: bytes) -> bytes:
        seen = bytes(self._pending) + chunk
        if len(seen) < len(_BOM) and _BOM.startswith(seen):
            self._pending = bytearray(seen)  # too short to tell yet
            return b""
        self._bom_checked = True
        self._pending.clear()
        return seen[len(_BOM):] if seen.startswith(_BOM) else seen

    def _lines(self, lines: list[bytes]) -> list[SseEvent]:
        events: list[SseEvent] = []
        limit = self.max_line_bytes
        data = self._data
        for line in lines:
            if len(line) > limit:
                raise SseLineTooLong(limit)
            if line.startswith(b"data:"):  # the hot path: one startswith per data line
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif not line:
                if data:
                    events.append(SseEvent(b"\n".join(data).decode("utf-8", "replace"),
                                           self._event or "message", self.last_event_id, self.retry))
                    data.clear()
                self._event = ""
            elif line[0] != 58:  # 58 is ':', a comment
                self._field(line)
        return events

    def _field(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id" and b"\0" not in value:
            self.last_event_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self.retry = int(value)
        # any other field is ignored, as the standard says


async def iter_events(chunks: AsyncIterable[bytes], parser: SseParser | None = None) -> AsyncIterator[SseEvent]:
    """The events of a byte stream, e.g. ``iter_events(response.content.iter_any())`` with aiohttp."""
    parser = parser or SseParser()
    async for chunk in chunks:
        for event in parser.feed(chunk):
            yield event
