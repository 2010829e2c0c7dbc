"""Counting what the OTLP exporter failed to deliver, so a receiver that is down shows in the posture."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

REPORT_EVERY_S = 60.0  # at most one ``bmo.tracing.export_failed`` record a minute


@dataclass
class ExportStats:
    """Counters of one exporter; updated on the export thread, read by the posture."""

    protocol: str = ""
    endpoint: str = ""
    exported_spans: int = 0
    exported_batches: int = 0
    dropped_spans: int = 0
    dropped_batches: int = 0
    last_error: str = ""
    last_failure_at: float = 0.0
    # Called (on the export thread) at most once per REPORT_EVERY_S with the counters; the host emits a record.
    on_failure: Callable[[dict], None] | None = None
    _reported_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "exporting": bool(self.endpoint), "protocol": self.protocol, "endpoint": self.endpoint,
                "exported_spans": self.exported_spans, "exported_batches": self.exported_batches,
                "dropped_spans": self.dropped_spans, "dropped_batches": self.dropped_batches,
                "last_error": self.last_error,
                "last_failure_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_failure_at))
                if self.last_failure_at else "",
            }

    def succeeded(self, spans: int) -> None:
        with self._lock:
            self.exported_spans += spans
            self.exported_batches += 1

    def failed(self, spans: int, error: str) -> None:
        now = time.time()
        with self._lock:
            self.dropped_spans += spans
            self.dropped_batches += 1
            self.last_error = error
            self.last_failure_at = now
            due = now - self._reported_at >= REPORT_EVERY_S
            if due:
                self._reported_at = now
        if due and self.on_failure is not None:
            self.on_failure(self.snapshot())


class CountingExporter(SpanExporter):
    """Delegates to the OTLP exporter and counts each batch it delivered or dropped."""

    def __init__(self, inner: SpanExporter, stats: ExportStats):
        self.inner = inner
        self.stats = stats

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # noqa: BLE001 - an exporter bug drops the batch, never the server
            self.stats.failed(len(spans), f"{type(exc).__name__}: {exc}")
            return SpanExportResult.FAILURE
        if result == SpanExportResult.SUCCESS:
            self.stats.succeeded(len(spans))
        else:
            self.stats.failed(len(spans), f"the OTLP receiver at {self.stats.endpoint} did not take the batch")
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)
