"""instructor: a response model through tool calling (its default mode) and through JSON-schema mode.

Opt-in (marker ``clients_instructor``): instructor pins ``jiter<0.15``, which forces ``openai`` down to
3.3 in the venv it joins, so it runs in a venv of its own; see docs/clients.md.
"""

from __future__ import annotations

import os

import pytest

from tests.clients.conftest import INSTRUCTOR_ENV

if os.environ.get(INSTRUCTOR_ENV) != "1":  # before the import: instructor is not in the default venv
    pytest.skip(f"opt-in: set {INSTRUCTOR_ENV}=1 in a venv with instructor", allow_module_level=True)

import instructor  # noqa: E402
import openai  # noqa: E402

from bmo.testing.fake_upstream import reply, tool_call  # noqa: E402
from tests.clients.cases import City, city_json  # noqa: E402
from tests.clients.conftest import MODEL, TOKEN  # noqa: E402

pytestmark = pytest.mark.clients_instructor


def client(bmo, mode) -> instructor.AsyncInstructor:
    return instructor.from_openai(openai.AsyncOpenAI(base_url=bmo.base_url, api_key=TOKEN, max_retries=0), mode=mode)


async def test_client_tools(bmo):
    # TOOLS mode: the model calls a tool named after the response model; BMO hands the call back.
    bmo.up.script(reply(tool_calls=[tool_call("City", {"name": "Oslo", "population": 700000})]))
    city = await client(bmo, instructor.Mode.TOOLS).chat.completions.create(
        model=MODEL, response_model=City, max_retries=0, messages=[{"role": "user", "content": "Oslo?"}])
    assert city.model_dump() == {"name": "Oslo", "population": 700000}


async def test_chat(bmo):
    text = await client(bmo, instructor.Mode.TOOLS).chat.completions.create(
        model=MODEL, response_model=None, messages=[{"role": "user", "content": "hi inst"}])
    assert text.choices[0].message.content == "echo: hi inst"


async def test_structured_output(bmo):
    bmo.up.script(city_json())
    city = await client(bmo, instructor.Mode.JSON_SCHEMA).chat.completions.create(
        model=MODEL, response_model=City, max_retries=0, messages=[{"role": "user", "content": "Oslo?"}])
    assert city.model_dump() == {"name": "Oslo", "population": 700000}
