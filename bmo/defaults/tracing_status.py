"""The ``tracing`` posture section and the record that says spans are being dropped."""

from __future__ import annotations

import asyncio

from bmo.hookspecs import hookimpl


def posture_for(host) -> dict:
    """Export state and counters: what reached the OTLP receiver, what was dropped, the last error."""
    provider = host.tracer_provider
    stats = getattr(provider, "export_stats", None)
    capture = getattr(provider, "content", None)
    section = stats.snapshot() if stats is not None else {"exporting": False}
    section["capture_content"] = bool(capture and capture.enabled)
    return section


@hookimpl
def bmo_posture(register, host):
    register("tracing", posture_for)


@hookimpl
async def bmo_startup(host):
    stats = getattr(host.tracer_provider, "export_stats", None)
    if stats is None:
        return
    loop = asyncio.get_running_loop()

    def report(counters: dict) -> None:
        # The export thread hands the record to the loop: trace hooks run where they always do.
        try:
            loop.call_soon_threadsafe(lambda: host.emit(
                "bmo.tracing.export_failed", "warn", dropped_spans=counters["dropped_spans"],
                dropped_batches=counters["dropped_batches"], queue_dropped_spans=counters["queue_dropped_spans"],
                endpoint=counters["endpoint"],
                error=counters["last_error"]))
        except RuntimeError:  # the loop closed while the exporter was still trying
            pass

    stats.on_failure = report


@hookimpl
def bmo_shutdown(host):
    stats = getattr(host.tracer_provider, "export_stats", None)
    if stats is not None:
        stats.on_failure = None  # the loop is going away; the final flush only counts
