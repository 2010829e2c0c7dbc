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
from pathlib import Path
from typing import Any

import msgspec
from pluggy import HookCaller

from bmo.hook_calls import call_each

LOG_FILENAME = "bmo.jsonl"
# Each worker of `bmo serve --workers N` appends to its own <log dir>/workers/<name>/bmo.jsonl: one
# writer per file keeps appends and rotation single-process; `bmo logs` merges them by time.
WORKER_RECORDS_ENV = "BMO_WORKER_RECORDS"
WORKERS_DIR = "workers"
LEVELS = ("debug", "info", "warn", "error")
# Spellings people and libraries use for the same severities.
LEVEL_ALIASES = {"warning": "warn", "err": "error", "critical": "error", "fatal": "error"}
BATCH_WINDOW_S = 0.02  # how long the writer lets records gather before it writes them
MAX_PENDING_RECORDS = 20_000  # records waiting beyond this are dropped (and counted), never buffered
_FLUSH = object()
_STOP = object()
_encoder = msgspec.json.Encoder()


_second = (0, "")  # (epoch second, its "YYYY-MM-DDTHH:MM:SS"): a dozen stamps per request share one formatting


def now_iso() -> str:
    """UTC now as ``2026-01-02T03:04:05.678Z`` (milliseconds, truncated as ``datetime.isoformat`` does)."""
    global _second
    t = time.time()
    sec = int(t)
    us = round((t - sec) * 1e6)  # datetime rounds the float to microseconds the same way
    if us >= 1_000_000:
        sec, us = sec + 1, us - 1_000_000
    cached = _second
    if cached[0] != sec:
        cached = _second = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    return f"{cached[1]}.{us // 1000:03d}Z"


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
        max_pending: int = MAX_PENDING_RECORDS,
        fields: dict[str, Any] | None = None,
    ):
        self.directory = Path(directory)
        self._fields = dict(fields or {})  # on every record, after msg (a worker's name)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # records carry requesters and prompts
        self.path = self.directory / LOG_FILENAME
        self.max_bytes = max_bytes
        self.backups = backups
        self.stderr = stderr
        self._hook = hook
        # Encoded lines and control items wait here; the writer takes them all at once.
        self._pending: list = []
        self._pending_lines = 0
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._wake = threading.Event()
        # What the posture shows: a full disk costs records (counted), never the writer.
        self.written = 0
        self.dropped = 0
        self.write_errors = 0
        self.last_error: str | None = None
        self.last_error_at: str | None = None
        self._dropped_unreported = 0  # dropped since the log last said so in a bmo.records.dropped record
        self._failing = False  # the last write failed; cleared by the next one that succeeds
        self._writer_error: str | None = None
        self._fh = None
        self._size = 0
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="bmo-records", daemon=True)
        self._thread.start()

    @property
    def queue_depth(self) -> int:
        """Records waiting for the writer."""
        return self._pending_lines

    @property
    def writer_alive(self) -> bool:
        return self._thread.is_alive()

    def status(self) -> dict:
        """The writer's counters, for the posture's ``records`` section."""
        return {"writer": "running" if self.writer_alive else "stopped", "path": str(self.path),
                "written": self.written, "dropped": self.dropped, "write_errors": self.write_errors,
                "last_error": self._writer_error or self.last_error, "last_error_at": self.last_error_at,
                "queue_depth": self.queue_depth, "max_queue": self.max_pending,
                "degraded": self._failing or not self.writer_alive}

    def emit(self, msg: str, level: str = "info", **fields: Any) -> dict:
        """Write one record and hand it to every tracing hook; returns it as written.

        A hook that raises is reported as a ``bmo.trace_hook_failed`` record; the other hooks
        and the caller carry on.
        """
        if self._fields:
            record = {"time": now_iso(), "level": normalize_level(level), "msg": msg, **self._fields, **fields}
        else:
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
            if isinstance(item, bytes):
                if self._pending_lines >= self.max_pending or not self._thread.is_alive():
                    self.dropped += 1
                    self._dropped_unreported += 1
                    return
                self._pending_lines += 1
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
        deadline = time.monotonic() + 10
        while not done.wait(0.1):  # a writer that stopped never sets it: do not wait out the 10 s
            if not self._thread.is_alive() or time.monotonic() > deadline:
                return

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._put(_STOP, urgent=True)
        self._thread.join(10)

    def _loop(self) -> None:
        try:
            try:
                self._open()  # the log exists from the start, even before its first record
            except OSError:
                pass  # a full disk: the first batch tries again, and counts what it cannot write
            while True:
                self._wake.wait()
                # Let a burst gather, unless someone waits for a flush or the stop.
                with self._lock:
                    waiting = any(not isinstance(i, bytes) for i in self._pending)
                if not waiting:
                    time.sleep(BATCH_WINDOW_S)
                with self._lock:
                    items, self._pending = self._pending, []
                    self._pending_lines = 0
                    self._wake.clear()
                stop = False
                lines: list[bytes] = []
                for item in items:
                    if isinstance(item, bytes):
                        lines.append(item)
                        continue
                    self._append(lines)  # what came before a flush or the stop is written first
                    lines = []
                    if item is _STOP:
                        stop = True
                    else:
                        item[1].set()
                self._append(lines)
                if stop:
                    return
        except BaseException as exc:  # noqa: BLE001 - say it once, plainly; emit() then counts drops
            self._writer_error = f"the records writer stopped: {type(exc).__name__}: {exc}"
            _warn(f"bmo: {self._writer_error}; further records are dropped")
        finally:
            self._close_file()
            with self._lock:
                self.dropped += self._pending_lines
                self._pending_lines = 0
                for item in self._pending:
                    if isinstance(item, tuple):
                        item[1].set()
                self._pending = []

    def _append(self, lines: list[bytes]) -> None:
        """Write ``lines`` (rotating as needed); on an OS error count them dropped and keep going."""
        if not lines and not self._dropped_unreported:  # a flush still writes the report of a gap
            return
        if self.stderr:
            try:
                sys.stderr.buffer.write(b"".join(lines))
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
        report = self._dropped_unreported  # the log says what it missed, first thing once it can write again
        if report:
            lines = [self._dropped_line(), *lines]
        done = 0
        try:
            for segment in self._segments(lines):
                self._write_all(b"".join(segment))
                done += len(segment)
        except OSError as exc:
            self._close_file()  # reopened on the next batch: the file may be gone or rotated meanwhile
            reported = bool(report and done)
            with self._lock:
                lost = len(lines) - done - (1 if report and not done else 0)
                self.written += done - (1 if reported else 0)
                self.dropped += lost
                self._dropped_unreported = lost if reported else self._dropped_unreported + lost
                self.write_errors += 1
                self._failing = True
                self.last_error = f"{exc.strerror or exc} ({self.path})"
                self.last_error_at = now_iso()
            if not report:
                _warn(f"bmo: cannot write records to {self.path}: {exc.strerror or exc}; "
                      "dropping them (and counting) until the disk takes writes again")
            return
        with self._lock:
            self.written += done - (1 if report else 0)
            self._dropped_unreported -= report
            self._failing = False
        if report:
            _warn(f"bmo: records are written to {self.path} again ({report} were dropped meanwhile)")

    def _dropped_line(self) -> bytes:
        return _encoder.encode({"time": now_iso(), "level": "warn", "msg": "bmo.records.dropped",
                                "dropped": self._dropped_unreported, "total_dropped": self.dropped,
                                "error": self.last_error}) + b"\n"

    def _segments(self, lines: list[bytes]):
        """``lines`` cut where the log must rotate before the next one, rotating in between."""
        self._open()
        segment: list[bytes] = []
        size = self._size
        for line in lines:
            if size + len(line) > self.max_bytes and size > 0:
                if segment:
                    yield segment
                    segment = []
                self._close_file()
                self._rotate()
                self._open()
                size = 0
            segment.append(line)
            size += len(line)
        if segment:
            yield segment

    def _open(self) -> None:
        if self._fh is None:
            self._fh = open(self.path, "ab", buffering=0)
            self._size = self._fh.tell()

    def _write_all(self, data: bytes) -> None:
        """Append ``data`` whole or not at all: a short write is cut back so no half line stays."""
        start, view = self._size, memoryview(data)
        try:
            while view:
                n = self._fh.write(view)
                view = view[n:]
        except OSError:
            try:
                os.ftruncate(self._fh.fileno(), start)
            except OSError:
                pass
            raise
        self._size = start + len(data)

    def _close_file(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                pass
            self._fh = None

    def _rotate(self) -> None:
        for i in range(self.backups, 0, -1):
            src = self.path if i == 1 else self.path.with_name(f"{LOG_FILENAME}.{i - 1}")
            dst = self.path.with_name(f"{LOG_FILENAME}.{i}")
            if src.exists():
                os.replace(src, dst)
        if self.backups == 0:
            self.path.unlink(missing_ok=True)


def _warn(text: str) -> None:
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _plain(value: Any) -> Any:
    try:
        _encoder.encode(value)
        return value
    except (TypeError, msgspec.EncodeError):
        return str(value)


def records_dir(log_dir: str | Path, env: dict[str, str] | None = None) -> Path:
    """Where this process writes its records: the log dir, or its worker's own folder under it."""
    worker = (os.environ if env is None else env).get(WORKER_RECORDS_ENV)
    return Path(log_dir) / WORKERS_DIR / worker if worker else Path(log_dir)


def log_dirs(log_dir: str | Path) -> list[Path]:
    """The log dir and every worker's folder in it (a gone worker's records stay readable)."""
    log_dir = Path(log_dir)
    try:
        workers = sorted(p for p in (log_dir / WORKERS_DIR).iterdir() if p.is_dir())
    except OSError:
        workers = []
    return [log_dir, *workers]


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
