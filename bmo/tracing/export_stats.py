"""Counting what the OTLP exporter failed to deliver, so a receiver that is down shows in the posture."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

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
    queue_dropped_spans: int = 0  # dropped before export: the batch queue was full
    max_queue_size: int = 0
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
                "queue_dropped_spans": self.queue_dropped_spans, "max_queue_size": self.max_queue_size,
                "last_error": self.last_error,
                "last_failure_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_failure_at))
                if self.last_failure_at else "",
            }

    def succeeded(self, spans: int) -> None:
        with self._lock:
            self.exported_spans += spans
            self.exported_batches += 1

    def failed(self, spans: int, error: str) -> None:
        self._dropped(error, spans=spans, batches=1)

    def queue_full(self) -> None:
        self._dropped(f"the span queue is full (max_queue_size {self.max_queue_size}): the receiver is slower "
                      "than the spans made; raise OTEL_BSP_MAX_QUEUE_SIZE or check the receiver", queued=1)

    def _dropped(self, error: str, *, spans: int = 0, batches: int = 0, queued: int = 0) -> None:
        now = time.time()
        with self._lock:
            self.dropped_spans += spans
            self.dropped_batches += batches
            self.queue_dropped_spans += queued
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


class CountingBatchSpanProcessor(BatchSpanProcessor):
    """The SDK's batch processor, counting the spans it drops silently when its queue is full."""

    def __init__(self, exporter: SpanExporter, stats: ExportStats, *, max_queue_size: int, **kwargs: Any):
        super().__init__(exporter, max_queue_size=max_queue_size, **kwargs)
        self.stats = stats
        stats.max_queue_size = max_queue_size

    def on_end(self, span: Any) -> None:
        queue = _queue_of(self)
        if (queue is not None and span.context is not None and span.context.trace_flags.sampled
                and len(queue) >= self.stats.max_queue_size):
            self.stats.queue_full()  # the SDK's deque is about to push out its oldest span
        super().on_end(span)


def _queue_of(processor: BatchSpanProcessor):
    """The SDK keeps its queue private (``_batch_processor._queue`` now, ``queue`` in older releases): read either."""
    inner = getattr(processor, "_batch_processor", processor)
    queue = getattr(inner, "_queue", None)
    return queue if queue is not None else getattr(inner, "queue", None)
