"""OpenTelemetry: a tracer provider exporting OTLP over HTTP or gRPC when configured."""

from __future__ import annotations

import os
from urllib.parse import urlsplit
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from bmo import __version__

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


def create_tracer_provider(options: Any, env: dict[str, str] | None = None) -> TracerProvider:
    """A provider of our own (not the global one), so tests and servers never share state."""
    env = dict(os.environ if env is None else env)
    name = options.service_name or env.get("OTEL_SERVICE_NAME", "") or "bmo"
    resource = Resource.create({"service.name": name, "service.version": __version__})
    provider = TracerProvider(resource=resource)
    settings = export_settings(options, env)
    if settings is not None:
        provider.add_span_processor(BatchSpanProcessor(_exporter(*settings), schedule_delay_millis=500))
    return provider


def get_tracer(provider: TracerProvider) -> trace.Tracer:
    """The tracer plugins reach as ``host.tracer``."""
    return provider.get_tracer(TRACER_NAME, __version__)
