"""The one way a tool starts a process: ``Sandbox.for_host(host).run(command, ...)``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bmo.agent.sandbox import cgroup
from bmo.agent.sandbox.bwrap import bwrap_argv, prlimit_prefix, synthetic_files
from bmo.agent.sandbox.config import SandboxOptions
from bmo.agent.sandbox.environment import command_env
from bmo.agent.sandbox.probe import Programs, find_programs
from bmo.agent.sandbox.process import CommandResult, run_bounded
from bmo.agent.tools.base import ToolFailed

BWRAP_MISSING = (
    "bubblewrap (bwrap) is not on the server's PATH, and [agent.sandbox] mode = \"bwrap\" runs every command "
    "inside it. Install the Debian package 'bubblewrap' (apt-get install bubblewrap), or set "
    "[agent.sandbox] mode = \"off\" to run commands unsandboxed."
)


class SandboxUnavailable(ToolFailed):
    """A command was asked for, but the configured sandbox cannot run here."""


@dataclass(frozen=True)
class Sandbox:
    """The configured sandbox of one host: options, the programs found, and what it must hide."""

    options: SandboxOptions
    programs: Programs
    host_env: dict[str, str] | None = None
    hidden: tuple[str, ...] = ()  # host paths never shown inside: the data dir, the config files

    @classmethod
    def for_host(cls, host: Any) -> "Sandbox":
        env = getattr(host, "env", None)
        data_dir = getattr(host, "data_dir", None)
        sources = getattr(host.config, "sources", None) or []
        hidden = tuple(str(p) for p in [data_dir, *sources] if p)
        return cls(host.config.section("agent.sandbox"), find_programs(env), env, hidden)

    @property
    def can_run(self) -> bool:
        """Whether commands can run: bwrap was found, or the operator turned the sandbox off."""
        return self.options.mode == "off" or bool(self.programs.bwrap)

    async def run(self, command: list[str], *, workspace: Path, timeout: float, output_limit: int) -> CommandResult:
        """Run ``command`` in ``workspace`` under the configured confinement and limits."""
        try:
            return await self._run(command, workspace, timeout, output_limit)
        except FileNotFoundError as exc:  # a workspace or program that vanished since start-up
            raise ToolFailed(f"cannot start the command: {exc.strerror}: {exc.filename}") from None

    async def _run(self, command: list[str], workspace: Path, timeout: float, output_limit: int) -> CommandResult:
        if self.options.mode == "bwrap" and not self.programs.bwrap:
            raise SandboxUnavailable(BWRAP_MISSING)
        group = cgroup.create(self.options.max_processes)
        try:
            enter = cgroup.enter_prefix(group) if group else []
            return await self._spawn(enter, command, workspace, timeout, output_limit)
        finally:
            if group:
                cgroup.remove(group)

    async def _spawn(self, enter: list[str], command: list[str], workspace: Path, timeout: float,
                     output_limit: int) -> CommandResult:
        options = self.options
        limited = prlimit_prefix(self.programs.prlimit, options) + command
        if options.mode == "off":
            env = command_env(options, self.host_env, sandboxed=False)
            return await run_bounded(enter + limited, cwd=str(workspace), env=env, timeout=timeout,
                                     output_limit=output_limit)
        fds: dict[str, int] = {}
        try:
            for dest, data in synthetic_files(options.network).items():
                read_end, write_end = os.pipe()
                fds[dest] = read_end
                with os.fdopen(write_end, "wb") as pipe:  # a few hundred bytes: never fills the pipe
                    pipe.write(data)
            try:
                argv = bwrap_argv(self.programs.bwrap, options, workspace=str(workspace), command=limited,
                                  env=command_env(options, self.host_env, sandboxed=True), data_fds=fds,
                                  hidden=self.hidden)
            except ValueError as exc:
                raise ToolFailed(str(exc)) from None
            return await run_bounded(enter + argv, cwd=str(workspace), env={}, timeout=timeout,
                                     output_limit=output_limit, pass_fds=list(fds.values()))
        finally:
            for fd in fds.values():
                os.close(fd)
