"""File tools: read_file, list_dir, search_files (read) and write_file, edit_file (write).

Paths are walked race-free by ``workspace``; search patterns run on RE2, which is linear in
the text, so a model-supplied pattern cannot stall the thread (or, through the GIL, the loop).
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from pathlib import Path

import re2

from bmo.agent.config import FileToolsOptions
from bmo.agent.tools.base import READ, WRITE, Tool, ToolContext, ToolFailed
from bmo.agent.tools.targets import Target
from bmo.agent.tools.workspace import locate, located, normalized, read_regular, resolved_rel, write_atomic


def _options(ctx: ToolContext) -> FileToolsOptions:
    try:
        return ctx.host.config.section("agent.file_tools")
    except (AttributeError, KeyError):
        return FileToolsOptions()


def _path_arg(args: dict, default: str | None = None) -> object:
    value = args.get("path", default)
    return default if value in (None, "") and default is not None else value


class _PathTool(Tool):
    """A file tool: its permission target is the resolved workspace-relative path."""

    def permission_target(self, args: dict) -> str:
        return normalized(args.get("path", ""))

    def permission_scope(self, args: dict, workspace: Path) -> Target:
        return Target.path(resolved_rel(workspace, _path_arg(args)))


class ReadFile(_PathTool):
    name = "read_file"
    description = "Read a text file in the workspace. Returns its content (truncated past the size limit)."
    parameters = {
        "type": "object",
        "properties": {"path": {"type": "string", "description": "File path relative to the workspace"}},
        "required": ["path"],
    }
    tool_class = READ

    async def run(self, args: dict, ctx: ToolContext) -> str:
        limit = _options(ctx).max_read_bytes
        data, size, _ = await asyncio.to_thread(read_regular, ctx.workspace, _path_arg(args), limit)
        text = data[:limit].decode("utf-8", errors="replace")
        if size > limit:
            text += f"\n[truncated: showing {limit} of {size} bytes]"
        return text


class ListDir(_PathTool):
    name = "list_dir"
    description = "List a directory in the workspace; directories end with '/'."
    parameters = {
        "type": "object",
        "properties": {"path": {"type": "string", "description": "Directory relative to the workspace ('.' for the root)"}},
        "required": ["path"],
    }
    tool_class = READ

    async def run(self, args: dict, ctx: ToolContext) -> str:
        limit = _options(ctx).max_list_entries
        names = await asyncio.to_thread(_listing, ctx.workspace, _path_arg(args, "."))
        shown = names[:limit]
        if len(names) > limit:
            shown.append(f"[{len(names) - limit} more entries not shown]")
        return "\n".join(shown) if shown else "(empty directory)"


def _listing(root: Path, raw: object) -> list[str]:
    try:
        loc = locate(root, raw, want_dir=True)
    except ToolFailed as exc:
        if str(exc).endswith("is not a directory"):
            raise ToolFailed(f"{exc}; use read_file") from None
        raise
    try:
        with os.scandir(loc.dir_fd) as it:
            return sorted(e.name + ("/" if e.is_dir() else "") for e in it)
    finally:
        os.close(loc.dir_fd)


class SearchFiles(_PathTool):
    name = "search_files"
    description = "Search file contents under a workspace directory for a regular expression; returns path:line: text."
    parameters = {
        "type": "object",
        "properties": {
            "pattern": {"type": "string", "description": "Regular expression (RE2 syntax: no backreferences or lookaround)"},
            "path": {"type": "string", "description": "Directory or file to search, relative to the workspace (default '.')"},
        },
        "required": ["pattern"],
    }
    tool_class = READ

    async def run(self, args: dict, ctx: ToolContext) -> str:
        pattern = args.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            raise ToolFailed("pattern must be a non-empty string")
        return await asyncio.to_thread(_search, pattern, ctx.workspace, _path_arg(args, "."), _options(ctx))


def compile_pattern(pattern: str):
    """The RE2 program for ``pattern``; a clear tool error for what RE2 cannot run."""
    options = re2.Options()
    options.log_errors = False  # RE2 would print every bad pattern to the server's stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        why = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
    try:
        re.compile(pattern)  # compiling only: matching is what can take exponential time
    except re.error as exc:
        raise ToolFailed(f"pattern {pattern!r} is not a valid regular expression: {exc}") from None
    raise ToolFailed(f"pattern {pattern!r} uses a feature search_files does not support ({why}): search runs on RE2, "
                     "which has no backreferences or lookaround; rewrite the pattern without them")


def _search(pattern: str, root: Path, raw: object, opts: FileToolsOptions) -> str:
    regex = compile_pattern(pattern)  # here too, a huge pattern compiles off the loop
    hits: list[str] = []
    with located(root, raw) as loc:
        if loc.lstat is None:
            raise ToolFailed(f"{loc.rel} does not exist")
        if loc.name and not stat.S_ISDIR(loc.lstat.st_mode):
            files = iter([loc.rel])
        else:
            files = _walk(loc.dir_fd, loc.name, "" if loc.rel == "." else loc.rel, opts)
        for scanned, rel in enumerate(files, 1):
            if scanned > opts.max_search_files:
                hits.append(f"[stopped after {opts.max_search_files} files]")
                break
            try:
                data, size, _ = read_regular(root, rel, opts.max_read_bytes)
            except (ToolFailed, OSError):
                continue  # a symlink out, a FIFO, a hard link: never read
            if size > opts.max_read_bytes or b"\x00" in data[:4096]:
                continue  # too large, or binary
            for lineno, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
                if regex.search(line):
                    hits.append(f"{rel}:{lineno}: {line.strip()[:300]}")
                    if len(hits) >= opts.max_search_matches:
                        hits.append(f"[stopped at {opts.max_search_matches} matches]")
                        return "\n".join(hits)
    return "\n".join(hits) if hits else "no matches"


def _walk(dir_fd: int, name: str, base: str, opts: FileToolsOptions):
    """Workspace-relative paths of the files under a directory; fwalk never follows a symlinked directory."""
    ignore = set(opts.ignore_dirs)
    for dirpath, dirnames, filenames, _ in os.fwalk(name or ".", dir_fd=dir_fd, follow_symlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in ignore)
        prefix = normalized(os.path.join(base, dirpath) if base else dirpath)
        for file in sorted(filenames):
            yield file if prefix == "." else f"{prefix}/{file}"


class WriteFile(_PathTool):
    name = "write_file"
    description = "Create or overwrite a file in the workspace with the given content."
    parameters = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "File path relative to the workspace"},
            "content": {"type": "string", "description": "The complete new content"},
        },
        "required": ["path", "content"],
    }
    tool_class = WRITE

    async def run(self, args: dict, ctx: ToolContext) -> str:
        content = args.get("content")
        if not isinstance(content, str):
            raise ToolFailed("content must be a string")
        data = content.encode("utf-8")
        limit = _options(ctx).max_write_bytes
        if len(data) > limit:
            raise ToolFailed(f"content is {len(data)} bytes; the limit is {limit} ([agent.file_tools] max_write_bytes)")
        rel = await asyncio.to_thread(write_atomic, ctx.workspace, _path_arg(args), data)
        return f"wrote {len(data)} bytes to {rel}"


class EditFile(_PathTool):
    name = "edit_file"
    description = "Replace one exact occurrence of `old` with `new` in a workspace file."
    parameters = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "File path relative to the workspace"},
            "old": {"type": "string", "description": "Exact text to replace; must occur exactly once"},
            "new": {"type": "string", "description": "Replacement text"},
        },
        "required": ["path", "old", "new"],
    }
    tool_class = WRITE

    async def run(self, args: dict, ctx: ToolContext) -> str:
        old, new = args.get("old"), args.get("new")
        if not isinstance(old, str) or not old or not isinstance(new, str):
            raise ToolFailed("old must be a non-empty string and new a string")
        limit = _options(ctx).max_write_bytes
        raw, size, rel = await asyncio.to_thread(read_regular, ctx.workspace, _path_arg(args), limit)
        if size > limit:
            raise ToolFailed(f"{rel} is {size} bytes, more than [agent.file_tools] max_write_bytes ({limit})")
        text = raw.decode("utf-8", errors="strict")
        count = text.count(old)
        if count != 1:
            raise ToolFailed(
                f"`old` occurs {count} times in {rel}; it must occur exactly once (include more surrounding text)"
            )
        data = text.replace(old, new, 1).encode("utf-8")
        if len(data) > limit:
            raise ToolFailed("the edited file would exceed [agent.file_tools] max_write_bytes")
        # The same walk again: the file is replaced where it is now, never through a swapped path.
        await asyncio.to_thread(write_atomic, ctx.workspace, rel, data)
        return f"edited {rel}: replaced {len(old)} characters with {len(new)}"
