"""Talk to BMO with the official openai SDK: one answer, one streamed answer, one session.

    export BMO_AUTH_TOKEN=...                      # the token given to `bmo serve --auth-token`
    export BMO_BASE_URL=http://127.0.0.1:9000/v1   # default
    export BMO_MODEL=local/qwen2.5-coder           # default: the first id GET /v1/models lists
    python examples/openai_sdk/chat.py "What is in notes.txt?"
"""

from __future__ import annotations

import os
import sys
import uuid

from openai import OpenAI


def main() -> int:
    question = " ".join(sys.argv[1:]) or "Say hello in five words."
    client = OpenAI(base_url=os.environ.get("BMO_BASE_URL", "http://127.0.0.1:9000/v1"),
                    api_key=os.environ.get("BMO_AUTH_TOKEN", "unused-without-a-token"))
    model = os.environ.get("BMO_MODEL") or client.models.list().data[0].id
    print(f"model: {model}")

    # 1. A plain answer; X-Request-Id is the key of this request in BMO's run ledger and logs.
    raw = client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": question}])
    answer = raw.parse()
    print(f"answer ({raw.headers['x-request-id']}): {answer.choices[0].message.content}")

    # 2. Streamed, with usage at the end; BMO's own tool activity arrives as reasoning_content.
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                            stream=True, stream_options={"include_usage": True})
    print("streamed: ", end="", flush=True)
    for chunk in stream:
        if chunk.choices:
            delta = chunk.choices[0].delta
            thinking = getattr(delta, "reasoning_content", None)
            if thinking:
                print(f"[{thinking.strip()}] ", end="", flush=True)
            print(delta.content or "", end="", flush=True)
        elif chunk.usage:
            print(f"\nusage: {chunk.usage.total_tokens} tokens")

    # 3. A session: BMO keeps the history, so the follow-up only needs the new message.
    session = {"X-BMO-Session-Id": f"example-{uuid.uuid4().hex[:8]}"}
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Remember the word: teal."}],
                                   extra_headers=session)
    follow = client.chat.completions.create(model=model, extra_headers=session,
                                            messages=[{"role": "user", "content": "Which word did I ask you to remember?"}])
    print(f"session {session['X-BMO-Session-Id']}: {follow.choices[0].message.content}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
