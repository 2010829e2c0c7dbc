"""OpenTelemetry: request spans reach real OTLP receivers over http/protobuf (oteltap) and gRPC."""

from __future__ import annotations

import asyncio
import queue
import signal
import urllib.request
from concurrent import futures

import aiohttp
import grpc
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from oteltap import OtelTapHttpProtobufReceiver, OtelTapHttpProtobufReceiverSettings

from bmo.hookspecs import hookimpl
from bmo.server.app import get_host
from bmo.testing.harness import clean_env, free_port, spawn_serve, start_server
from bmo.tracing.otel import export_settings

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class NestedSpan:
    """A plugin route that opens its own span, the way model and tool calls do."""

    @hookimpl
    def bmo_routes(self, register):
        async def work(request):
            with get_host(request).tracer.start_as_current_span("test.work"):
                return web.json_response({"ok": True})

        register("GET", "/v1/test/work", work)


def attrs(span) -> dict:
    out = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = value.string_value if value.HasField("string_value") else value.int_value
    return out


async def test_spans_reach_an_otlp_http_receiver_with_nesting_and_traceparent(tmp_path):
    port = free_port()
    async with OtelTapHttpProtobufReceiver(OtelTapHttpProtobufReceiverSettings(http_port=port)) as receiver:
        srv = await start_server(tmp_path / "data", token="t", load_plugins="", plugins=[NestedSpan()],
                                 config_toml=f'[tracing]\notlp_endpoint = "http://127.0.0.1:{port}"\nservice_name = "bmo-test"\n')
        # Wait for the spans before they can arrive (the receiver only tells awaiters about new spans).
        server_span = asyncio.ensure_future(receiver.await_trace(lambda s: s.name == "HTTP GET /v1/test/work", timeout=60))
        child = asyncio.ensure_future(receiver.await_trace(lambda s: s.name == "test.work", timeout=60))
        refused = asyncio.ensure_future(receiver.await_trace(lambda s: s.name == "HTTP GET /v1/bmo/plugins", timeout=60))
        await asyncio.sleep(0)
        try:
            headers = srv.headers(traceparent=f"00-{TRACE_ID}-{PARENT_ID}-01", **{"User-Agent": "otel-test/1"})
            async with aiohttp.ClientSession() as client:
                async with client.get(srv.api + "/test/work", headers=headers) as resp:
                    assert resp.status == 200
                async with client.get(srv.api + "/bmo/plugins") as resp:
                    assert resp.status == 401
        finally:
            await srv.stop()  # shutting the provider down flushes the batch
        server_span, child, refused = await asyncio.gather(server_span, child, refused)

    assert server_span.trace_id.hex() == TRACE_ID and server_span.parent_span_id.hex() == PARENT_ID
    assert server_span.kind == server_span.SPAN_KIND_SERVER
    assert attrs(server_span).items() >= {
        "http.request.method": "GET", "http.route": "/v1/test/work", "url.path": "/v1/test/work",
        "http.response.status_code": 200, "user_agent.original": "otel-test/1",
    }.items()
    assert child.trace_id == server_span.trace_id and child.parent_span_id == server_span.span_id
    assert attrs(refused)["http.response.status_code"] == 401


class TraceCollector(trace_service_pb2_grpc.TraceServiceServicer):
    """The official OTLP TraceService, keeping every span it is sent."""

    def __init__(self):
        self.spans: queue.Queue = queue.Queue()

    def Export(self, request, context):
        for resource_spans in request.resource_spans:
            service = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}.get("service.name")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.put((service, span))
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def grpc_receiver():
    collector = TraceCollector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield collector, port
    server.stop(grace=None)


def test_spans_from_bmo_serve_reach_a_grpc_receiver_configured_by_otel_env(tmp_path, grpc_receiver):
    collector, port = grpc_receiver
    env = clean_env(tmp_path, BMO_LOAD_PLUGINS="", OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
                    OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTEL_SERVICE_NAME="bmo-grpc-test")
    server = spawn_serve(["--auth-token", "tok", "--addr", "127.0.0.1:0"], data_dir=tmp_path / "data", env=env)
    try:
        assert server.url, server.stderr()
        req = urllib.request.Request(server.url + "/v1/bmo/plugins", headers={"Authorization": "Bearer tok"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
    finally:
        assert server.terminate(signal.SIGTERM) == 0, server.stderr()
    seen = []
    while True:  # the exporter flushed at shutdown, so everything is already here or nowhere
        try:
            seen.append(collector.spans.get(timeout=30 if not seen else 0))
        except queue.Empty:
            break
    names = {(service, span.name) for service, span in seen}
    assert ("bmo-grpc-test", "HTTP GET /v1/bmo/plugins") in names


def test_export_settings_follow_tracing_config_then_otel_env():
    class Opts:
        otlp_endpoint = ""
        otlp_protocol = ""

    assert export_settings(Opts(), {}) is None
    assert export_settings(Opts(), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}) == ("http/protobuf", "http://c:4318/v1/traces")
    # The signal-specific variable is a full URL, used as is.
    assert export_settings(Opts(), {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c/custom"}) == ("http/protobuf", "http://c/custom")
    assert export_settings(Opts(), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}) == ("grpc", "http://c:4317")
    assert export_settings(Opts(), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}) is None
    configured = Opts()
    configured.otlp_endpoint, configured.otlp_protocol = "http://mine:4318/v1/traces", "http/protobuf"
    assert export_settings(configured, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:4318"}) == ("http/protobuf", "http://mine:4318/v1/traces")
    configured.otlp_protocol = "thrift"
    with pytest.raises(ValueError, match="grpc"):
        export_settings(configured, {})
