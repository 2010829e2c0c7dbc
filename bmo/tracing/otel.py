"""OpenTelemetry: a tracer provider exporting OTLP over HTTP or gRPC when configured."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from bmo import __version__
from bmo.tracing.content import ContentCapture, register
from bmo.tracing.export_stats import CountingBatchSpanProcessor, CountingExporter, ExportStats

TRACER_NAME = "bmo"


def export_settings(options: Any, env: dict[str, str] | None = None) -> tuple[str, str] | None:
    """``(protocol, traces_url)`` to export to, or None when export is off.

    ``[tracing] otlp_endpoint`` wins over ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (used as is),
    which wins over ``OTEL_EXPORTER_OTLP_ENDPOINT``. For http/protobuf, a base URL (no path)
    gets the standard ``/v1/traces`` path, as the OTLP exporter spec says.
    """
    env = dict(os.environ if env is None else env)
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true" or env.get("OTEL_TRACES_EXPORTER", "") == "none":
        return None
    protocol = (
        options.otlp_protocol
        or env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
        or "http/protobuf"
    )
    if protocol not in ("http/protobuf", "grpc"):
        raise ValueError(f"[tracing] otlp_protocol {protocol!r} is not supported; use \"http/protobuf\" or \"grpc\"")
    signal_specific = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
    endpoint = options.otlp_endpoint or signal_specific or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    if not endpoint:
        return None
    if protocol == "http/protobuf" and (options.otlp_endpoint or not signal_specific):
        endpoint = _with_traces_path(endpoint)
    return protocol, endpoint


def _with_traces_path(endpoint: str) -> str:
    """``http://host:4318`` or ``http://host/otlp`` get ``/v1/traces`` appended; a full traces URL stays."""
    if urlsplit(endpoint).path.rstrip("/").endswith("/v1/traces"):
        return endpoint
    return endpoint.rstrip("/") + "/v1/traces"


def _exporter(protocol: str, endpoint: str):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, insecure=not endpoint.startswith("https://"))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint)


class BmoTracerProvider(TracerProvider):
    """The SDK provider plus what BMO adds: the content-capture setting and the export counters."""

    def __init__(self, *, content: ContentCapture, export: ExportStats, endpoint: str = "", **kwargs: Any):
        super().__init__(**kwargs)
        self.content = content
        self.export_stats = export
        self.export_endpoint = endpoint  # "" when nothing is exported


def create_tracer_provider(options: Any, env: dict[str, str] | None = None) -> BmoTracerProvider:
    """A provider of our own (not the global one), so tests and servers never share state."""
    env = dict(os.environ if env is None else env)
    name = options.service_name or env.get("OTEL_SERVICE_NAME", "") or "bmo"
    resource = Resource.create({"service.name": name, "service.version": __version__})
    settings = export_settings(options, env)
    stats = ExportStats(protocol=settings[0] if settings else "", endpoint=settings[1] if settings else "")
    provider = BmoTracerProvider(resource=resource, content=ContentCapture.from_config(options, env), export=stats,
                                 endpoint=settings[1] if settings else "")
    if settings is not None:
        exporter = CountingExporter(_exporter(*settings), stats)
        queue, batch = _queue_sizes(env)
        provider.add_span_processor(CountingBatchSpanProcessor(exporter, stats, max_queue_size=queue,
                                                               max_export_batch_size=batch, schedule_delay_millis=500))
    return provider


def _queue_sizes(env: dict[str, str]) -> tuple[int, int]:
    """``OTEL_BSP_MAX_QUEUE_SIZE`` and ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` (SDK defaults 2048, 512), batch <= queue."""
    def read(name: str, default: int) -> int:
        try:
            return max(1, int(env.get(name, "") or default))
        except ValueError:
            return default
    queue = read("OTEL_BSP_MAX_QUEUE_SIZE", 2048)
    return queue, min(read("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512), queue)


def get_tracer(provider: TracerProvider) -> trace.Tracer:
    """The tracer plugins reach as ``host.tracer`` (model and tool spans learn the capture setting from it)."""
    tracer = provider.get_tracer(TRACER_NAME, __version__)
    register(tracer, getattr(provider, "content", ContentCapture()))
    return tracer
