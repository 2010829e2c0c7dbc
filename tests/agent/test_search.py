"""search_files runs model-supplied patterns on a linear-time engine, off the event loop."""

from __future__ import annotations

import asyncio
import time

import pytest

from bmo.agent.config import FileToolsOptions
from bmo.agent.tools.base import ToolFailed
from bmo.agent.tools.files import SearchFiles
from tests.agent.test_tools import ctx_for


async def max_loop_lag_while(coro) -> tuple[object, float]:
    """Run ``coro`` while a ticker measures how late the event loop wakes it (the worst lag, in seconds)."""
    worst = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        while not done.is_set():
            before = time.monotonic()
            await asyncio.sleep(0.005)
            worst = max(worst, time.monotonic() - before - 0.005)

    tick = asyncio.create_task(ticker())
    try:
        result = await coro
    finally:
        done.set()
        await tick
    return result, worst


async def test_a_catastrophic_pattern_on_a_large_file_does_not_stall_the_event_loop(workspace):
    # 2 MB of lines on which Python's backtracking `re` takes 2**30 steps each.
    (workspace / "big.txt").write_text(("a" * 30 + "!\n") * 65_000)
    (workspace / "hit.txt").write_text("aaaa\n")
    ctx = ctx_for(workspace, **{"agent.file_tools": FileToolsOptions(max_read_bytes=4 * 1024 * 1024)})
    result, lag = await max_loop_lag_while(SearchFiles().run({"pattern": "(a+)+$"}, ctx))
    assert result == "hit.txt:1: aaaa"
    # A backtracking engine on the loop stalls it for hours; 1 s tells that apart even on a loaded machine.
    assert lag < 1.0


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?=a)b", r"(?<!a)b"])
async def test_backreferences_and_lookaround_get_a_clear_tool_error(workspace, pattern):
    with pytest.raises(ToolFailed, match="RE2.*backreferences or lookaround"):
        await SearchFiles().run({"pattern": pattern}, ctx_for(workspace))


async def test_python_style_patterns_re2_supports_keep_working(workspace):
    (workspace / "m.py").write_text("def main():\n    Return = 1\n")
    ctx = ctx_for(workspace)
    assert await SearchFiles().run({"pattern": r"(?i)^\s+return\b"}, ctx) == "m.py:2: Return = 1"
    assert await SearchFiles().run({"pattern": r"def (?P<name>\w+)\("}, ctx) == "m.py:1: def main():"


async def test_search_of_a_single_file_and_of_a_missing_path(workspace):
    (workspace / "one.txt").write_text("x\nneedle\n")
    ctx = ctx_for(workspace)
    assert await SearchFiles().run({"pattern": "needle", "path": "one.txt"}, ctx) == "one.txt:2: needle"
    with pytest.raises(ToolFailed, match="does not exist"):
        await SearchFiles().run({"pattern": "needle", "path": "nope"}, ctx)
