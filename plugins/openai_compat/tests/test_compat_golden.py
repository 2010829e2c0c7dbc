"""TestOpenAICompatGoldenContract: every compat route's exact wire shapes, success and error."""

from __future__ import annotations

import json
import os

import pytest
from golden_cases import GOLDEN_DIR, REFERENCE_DOC, doc_blocks, load_cases, render_example, rewrite_doc_blocks, run_case

UPDATE = os.environ.get("BMO_UPDATE_GOLDEN") == "1"


class TestOpenAICompatGoldenContract:
    async def test_every_route_answers_exactly_as_pinned(self, start_compat):
        compat = await start_compat(keepalive_interval_s=30.0)
        cases = load_cases()
        assert cases, f"no golden cases in {GOLDEN_DIR}"
        ids: dict[str, str] = {}
        mismatches = []
        for case in cases:
            got = await run_case(compat, case, ids)
            if UPDATE:
                case["response"] = got
                (GOLDEN_DIR / f"{case['name']}.json").write_text(json.dumps(case, indent=2, ensure_ascii=False) + "\n")
            elif got != case["response"]:
                mismatches.append((case["name"], got, case["response"]))
        if UPDATE:
            REFERENCE_DOC.write_text(rewrite_doc_blocks(REFERENCE_DOC.read_text(), cases))
        assert not mismatches, "\n\n".join(
            f"{name}:\n got      {json.dumps(got)}\n expected {json.dumps(want)}" for name, got, want in mismatches)

    def test_reference_doc_curl_examples_match_the_fixtures(self):
        blocks = doc_blocks(REFERENCE_DOC.read_text())
        cases = load_cases()
        missing = [c["name"] for c in cases if c["name"] not in blocks]
        assert not missing, f"{REFERENCE_DOC} has no example for {missing}"
        for case in cases:
            assert blocks[case["name"]] == render_example(case), f"example {case['name']} drifted from its fixture"

    @pytest.mark.parametrize("case", load_cases(), ids=lambda c: c["name"])
    def test_fixture_is_complete(self, case):
        assert case["response"] is not None, "run with BMO_UPDATE_GOLDEN=1 to record it"
        assert "x-request-id" in case["response"]["headers"] or case["request"]["path"].endswith("/posture")
