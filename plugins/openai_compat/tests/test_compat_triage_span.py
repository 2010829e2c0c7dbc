"""The ambiguity check's model call has a span of its own name, tied to the session and the request."""

from __future__ import annotations

from compat_support import MODEL
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


async def test_the_triage_span_is_named_apart_and_carries_the_conversation_id(compat):
    exporter = InMemorySpanExporter()
    compat.host.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    client = compat.aclient()
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "triage me"}],
        extra_headers={"X-BMO-Session-Id": "s-triage"})
    await client.close()
    request_id = raw.headers["x-request-id"]
    spans = exporter.get_finished_spans()
    triage = [s for s in spans if s.name == "triage fake-model"]
    agent = [s for s in spans if s.name == "chat fake-model"]
    assert len(triage) == 1 and len(agent) == 1
    assert triage[0].attributes["gen_ai.conversation.id"] == "s-triage"
    assert triage[0].attributes["bmo.run_id"] == request_id
    assert triage[0].attributes["bmo.call.purpose"] == "triage"
    assert agent[0].attributes["gen_ai.conversation.id"] == "s-triage"
