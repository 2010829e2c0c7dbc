"""The SSE parser: the event-stream rules, chunk boundaries anywhere, and a bound on the line size."""

from __future__ import annotations

import pytest

from bmo.streaming.sse_parser import SseEvent, SseLineTooLong, SseParser, iter_events


def parse(*chunks: bytes, **kwargs) -> list[SseEvent]:
    parser = SseParser(**kwargs)
    return [event for chunk in chunks for event in parser.feed(chunk)]


def test_data_lines_of_one_event_are_joined_with_newlines():
    assert parse(b"data: one\ndata: two\ndata:three\n\n") == [SseEvent("one\ntwo\nthree")]


def test_only_one_space_after_the_colon_is_dropped():
    assert parse(b"data:  indented\n\ndata:\n\n") == [SseEvent(" indented"), SseEvent("")]


def test_comments_are_skipped_and_dispatch_nothing():
    assert parse(b": keep-alive\n\n:another\ndata: x\n: inside\n\n") == [SseEvent("x")]


def test_event_and_id_name_the_event_and_the_id_sticks():
    events = parse(b"event: run.started\nid: 7\ndata: {}\n\ndata: next\n\n")
    assert events == [SseEvent("{}", event="run.started", id="7"), SseEvent("next", event="message", id="7")]


def test_retry_takes_digits_only_and_unknown_fields_are_ignored():
    parser = SseParser()
    assert parser.feed(b"retry: 2500\nfoo: bar\nretry: soon\ndata: x\n\n") == [SseEvent("x", retry=2500)]
    assert parser.retry == 2500


def test_an_id_with_a_nul_is_ignored():
    assert parse(b"id: a\0b\ndata: x\n\n") == [SseEvent("x", id="")]


def test_an_event_without_data_is_not_dispatched():
    assert parse(b"event: ping\n\nid: 3\n\n") == []


def test_crlf_cr_and_lf_line_ends_all_work():
    expected = [SseEvent("a\nb", event="e")]
    assert parse(b"event: e\r\ndata: a\r\ndata: b\r\n\r\n") == expected
    assert parse(b"event: e\rdata: a\rdata: b\r\r") == expected
    assert parse(b"event: e\ndata: a\r\ndata: b\r\r\n") == expected


def test_a_crlf_split_across_chunks_is_one_line_end():
    assert parse(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == [SseEvent("a\nb")]


def test_a_leading_bom_is_dropped_even_when_split():
    assert parse(b"\xef\xbb\xbfdata: x\n\n") == [SseEvent("x")]
    assert parse(b"\xef", b"\xbb", b"\xbfdata: x\n\n") == [SseEvent("x")]
    assert parse(b"data: \xef\xbb\xbfx\n\n") == [SseEvent("\ufeffx")]  # only at the very start


def test_an_incomplete_event_at_the_end_is_not_dispatched():
    assert parse(b"data: done\n\ndata: cut off") == [SseEvent("done")]


STREAM = (b"\xef\xbb\xbf: hello\r\nevent: delta\r\nid: 41\r\ndata: {\"text\": \"h\xc3\xa9\"}\r\ndata: second\r\n\r\n"
          b"retry: 10\rdata: plain\r\rdata: [DONE]\n\n")
EXPECTED = [SseEvent('{"text": "h\u00e9"}\nsecond', event="delta", id="41"), SseEvent("plain", id="41", retry=10),
            SseEvent("[DONE]", id="41", retry=10)]


def test_a_stream_split_at_every_byte_position_parses_the_same():
    assert parse(STREAM) == EXPECTED
    for cut in range(len(STREAM) + 1):
        assert parse(STREAM[:cut], STREAM[cut:]) == EXPECTED, cut


def test_a_stream_fed_one_byte_at_a_time_parses_the_same():
    assert parse(*(STREAM[i : i + 1] for i in range(len(STREAM)))) == EXPECTED


def test_an_over_long_line_is_refused_with_a_specific_error():
    with pytest.raises(SseLineTooLong) as refused:
        parse(b"data: " + b"x" * 100 + b"\n\n", max_line_bytes=64)
    assert refused.value.limit == 64 and "64 bytes" in str(refused.value)


def test_an_over_long_line_is_refused_before_it_ends_however_it_arrives():
    parser = SseParser(max_line_bytes=64)
    parser.feed(b"data: ok\n\ndata: ")
    with pytest.raises(SseLineTooLong):
        for _ in range(10):  # never a line end: refused once the buffer passes the bound, not at the end
            parser.feed(b"x" * 10)
    with pytest.raises(SseLineTooLong):
        SseParser(max_line_bytes=64).feed(b"data: a\n" + b"y" * 65)


def test_a_line_exactly_at_the_bound_is_read():
    line = b"data: " + b"z" * 58  # 64 bytes
    assert parse(line[:30], line[30:] + b"\n\n", max_line_bytes=64) == [SseEvent("z" * 58)]


async def test_iter_events_reads_an_async_byte_stream():
    async def chunks():
        yield b"data: a\n"
        yield b"\ndata: b\n\n"

    assert [event.data async for event in iter_events(chunks())] == ["a", "b"]
