"""Trace records: JSON lines (``time``, ``level``, ``msg``, fields) to the data dir, size-rotated.

Records are encoded on the caller's thread (cheap) and appended by one writer thread, so
disk latency never reaches the event loop. Every record also goes through the
``bmo_trace_record`` hook.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec
from pluggy import HookCaller

from bmo.hook_calls import call_each

LOG_FILENAME = "bmo.jsonl"
LEVELS = ("debug", "info", "warn", "error")
# Spellings people and libraries use for the same severities.
LEVEL_ALIASES = {"warning": "warn", "err": "error", "critical": "error", "fatal": "error"}
BATCH_WINDOW_S = 0.02  # how long the writer lets records gather before it writes them
_FLUSH = object()
_STOP = object()
_encoder = msgspec.json.Encoder()


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def normalize_level(level: str) -> str:
    """One of :data:`LEVELS`; unknown spellings count as ``info``."""
    level = str(level).lower()
    level = LEVEL_ALIASES.get(level, level)
    return level if level in LEVELS else "info"


class RecordLog:
    """Appends trace records to ``<dir>/bmo.jsonl`` with bounded rotation (``.1`` … ``.N``)."""

    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int = 16 * 1024 * 1024,
        backups: int = 5,
        stderr: bool = False,
        hook: HookCaller | None = None,
    ):
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # records carry requesters and prompts
        self.path = self.directory / LOG_FILENAME
        self.max_bytes = max_bytes
        self.backups = backups
        self.stderr = stderr
        self._hook = hook
        # Encoded lines and control items wait here; the writer takes them all at once.
        self._pending: list = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bmo-records", daemon=True)
        self._thread.start()
        self._closed = False

    def emit(self, msg: str, level: str = "info", **fields: Any) -> dict:
        """Write one record and hand it to every tracing hook; returns it as written.

        A hook that raises is reported as a ``bmo.trace_hook_failed`` record; the other hooks
        and the caller carry on.
        """
        record = {"time": now_iso(), "level": normalize_level(level), "msg": msg, **fields}
        self._write(record)
        if self._hook is None:
            return record

        def failed(plugin: str, exc: Exception) -> None:  # a plugin's hook must not break the caller
            self._write({
                "time": now_iso(), "level": "error", "msg": "bmo.trace_hook_failed",
                "plugin": plugin, "error": f"{type(exc).__name__}: {exc}", "record_msg": msg,
            })

        # Plugin by plugin, in registration order, so one that raises skips no other.
        call_each(self._hook, {"record": record}, reverse=True, on_error=failed)
        return record

    def _write(self, record: dict) -> None:
        if self._closed:
            return
        try:
            line = _encoder.encode(record)
        except (TypeError, msgspec.EncodeError):
            # A field msgspec cannot encode is written as its text rather than dropping the record.
            line = _encoder.encode({k: _plain(v) for k, v in record.items()})
        self._put(line + b"\n")

    def _put(self, item: Any, urgent: bool = False) -> None:
        with self._lock:
            self._pending.append(item)
        # Waking the writer costs a thread hand-off: once per batch, not once per record.
        if urgent or not self._wake.is_set():
            self._wake.set()

    def flush(self) -> None:
        """Block until everything emitted so far is on disk (call off the loop)."""
        if self._closed:
            return
        done = threading.Event()
        self._put((_FLUSH, done), urgent=True)
        done.wait(10)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._put(_STOP, urgent=True)
        self._thread.join(10)

    def _loop(self) -> None:
        fh = open(self.path, "ab")
        size = fh.tell()
        try:
            while True:
                self._wake.wait()
                # Let a burst gather, unless someone waits for a flush or the stop.
                with self._lock:
                    waiting = any(not isinstance(i, bytes) for i in self._pending)
                if not waiting:
                    time.sleep(BATCH_WINDOW_S)
                with self._lock:
                    items, self._pending = self._pending, []
                    self._wake.clear()
                stop = False
                for item in items:
                    if item is _STOP:
                        stop = True
                    elif isinstance(item, tuple) and item[0] is _FLUSH:
                        fh.flush()
                        item[1].set()
                    else:
                        if size + len(item) > self.max_bytes and size > 0:
                            fh.close()
                            self._rotate()
                            fh = open(self.path, "ab")
                            size = 0
                        fh.write(item)
                        size += len(item)
                        if self.stderr:
                            sys.stderr.buffer.write(item)
                fh.flush()
                if stop:
                    return
        finally:
            fh.close()

    def _rotate(self) -> None:
        for i in range(self.backups, 0, -1):
            src = self.path if i == 1 else self.path.with_name(f"{LOG_FILENAME}.{i - 1}")
            dst = self.path.with_name(f"{LOG_FILENAME}.{i}")
            if src.exists():
                os.replace(src, dst)
        if self.backups == 0:
            self.path.unlink(missing_ok=True)


def _plain(value: Any) -> Any:
    try:
        _encoder.encode(value)
        return value
    except (TypeError, msgspec.EncodeError):
        return str(value)


def log_files(directory: str | Path) -> list[Path]:
    """The log and its rotated backups, oldest first."""
    directory = Path(directory)
    backups = sorted(
        directory.glob(f"{LOG_FILENAME}.*"),
        key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0,
        reverse=True,
    )
    main = directory / LOG_FILENAME
    return [p for p in backups if p.suffix[1:].isdigit()] + ([main] if main.exists() else [])
