"""Tool calls written as text (recorded small-model outputs) become structured calls; prose never does."""

from __future__ import annotations

import json

import msgspec
import pytest

from bmo.agent.config import ProviderOptions
from bmo.agent.events import TextDelta
from bmo.agent.messages import ChatMessage
from bmo.agent.providers import openai
from bmo.agent.providers.base import ModelTurn
from bmo.agent.providers.text_tool_calls import TextToolCalls, parse
from bmo.testing.fake_upstream import FakeUpstream, reply

OFFERED = {"read_file", "list_dir"}
TOOLS = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}} for n in sorted(OFFERED)]

# Recorded from Qwen2.5-Coder-0.5B-Instruct and similar small models asked to use tools.
BARE = '{"name": "read_file", "arguments": {"path": "notes.txt"}}'
FENCED = '```json\n{\n  "name": "read_file",\n  "arguments": {\n    "path": "notes.txt"\n  }\n}\n```'
TAGGED = '<tool_call>\n{"name": "read_file", "arguments": {"path": "notes.txt"}}\n</tool_call>'
TAGGED_AFTER_PROSE = 'Let me read the file first.\n<tool_call>\n{"name": "read_file", "arguments": {"path": "notes.txt"}}\n</tool_call>'
PROSE_WITH_JSON = ('To call a tool, a model writes JSON such as {"name": "read_file", "arguments": {"path": "a"}} '
                   "and the host runs it.")
FENCED_PROSE = 'Here is the config:\n```json\n{"name": "read_file", "arguments": {}}\n```\nThat is all.'
NOT_OFFERED = '{"name": "delete_everything", "arguments": {"path": "/"}}'
JSON_ANSWER = '{"result": 5, "explanation": "2+3 is 5"}'
EXTRA_KEYS = '{"name": "read_file", "arguments": {"path": "a"}, "confidence": 0.9}'
STRING_ARGUMENTS = '{"name": "read_file", "arguments": "{\\"path\\": \\"notes.txt\\"}"}'
# Recorded in the opt-in read_file turn: the model stopped before its last closing brace.
MISSING_BRACE = '{"name": "read_file", "arguments": {"path": "notes.txt"}'
CALLS = [BARE, FENCED, TAGGED, STRING_ARGUMENTS, MISSING_BRACE]
PROSE = [PROSE_WITH_JSON, FENCED_PROSE, NOT_OFFERED, JSON_ANSWER, EXTRA_KEYS, "Hello! 2+3 is 5.", "{", ""]


@pytest.mark.parametrize("text", CALLS, ids=["bare", "fenced", "tagged", "string_arguments", "missing_brace"])
def test_a_call_written_as_text_parses_into_a_structured_call(text):
    prose, calls = parse(text, OFFERED)
    assert prose == ""
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("read_file", {"path": "notes.txt"})]


def test_several_bare_calls_one_per_line_are_several_calls():
    # Recorded: Qwen2.5-Coder-0.5B asked "What is 2+3?" with BMO's tools offered.
    text = ('{"name": "read_file", "arguments": {"path": "2+3.txt"}}\n'
            '{"name": "list_dir", "arguments": {"path": "."}}')
    assert [c.name for c in parse(text, OFFERED)[1]] == ["read_file", "list_dir"]
    assert parse(text + "\nand then I answer", OFFERED) == (text + "\nand then I answer", [])
    # Recorded at temperature 0.8: the same, in one ```json fence.
    assert [c.name for c in parse("```json\n" + text + "\n```", OFFERED)[1]] == ["read_file", "list_dir"]


def test_prose_before_a_tagged_call_stays_as_text():
    prose, calls = parse(TAGGED_AFTER_PROSE, OFFERED)
    assert prose == "Let me read the file first." and [c.name for c in calls] == ["read_file"]


@pytest.mark.parametrize("text", PROSE, ids=["prose_json", "fenced_in_prose", "not_offered", "json_answer",
                                             "extra_keys", "plain", "brace", "empty"])
def test_text_that_is_not_a_call_of_an_offered_tool_stays_text(text):
    assert parse(text, OFFERED) == (text, [])


# Recorded from Qwen2.5-Coder-0.5B offered the file reads: "What is 2+3?", and a read with a made-up second call.
MADE_UP = '{"name": "add", "arguments": {"a": 2, "b": 3}}'
READ_AND_MADE_UP = ('{"name": "read_file", "arguments": {"path": "notes.txt"}}\n'
                    '{"name": "secret_word", "arguments": {"pattern": "secret", "path": "."}}')


def test_with_any_name_a_call_to_a_tool_that_was_not_offered_is_a_call_for_the_loop_to_refuse():
    assert parse(MADE_UP, OFFERED) == (MADE_UP, [])
    assert [(c.name, json.loads(c.arguments)) for c in parse(MADE_UP, OFFERED, any_name=True)[1]] == [
        ("add", {"a": 2, "b": 3})]
    assert [c.name for c in parse(READ_AND_MADE_UP, OFFERED, any_name=True)[1]] == ["read_file", "secret_word"]
    assert parse(READ_AND_MADE_UP, OFFERED) == (READ_AND_MADE_UP, [])
    # Recorded: arguments that are an expression, not JSON. The loop tells the model they are not valid.
    malformed = '{"name": "multiply", "arguments": {"product": 7 * 6}}'
    assert parse(malformed, OFFERED) == (malformed, [])
    assert [(c.name, c.arguments) for c in parse(malformed, OFFERED, any_name=True)[1]] == [
        ("multiply", '{"product": 7 * 6}')]


