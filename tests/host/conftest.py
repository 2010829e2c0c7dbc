"""Fixtures for the host tests: running the real ``bmo`` CLI in a clean environment."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from bmo.testing.harness import bmo_command, clean_env


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run_bmo(tmp_path):
    """``run_bmo(*args, env={...}, cwd=...)`` runs the real ``bmo`` CLI as a subprocess."""

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60) -> CliResult:
        proc = subprocess.run(
            [*bmo_command(), *args], capture_output=True, text=True, timeout=timeout,
            env=clean_env(tmp_path, **(env or {})), cwd=cwd or tmp_path, stdin=subprocess.DEVNULL,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run
