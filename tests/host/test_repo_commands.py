"""The README's two commands and CI: what they say, and that an empty test run cannot pass."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETUP_AND_SERVE = "bash scripts/setup && { [ -f bmo.toml ] || .venv/bin/bmo init --yes; } && .venv/bin/bmo serve --allow-no-auth"
TEST = "bash scripts/test"


def test_the_readme_opens_with_the_setup_and_test_commands():
    text = (ROOT / "README.md").read_text()
    first_block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in first_block.splitlines()]
    assert commands == [SETUP_AND_SERVE, TEST]
    # Nothing but the title comes before them.
    assert text.index("```bash") < text.index("\n## ")


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec bash scripts/test" in ci


def _fake_checkout(tmp_path: Path, pytest_exit: int) -> Path:
    """A copy of scripts/test next to a stand-in setup and a stand-in .venv python exiting ``pytest_exit``."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "test", tmp_path / "scripts" / "test")
    (tmp_path / "scripts" / "setup").write_text("exit 0\n")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f"#!/bin/sh\necho \"pytest $*\"\nexit {pytest_exit}\n")
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    return tmp_path


def test_scripts_test_fails_when_pytest_collects_nothing(tmp_path):
    repo = _fake_checkout(tmp_path, pytest_exit=5)
    result = subprocess.run(["bash", "scripts/test", "-k", "nothing"], cwd=repo, capture_output=True, text=True,
                            timeout=60, env={**os.environ})
    assert result.returncode == 1
    assert "collected no tests" in result.stderr
    assert "-k nothing" in result.stdout  # extra arguments reach pytest


def test_scripts_test_passes_pytest_results_through(tmp_path):
    for name, code in (("green", 0), ("red", 1)):
        (tmp_path / name).mkdir()
        repo = _fake_checkout(tmp_path / name, pytest_exit=code)
        assert subprocess.run(["bash", "scripts/test"], cwd=repo, capture_output=True, timeout=60).returncode == code
