"""Structured output, autocomplete and a safe retry against BMO with the official openai SDK.

    export BMO_AUTH_TOKEN=...                      # the token given to `bmo serve --auth-token`
    export BMO_BASE_URL=http://127.0.0.1:9000/v1   # default
    export BMO_MODEL=local/qwen2.5-coder           # default: the first id GET /v1/models lists
    python examples/openai_sdk/structured.py
"""

from __future__ import annotations

import os
import sys
import uuid

from openai import OpenAI
from pydantic import BaseModel


class Weather(BaseModel):
    city: str
    celsius: int


def main() -> int:
    client = OpenAI(base_url=os.environ.get("BMO_BASE_URL", "http://127.0.0.1:9000/v1"),
                    api_key=os.environ.get("BMO_AUTH_TOKEN", "unused-without-a-token"))
    model = os.environ.get("BMO_MODEL") or client.models.list().data[0].id
    print(f"model: {client.models.retrieve(model).id}")

    # 1. The agent may use its tools; its final answer is held to the schema (checked, repaired once).
    parsed = client.chat.completions.parse(
        model=model, response_format=Weather,
        messages=[{"role": "user", "content": "What is the weather in Oslo? Answer with city and celsius."}])
    print(f"parsed: {parsed.choices[0].message.parsed!r}")

    # 2. Autocomplete: one direct model call, fill-in-the-middle with a suffix.
    completion = client.completions.create(model=model, prompt="def add(a, b):\n", suffix="\n\nprint(add(1, 2))\n",
                                           max_tokens=32)
    print(f"completion: {completion.choices[0].text!r}")

    # 3. A retry with the same Idempotency-Key follows the first attempt's run instead of starting another.
    key = {"Idempotency-Key": str(uuid.uuid4())}
    messages = [{"role": "user", "content": "Say one word."}]
    first = client.chat.completions.create(model=model, messages=messages, extra_headers=key)
    again = client.chat.completions.create(model=model, messages=messages, extra_headers=key)
    print(f"same answer on retry: {first.choices[0].message.content == again.choices[0].message.content}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
