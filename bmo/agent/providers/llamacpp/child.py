"""The embedded model's child process: llama.cpp's own OpenAI-compatible server (xllamacpp) on a loopback port.

It prints one JSON line, ``{"url": ..., "load_s": ...}``, once the model is loaded and the
server listens, and exits when its parent does (so a killed BMO never leaves a model behind).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve one GGUF model for BMO (kind = \"llamacpp\").")
    parser.add_argument("--model", required=True)
    parser.add_argument("--alias", required=True)
    parser.add_argument("--context-size", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    parent = os.getppid()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before llama.cpp loads: idle threads must not spin
    try:
        import xllamacpp
    except ImportError:
        print(json.dumps({"error": "xllamacpp is not installed: pip install 'bmo[local]'"}), flush=True)
        sys.exit(3)
    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.model_alias = {args.alias}
    params.n_ctx = args.context_size
    # The model's jinja chat template: it puts the offered tools in the prompt, and llama.cpp refuses tools without it.
    params.use_jinja = True
    if args.threads > 0:
        params.cpuparams.n_threads = args.threads
        params.cpuparams_batch.n_threads = args.threads
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # the kernel picks a free port; reported below, so there is no race for it
    started = time.monotonic()
    try:
        server = xllamacpp.Server(params)
    except Exception as exc:  # noqa: BLE001 - the parent reports it as the provider's start failure
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        sys.exit(4)
    print(json.dumps({"url": server.listening_address, "load_s": round(time.monotonic() - started, 3)}), flush=True)
    while os.getppid() == parent:  # re-parented: BMO is gone
        time.sleep(1.0)


if __name__ == "__main__":
    main()
