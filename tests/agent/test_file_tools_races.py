"""File tools against a hostile workspace: planted symlinks, hard links, FIFOs and a swapping attacker."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from bmo.agent.tools.base import ToolFailed
from bmo.agent.tools.files import EditFile, ListDir, ReadFile, SearchFiles, WriteFile
from tests.agent.test_tools import ctx_for


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` with its bytes (symlinks not followed)."""
    out = {}
    for dirpath, _, filenames in os.walk(directory):
        for name in filenames:
            path = Path(dirpath) / name
            out[str(path.relative_to(directory))] = b"<symlink>" if path.is_symlink() else path.read_bytes()
    return out


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    (out / "victim.txt").write_text("precious")
    return out


async def test_write_file_through_a_planted_temporary_symlink_changes_nothing_outside(workspace, outside):
    (workspace / ".notes.txt.bmo-tmp").symlink_to(outside / "victim.txt")
    before = snapshot(outside)
    assert "wrote 3 bytes" in await WriteFile().run({"path": "notes.txt", "content": "new"}, ctx_for(workspace))
    assert snapshot(outside) == before
    assert (workspace / "notes.txt").read_text() == "new" and not (workspace / "notes.txt").is_symlink()
    assert [p.name for p in workspace.iterdir() if p.name.endswith(".bmo-tmp")] == [".notes.txt.bmo-tmp"]


async def test_a_hard_link_to_a_file_outside_is_refused_for_reads_and_writes(workspace, outside):
    os.link(outside / "victim.txt", workspace / "linked.txt")
    before = snapshot(outside)
    ctx = ctx_for(workspace)
    for tool, args in [(ReadFile(), {}), (WriteFile(), {"content": "pwned"}), (EditFile(), {"old": "precious", "new": "x"})]:
        with pytest.raises(ToolFailed, match="2 hard links"):
            await tool.run({"path": "linked.txt", **args}, ctx)
    assert "precious" not in await SearchFiles().run({"pattern": "precious"}, ctx)
    assert snapshot(outside) == before


async def test_a_directory_swapped_for_a_symlink_never_lands_a_write_outside(workspace, outside):
    """An attacker swaps ``d`` for a symlink to outside in a loop while 300 writes go into ``d/``."""
    (workspace / "d").mkdir()
    before = snapshot(outside)
    stop = threading.Event()
    swaps = 0

    def attacker() -> None:
        nonlocal swaps
        n = 0
        while not stop.is_set():
            n += 1
            held = workspace / f"held{n}"
            try:
                os.rename(workspace / "d", held)
                os.symlink(outside, workspace / "d")
                swaps += 1
                os.unlink(workspace / "d")
                os.rename(held, workspace / "d")
            except OSError:
                pass  # a write recreated d in between: go on swapping whatever is there

    thread = threading.Thread(target=attacker, daemon=True)
    thread.start()
    for _ in range(1000):  # let the attacker get going before the writes start
        if swaps:
            break
        await asyncio.sleep(0.01)
    ctx = ctx_for(workspace)
    refused = 0
    try:
        for i in range(300):
            try:
                await WriteFile().run({"path": f"d/f{i}.txt", "content": f"write {i}"}, ctx)
            except (ToolFailed, OSError):  # the loop reports either to the model as a tool error
                refused += 1
    finally:
        stop.set()
        thread.join(10)
    assert swaps > 0
    assert snapshot(outside) == before  # not one byte outside, however the 300 writes went
    landed = list(workspace.rglob("f*.txt"))  # under d/ or wherever the attacker moved d to, all inside
    assert len(landed) == 300 - refused


async def test_reading_a_fifo_is_refused_at_once(workspace):
    os.mkfifo(workspace / "pipe")
    ctx = ctx_for(workspace)
    # The guard only keeps a broken build from hanging the suite; a correct one answers immediately.
    with pytest.raises(ToolFailed, match="not a regular file"):
        await asyncio.wait_for(ReadFile().run({"path": "pipe"}, ctx), 30)
    (workspace / "a.txt").write_text("findme\n")
    assert await asyncio.wait_for(SearchFiles().run({"pattern": "findme"}, ctx), 30) == "a.txt:1: findme"


async def test_symlinks_that_stay_inside_the_workspace_still_work(workspace):
    (workspace / "real").mkdir()
    (workspace / "real" / "a.txt").write_text("inside")
    (workspace / "alias").symlink_to("real")
    (workspace / "abs.txt").symlink_to(workspace / "real" / "a.txt")
    ctx = ctx_for(workspace)
    assert await ReadFile().run({"path": "alias/a.txt"}, ctx) == "inside"
    assert await ReadFile().run({"path": "abs.txt"}, ctx) == "inside"
    assert await ListDir().run({"path": "alias"}, ctx) == "a.txt"
    assert "wrote 3 bytes to real/b.txt" in await WriteFile().run({"path": "alias/b.txt", "content": "new"}, ctx)
    assert (workspace / "real" / "b.txt").read_text() == "new"


async def test_a_relative_symlink_climbing_out_of_the_workspace_is_refused(workspace, outside):
    (workspace / "up").symlink_to(Path("..") / "outside")
    ctx = ctx_for(workspace)
    with pytest.raises(ToolFailed, match="symlink that points outside"):
        await WriteFile().run({"path": "up/victim.txt", "content": "x"}, ctx)
    with pytest.raises(ToolFailed, match="symlink that points outside"):
        await ReadFile().run({"path": "up/victim.txt"}, ctx)
    assert (outside / "victim.txt").read_text() == "precious"


async def test_a_write_keeps_the_mode_of_the_file_it_replaces(workspace):
    script = workspace / "run.sh"
    script.write_text("echo old\n")
    script.chmod(0o755)
    await WriteFile().run({"path": "run.sh", "content": "echo new\n"}, ctx_for(workspace))
    assert script.stat().st_mode & 0o777 == 0o755 and script.read_text() == "echo new\n"
