"""Checks of the bench's own measuring pieces (not part of the project suite).

Run: ``/tmp/venv/bin/python -m pytest -q bench/test_bench.py`` (any Python with pytest + aiohttp).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.loadgen import FIRST_CONTENT, percentiles, stream_content_chars
from bench.report import goals, ratios
from bench.scenarios import S256, SHORT
from bench.upstream import Answers, Profile

REPO = Path(__file__).resolve().parent.parent


def test_profile_pieces_add_up_to_the_answer():
    for p in (SHORT, S256, Profile("odd", tokens=10, chunks=3, delay_s=0)):
        assert len(p.pieces()) == p.chunks
        assert "".join(p.pieces()) == p.text()


def test_stream_frames_carry_exactly_the_answer_text():
    answers = Answers([S256])
    raw = b"".join(answers.stream_frames(S256, include_usage=True))
    # undo the chunked transfer encoding: every frame is "<hex>\r\n<data>\r\n"
    body = b""
    while raw:
        size, _, rest = raw.partition(b"\r\n")
        n = int(size, 16)
        body, raw = body + rest[:n], rest[n + 2:]
    chars, done = stream_content_chars(body + b"data: [DONE]\n\n")
    assert chars == len(S256.text()) and done


def test_first_content_ignores_role_chunk_and_reasoning():
    assert not FIRST_CONTENT.search(b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}')
    assert not FIRST_CONTENT.search(b'data: {"choices":[{"delta":{"reasoning_content":"thinking"}}]}')
    assert FIRST_CONTENT.search(b'data: {"choices":[{"delta":{"content":"hi"}}]}')
    assert FIRST_CONTENT.search(b'data: {"choices": [{"delta": {"content": "hi"}}]}')


def test_percentiles_nearest_rank():
    p = percentiles([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert p["p50"] == 50.0 and p["p99"] == 99.0 and p["max"] == 100.0 and p["n"] == 100
    assert percentiles([]) is None


def test_ratios_and_goals_from_measurements():
    def m(target, rps, p50, p99, cpu=1.0):
        return {"phase": "matrix", "target": target, "scenario": "nonstream-c16-stateless", "rps": rps,
                "latency_ms": {"p50": p50, "p99": p99}, "ttfc_ms": None, "server_cpu_ms_per_req": cpu}

    ms = [m("direct", 1000, 1.0, 2.0), m("bmo", 500, 2.5, 9.0), m("litellm", 100, 20.0, 40.0)]
    row = ratios(ms)[0]
    assert row["bmo_over_direct_rps"] == 0.5 and row["bmo_over_litellm_rps"] == 5.0
    assert row["added_latency_p50_ms"] == 1.5 and row["added_latency_p99_ms"] == 7.0
    met = {g["goal"]: g["met"] for g in goals({"measurements": ms})}
    assert met["added latency p50 ≤ 2 ms (non-streaming, c=16)"] is True
    assert met["added latency p99 ≤ 10 ms (non-streaming, c=16)"] is True


def test_upstream_and_loadgen_processes_talk(tmp_path):
    """The real processes: upstream answers, the load generator checks and times the answers."""
    up = subprocess.Popen([sys.executable, "-m", "bench.upstream", "--port", "0", "--profile", "short:16:16:0"],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = int(up.stdout.readline().split()[1])
        cmd = {"op": "run", "url": f"http://127.0.0.1:{port}/v1/chat/completions", "stream": True,
               "body": {"model": "short", "stream": True, "messages": []}, "concurrency": 2,
               "max_requests": 20, "duration_s": 5, "warmup_s": 0, "expect_chars": len(SHORT.text()),
               "verify_every": 1}
        out = subprocess.run([sys.executable, "-m", "bench.loadgen"], cwd=REPO, input=json.dumps(cmd) + "\n",
                             capture_output=True, text=True, timeout=60).stdout.splitlines()
        assert out[0] == "READY"
        result = json.loads(out[1])
        assert result["ok"] == 20 and result["errors"] == {} and result["ttfc_ms"]["n"] == 20
    finally:
        up.terminate()
        up.wait(10)


def test_baseline_rows_pair_this_build_with_the_baseline_per_scenario():
    from bench.report import baseline_rows

    def m(target, scenario, rps, cpu):
        return {"phase": "matrix", "target": target, "scenario": scenario, "rps": rps,
                "server_cpu_ms_per_req": cpu, "latency_ms": {"p50": 1.0}}

    rows = baseline_rows([m("bmo", "a", 200.0, 1.0), m("bmo-base", "a", 100.0, 2.0), m("bmo", "b", 50.0, 1.0)])
    assert [(r["scenario"], r["ratio"], r["base_cpu"]) for r in rows] == [("a", 2.0, 2.0)]


def test_two_instances_reads_sse_text_and_checks_what_each_409_named():
    from bench.two_instances import queued_check, sse_text, summarise_resumes

    raw = (b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n'
           b'data: {"choices":[{"delta":{"content":"lorem "}}]}\n\ndata: {"choices":[{"delta":{"content":"ipsum"}}]}\n\n'
           b'data: {"choices":[],"usage":{"total_tokens":3}}\n\ndata: [DONE]\n\n')
    assert sse_text(raw) == ("lorem ipsum", True)
    assert sse_text(raw[:60]) == ("", False)
    oks = {"r1": ("s1", "bmo-a"), "r2": ("s2", "bmo-b")}
    q = queued_check(oks, [("s1", "bmo-b", "r1"), ("s2", "bmo-b", "r2"), ("s1", "bmo-a", "r2"), ("s3", "bmo-a", "r9")],
                     {"r9": ("s3", "bmo-b")})
    assert (q["named_turn_of_session"], q["named_turn_on_other_instance"], q["named_unknown"]) == (2, 1, 2)
    assert q["unknown_samples"][0].endswith("a 200 of session s2")
    assert q["unknown_samples"][1].endswith("a 409 of session s3 on bmo-b")
    s = summarise_resumes([{"session": "a", "result": "match", "resume_first_chunk_s": 0.02},
                           {"session": "b", "result": "mismatch", "detail": "x"}])
    assert s["counts"] == {"match": 1, "mismatch": 1} and s["failures"][0]["session"] == "b"
    assert s["resume_first_chunk_ms"]["p50"] == 20.0
