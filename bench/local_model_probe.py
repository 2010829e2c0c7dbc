"""How often BMO on the embedded local model answers right: seven questions on the config ``bmo init`` writes.

    .venv/bin/python -m bench.local_model_probe [--model FILE.gguf] [--repeat 2] [--temperature none 0.8]

Needs ``pip install -e '.[local]'`` and the test model (``bash scripts/fetch-test-model``). For each
temperature (``none``: the client sends none, so the provider's default applies) it asks every
question ``--repeat`` times through ``/v1/chat/completions`` and prints each answer, its time and
whether it holds the expected text, then the count. A small model's answers vary: this is a
measurement for docs/local-model.md, never a test.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai

from bmo.testing.harness import clean_env, spawn_serve

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / ".cache" / "test-model" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
QUESTIONS = [
    ("What is 2+3?", r"\b5\b"),
    ("What is 7 times 6?", r"\b42\b"),
    ("What is 12-5?", r"\b7\b"),
    ("What is the capital of France?", r"Paris"),
    ("What is 10 divided by 2?", r"\b5\b"),
    ("Use the read_file tool to read notes.txt, then tell me the secret word.", r"(?i)pineapple"),
    ("What does notes.txt say?", r"(?i)pineapple"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--temperature", nargs="+", default=["none", "0.8"])
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bmo-local-probe-"))
    (home / "notes.txt").write_text("The secret word is PINEAPPLE.\n")
    subprocess.run([sys.executable, "-m", "bmo", "init", "--yes", "--probe-port", "9", "--local-model", str(args.model)],
                   cwd=home, env=clean_env(home), check=True, capture_output=True)
    server = spawn_serve(["--allow-no-auth", "--addr", "127.0.0.1:0"], data_dir=home / "data", cwd=home,
                         env=clean_env(home), timeout=300)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=300)
    model = "local/" + args.model.stem  # as bmo init names it
    try:
        for temperature in args.temperature:
            sampling = {} if temperature == "none" else {"temperature": float(temperature)}
            right = 0
            for prompt, expected in QUESTIONS * args.repeat:
                started = time.monotonic()
                answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                                        **sampling).choices[0].message.content or ""
                ok = bool(re.search(expected, answer)) and "Stopped:" not in answer
                right += ok
                print(f"t={temperature} {'ok ' if ok else 'BAD'} {time.monotonic() - started:5.1f}s "
                      f"{prompt[:32]!r}: {answer[:100]!r}", flush=True)
            print(f"== temperature {temperature}: {right} of {len(QUESTIONS) * args.repeat}", flush=True)
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