@pytest.mark.parametrize("text", [t for t in PROSE if t != NOT_OFFERED] + ['{"name": "Bob"}', '{"name": "two words", "arguments": {}}',
                                          '{"name": 5, "arguments": {}}'])
def test_with_any_name_prose_and_objects_not_shaped_as_calls_stay_text(text):
    assert parse(text, OFFERED, any_name=True) == (text, [])


def test_nothing_is_a_call_when_no_tool_is_offered():
    assert parse(BARE, set()) == (BARE, [])


async def _run(text: str, pieces: int) -> tuple[list[str], ModelTurn]:
    """Feed ``text`` split in ``pieces`` deltas through the recogniser; the deltas passed on and the final turn."""
    size = max(1, -(-len(text) // pieces))
    chunks = [text[i:i + size] for i in range(0, len(text), size)]

    async def items():
        for c in chunks:
            yield TextDelta(text=c)
        yield ModelTurn(text=text, finish_reason="stop")

    out = [i async for i in TextToolCalls(OFFERED).wrap(items())]
    assert isinstance(out[-1], ModelTurn)
    return [i.text for i in out[:-1]], out[-1]


@pytest.mark.parametrize("pieces", [1, 3, 50])
@pytest.mark.parametrize("text", CALLS, ids=["bare", "fenced", "tagged", "string_arguments", "missing_brace"])
async def test_a_streamed_text_call_passes_on_no_text_and_ends_as_a_tool_call(text, pieces):
    deltas, turn = await _run(text, pieces)
    assert deltas == [] and turn.text == ""
    assert turn.finish_reason == "tool_calls"
    assert [(c.function.name, json.loads(c.function.arguments)) for c in turn.tool_calls] == [
        ("read_file", {"path": "notes.txt"})]


@pytest.mark.parametrize("pieces", [1, 3, 50])
@pytest.mark.parametrize("text", PROSE[:-1], ids=["prose_json", "fenced_in_prose", "not_offered", "json_answer",
                                                  "extra_keys", "plain", "brace"])
async def test_streamed_prose_arrives_whole_and_unchanged(text, pieces):
    deltas, turn = await _run(text, pieces)
    assert "".join(deltas) == text and turn.text == text
    assert turn.tool_calls == [] and turn.finish_reason == "stop"


async def test_prose_streams_as_it_arrives_not_at_the_end():
    text = "The answer is five. " * 10
    deltas, _ = await _run(text, 50)
    assert len(deltas) >= 40  # held back at most the few characters that may open a <tool_call> tag


async def test_prose_before_a_streamed_tagged_call_is_passed_on_first():
    deltas, turn = await _run(TAGGED_AFTER_PROSE, 40)
    assert "".join(deltas) == "Let me read the file first.\n"
    assert turn.text == "Let me read the file first." and [c.function.name for c in turn.tool_calls] == ["read_file"]


def _provider(up: FakeUpstream, **options) -> openai.OpenAIProvider:
    return openai.create("local", msgspec.convert({"base_url": up.base_url, "models": ["fake-model"], **options},
                                                  ProviderOptions))


@pytest.mark.parametrize("text", CALLS, ids=["bare", "fenced", "tagged", "string_arguments", "missing_brace"])
async def test_the_openai_kind_with_text_tool_calls_on_returns_a_tool_call_from_a_real_stream(text):
    async with FakeUpstream() as up:
        provider = _provider(up, text_tool_calls=True)
        up.script(reply(text, chunks=7))
        try:
            items = [i async for i in provider.stream("fake-model", [ChatMessage(role="user", content="read it")],
                                                      tools=TOOLS)]
        finally:
            await provider.close()
    turn = items[-1]
    assert not [i for i in items if isinstance(i, TextDelta)]
    assert turn.finish_reason == "tool_calls" and turn.tool_calls[0].function.name == "read_file"


async def test_the_openai_kind_leaves_text_calls_alone_by_default():
    async with FakeUpstream() as up:
        provider = _provider(up)
        up.script(reply(BARE, chunks=3))
        try:
            items = [i async for i in provider.stream("fake-model", [ChatMessage(role="user", content="hi")],
                                                      tools=TOOLS)]
        finally:
            await provider.close()
    assert items[-1].text == BARE and items[-1].tool_calls == []


async def test_tool_choice_none_keeps_a_text_call_as_text():
    async with FakeUpstream() as up:
        provider = _provider(up, text_tool_calls=True)
        up.script(reply(BARE, chunks=3))
        try:
            items = [i async for i in provider.stream("fake-model", [ChatMessage(role="user", content="hi")],
                                                      tools=TOOLS, tool_choice="none")]
        finally:
            await provider.close()
    assert items[-1].text == BARE and items[-1].tool_calls == []
