"""OpenTelemetry: a tracer provider exporting OTLP over HTTP or gRPC when configured."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from bmo import __version__

TRACER_NAME = "bmo"


def export_settings(options: Any, env: dict[str, str] | None = None) -> tuple[str, str] | None:
    """``(protocol, endpoint)`` to export to, or None. ``[tracing]`` wins over ``OTEL_*``."""
    env = dict(os.environ if env is None else env)
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true" or env.get("OTEL_TRACES_EXPORTER", "") == "none":
        return None
    endpoint = (
        options.otlp_endpoint
        or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    )
    if not endpoint:
        return None
    protocol = (
        options.otlp_protocol
        or env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
        or "http/protobuf"
    )
    if protocol not in ("http/protobuf", "grpc"):
        raise ValueError(f"[tracing] otlp_protocol {protocol!r} is not supported; use \"http/protobuf\" or \"grpc\"")
    return protocol, endpoint


def _exporter(protocol: str, endpoint: str):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # A base URL like http://host:4318 gets the standard signal path appended.
    if not endpoint.rstrip("/").endswith("/v1/traces"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    return OTLPSpanExporter(endpoint=endpoint)


def create_tracer_provider(options: Any, env: dict[str, str] | None = None) -> TracerProvider:
    """A provider of our own (not the global one), so tests and servers never share state."""
    resource = Resource.create({"service.name": options.service_name, "service.version": __version__})
    provider = TracerProvider(resource=resource)
    settings = export_settings(options, env)
    if settings is not None:
        provider.add_span_processor(BatchSpanProcessor(_exporter(*settings), schedule_delay_millis=500))
    return provider


def get_tracer(provider: TracerProvider) -> trace.Tracer:
    return provider.get_tracer(TRACER_NAME, __version__)
