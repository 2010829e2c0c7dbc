"""Reading the trace-record log back: streaming over rotated files, filtering, following.

Everything here works one line at a time, so a multi-gigabyte log costs no more memory
than its longest line (plus a bounded tail when a limit is asked for).
"""

from __future__ import annotations

import fnmatch
import heapq
import os
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec

from bmo.tracing.records import LEVEL_ALIASES, LEVELS, LOG_FILENAME, log_dirs, log_files, normalize_level

_decoder = msgspec.json.Decoder()
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class QueryError(ValueError):
    """A filter a person wrote that cannot be understood; the message says what would work."""


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """``10m``, ``2h``, ``1d``, ``30s``, ``1w`` ago, or an ISO 8601 time (no zone: local time)."""
    now = now or datetime.now(timezone.utc)
    match = _RELATIVE.match(text)
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2).lower()])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise QueryError(
            f"{text!r} is not a time; use a duration ago like 10m, 2h, 1d or an ISO time like 2026-01-31T14:00"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()  # a naive time is the reader's local time
    return when.astimezone(timezone.utc)


def record_time(record: dict) -> datetime | None:
    raw = record.get("time")
    if not isinstance(raw, str):
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def field_value(record: dict, key: str) -> Any:
    """``record[key]``, or a nested value by dotted path (``usage.total_tokens``); None if absent."""
    if key in record:
        return record[key]
    node: Any = record
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def as_text(value: Any) -> str:
    """How a field value is compared and shown: strings as-is, everything else as JSON."""
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


def parse_where(items: Iterable[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise QueryError(f"--where {item!r} is not KEY=VALUE; e.g. --where route=chat_completions")
        out.append((key.strip(), value))
    return out


@dataclass
class RecordFilter:
    """Which records to keep. Every condition given must hold (they are ANDed)."""

    msgs: list[str] = field(default_factory=list)  # exact names or globs (openai_compat.*); any may match
    min_level: str | None = None
    where: list[tuple[str, str]] = field(default_factory=list)  # field == value (value may be a glob)
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.min_level is not None:
            level = self.min_level.lower()
            if level not in LEVELS and level not in LEVEL_ALIASES:
                raise QueryError(f"--level {self.min_level!r} is not one of {', '.join(LEVELS)}")
            self.min_level = normalize_level(level)

    def matches(self, record: dict) -> bool:
        if self.msgs:
            msg = str(record.get("msg", ""))
            if not any(_glob_match(msg, pattern) for pattern in self.msgs):
                return False
        if self.min_level is not None:
            if LEVELS.index(normalize_level(record.get("level", "info"))) < LEVELS.index(self.min_level):
                return False
        for key, wanted in self.where:
            value = field_value(record, key)
            if value is None or not _glob_match(as_text(value), wanted):
                return False
        if self.since is not None or self.until is not None:
            when = record_time(record)
            if when is None:
                return False
            if self.since is not None and when < self.since:
                return False
            if self.until is not None and when > self.until:
                return False
        return True


def _glob_match(text: str, pattern: str) -> bool:
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(text, pattern)
    return text == pattern


def decode_line(line: bytes) -> dict | None:
    """A record from one log line, or None for a blank, partial or foreign line."""
    line = line.strip()
    if not line:
        return None
    try:
        value = _decoder.decode(line)
    except msgspec.DecodeError:
        return None
    return value if isinstance(value, dict) else None


def files_for(log_dir: Path, since: datetime | None = None) -> list[Path]:
    """The log and its rotated backups, oldest first; backups last written before ``since`` are skipped."""
    paths = log_files(log_dir)
    if since is None:
        return paths
    cutoff = since.timestamp()
    return [p for p in paths if p.name == LOG_FILENAME or _mtime(p) >= cutoff]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def read_lines(paths: Iterable[Path]) -> Iterator[bytes]:
    """Every line of every file in order, streamed; a file rotated away meanwhile is skipped."""
    for path in paths:
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            continue
        with fh:
            yield from fh


def matching(lines: Iterable[bytes], keep: RecordFilter) -> Iterator[tuple[bytes, dict]]:
    for line in lines:
        record = decode_line(line)
        if record is not None and keep.matches(record):
            yield line.rstrip(b"\r\n"), record


def last(items: Iterable[Any], limit: int | None) -> Iterable[Any]:
    """The final ``limit`` items (all when None), holding at most ``limit`` in memory."""
    if limit is None:
        return items
    return deque(items, maxlen=limit)


def top_values(records: Iterable[dict], key: str) -> Counter:
    """How many records carry each value of ``key`` (records without it are not counted)."""
    counts: Counter = Counter()
    for record in records:
        value = field_value(record, key)
        if value is not None:
            counts[as_text(value)] += 1
    return counts


def matching_all(log_dir: Path, keep: RecordFilter) -> Iterator[tuple[bytes, dict]]:
    """Matching records of the log dir and of every worker's folder in it, merged in time order."""
    streams = [matching(read_lines(files_for(d, keep.since)), keep) for d in log_dirs(log_dir)]
    if len(streams) == 1:
        return streams[0]
    return heapq.merge(*streams, key=_time_key)


def _time_key(item: tuple[bytes, dict]) -> str:
    # ISO times of one zone (UTC, "Z") sort as text; each file is already in order.
    return str(item[1].get("time", ""))


def has_logs(log_dir: Path) -> bool:
    return any(files_for(d) for d in log_dirs(log_dir))


def backlog_then_follow(
    log_dir: Path, keep: RecordFilter, *, limit: int | None, poll_s: float = 0.25,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[tuple[bytes, dict]]:
    """Matching records already written (the last ``limit``), then every new one as it arrives.

    Each live file is read to its last complete line and followed from exactly there, so no
    record written between the two phases is lost or repeated. Workers' folders are merged in
    time order; a worker that appears while following is followed from its first record.
    """
    followers: dict[Path, Follower] = {}
    histories = []
    for directory in log_dirs(log_dir):
        follower = followers[directory] = Follower(directory / LOG_FILENAME)
        histories.append(matching(follower.history(files_for(directory, keep.since)), keep))
    backlog = histories[0] if len(histories) == 1 else heapq.merge(*histories, key=_time_key)
    yield from last(backlog, limit)
    while not should_stop():
        got = False
        for directory in log_dirs(log_dir):
            follower = followers.get(directory) or followers.setdefault(directory, Follower(directory / LOG_FILENAME))
            for line in follower.read():
                got = True
                record = decode_line(line)
                if record is not None and keep.matches(record):
                    yield line.rstrip(b"\r\n"), record
        if not got:
            time.sleep(poll_s)
    for follower in followers.values():
        follower.close()


def follow_lines(
    path: Path, *, offset: int = 0, inode: int | None = None, poll_s: float = 0.25,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[bytes]:
    """Yield complete lines appended to ``path`` after ``offset``, surviving rotation (see :class:`Follower`)."""
    follower = Follower(path, offset=offset, inode=inode)
    try:
        while not should_stop():
            lines = follower.read()
            if lines:
                yield from lines
            else:
                time.sleep(poll_s)
    finally:
        follower.close()


class Follower:
    """Complete lines appended to one log file, read without blocking, surviving rotation.

    ``offset`` applies when the file is still the one identified by ``inode``. Rotation renames
    the file and starts a new one: when the name points at another inode (or the file shrank),
    the rest of the old file is read, then the new one from its start.
    """

    def __init__(self, path: Path, *, offset: int = 0, inode: int | None = None):
        self.path = path
        self.offset = offset
        self.inode = inode
        self._fh = None
        self._pending = b""

    def history(self, paths: list[Path]) -> Iterator[bytes]:
        """Every complete line of ``paths`` (backups, then the live file, which is followed from its end)."""
        yield from read_lines([p for p in paths if p != self.path])
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            return
        with fh:
            self.inode = os.fstat(fh.fileno()).st_ino
            for line in fh:
                if not line.endswith(b"\n"):
                    break  # a record still being written: the follower picks it up whole
                self.offset += len(line)
                yield line

    def read(self) -> list[bytes]:
        """The complete lines written since the last call ([] when there are none yet)."""
        if self._fh is None:
            try:
                self._fh = open(self.path, "rb")
            except FileNotFoundError:
                return []
            opened = os.fstat(self._fh.fileno()).st_ino
            if self.inode is not None and opened == self.inode:
                self._fh.seek(self.offset)
            self.inode = opened
        chunk = self._fh.read(65536)
        if chunk:
            self._pending += chunk
            *complete, self._pending = self._pending.split(b"\n")
            return complete
        try:
            current = os.stat(self.path)
            rotated = current.st_ino != self.inode or current.st_size < self._fh.tell()
        except FileNotFoundError:
            rotated = False  # between the rename and the new file: keep reading the old one
        if not rotated:
            return []
        # Lines may have landed in the old file between our last read and the rename.
        self._pending += self._fh.read()
        *complete, rest = self._pending.split(b"\n")
        if rest:  # the old file ended without a newline: still a whole record
            complete.append(rest)
        self._pending = b""
        self.close()
        self.inode = None
        return complete

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
