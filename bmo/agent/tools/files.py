"""File tools: read_file, list_dir, search_files (read) and write_file, edit_file (write)."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from bmo.agent.config import FileToolsOptions
from bmo.agent.tools.base import READ, WRITE, Tool, ToolContext, ToolFailed
from bmo.agent.tools.workspace import display, resolve_in_workspace


def _options(ctx: ToolContext) -> FileToolsOptions:
    try:
        return ctx.host.config.section("agent.file_tools")
    except (AttributeError, KeyError):
        return FileToolsOptions()


def _path_arg(args: dict, default: str | None = None) -> object:
    value = args.get("path", default)
    return default if value in (None, "") and default is not None else value


class ReadFile(Tool):
    name = "read_file"
    description = "Read a text file in the workspace. Returns its content (truncated past the size limit)."
    parameters = {
        "type": "object",
        "properties": {"path": {"type": "string", "description": "File path relative to the workspace"}},
        "required": ["path"],
    }
    tool_class = READ

    async def run(self, args: dict, ctx: ToolContext) -> str:
        path = resolve_in_workspace(ctx.workspace, _path_arg(args), must_exist=True)
        if path.is_dir():
            raise ToolFailed(f"{display(ctx.workspace, path)} is a directory; use list_dir")
        limit = _options(ctx).max_read_bytes

        def read() -> tuple[bytes, int]:
            with open(path, "rb") as fh:
                return fh.read(limit + 1), os.fstat(fh.fileno()).st_size

        data, size = await asyncio.to_thread(read)
        text = data[:limit].decode("utf-8", errors="replace")
        if size > limit:
            text += f"\n[truncated: showing {limit} of {size} bytes]"
        return text


class ListDir(Tool):
    name = "list_dir"
    description = "List a directory in the workspace; directories end with '/'."
    parameters = {
        "type": "object",
        "properties": {"path": {"type": "string", "description": "Directory relative to the workspace ('.' for the root)"}},
        "required": ["path"],
    }
    tool_class = READ

    async def run(self, args: dict, ctx: ToolContext) -> str:
        path = resolve_in_workspace(ctx.workspace, _path_arg(args, "."), must_exist=True)
        if not path.is_dir():
            raise ToolFailed(f"{display(ctx.workspace, path)} is not a directory; use read_file")
        limit = _options(ctx).max_list_entries

        def listing() -> list[str]:
            with os.scandir(path) as it:
                return sorted(e.name + ("/" if e.is_dir() else "") for e in it)

        names = await asyncio.to_thread(listing)
        shown = names[:limit]
        if len(names) > limit:
            shown.append(f"[{len(names) - limit} more entries not shown]")
        return "\n".join(shown) if shown else "(empty directory)"


class SearchFiles(Tool):
    name = "search_files"
    description = "Search file contents under a workspace directory for a regular expression; returns path:line: text."
    parameters = {
        "type": "object",
        "properties": {
            "pattern": {"type": "string", "description": "Regular expression (Python syntax)"},
            "path": {"type": "string", "description": "Directory or file to search, relative to the workspace (default '.')"},
        },
        "required": ["pattern"],
    }
    tool_class = READ

    async def run(self, args: dict, ctx: ToolContext) -> str:
        pattern = args.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            raise ToolFailed("pattern must be a non-empty string")
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ToolFailed(f"pattern {pattern!r} is not a valid regular expression: {exc}") from None
        base = resolve_in_workspace(ctx.workspace, _path_arg(args, "."), must_exist=True)
        opts = _options(ctx)
        root = ctx.workspace.resolve()
        return await asyncio.to_thread(_search, regex, base, root, opts)


def _search(regex: re.Pattern, base: Path, root: Path, opts: FileToolsOptions) -> str:
    hits: list[str] = []
    scanned = 0
    files = [base] if base.is_file() else _walk(base, root, opts)
    for file in files:
        scanned += 1
        if scanned > opts.max_search_files:
            hits.append(f"[stopped after {opts.max_search_files} files]")
            break
        try:
            if file.stat().st_size > opts.max_read_bytes:
                continue
            data = file.read_bytes()
        except OSError:
            continue
        if b"\x00" in data[:4096]:
            continue  # binary
        for lineno, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if regex.search(line):
                hits.append(f"{display(root, file)}:{lineno}: {line.strip()[:300]}")
                if len(hits) >= opts.max_search_matches:
                    hits.append(f"[stopped at {opts.max_search_matches} matches]")
                    return "\n".join(hits)
    return "\n".join(hits) if hits else "no matches"


def _walk(base: Path, root: Path, opts: FileToolsOptions):
    ignore = set(opts.ignore_dirs)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d not in ignore)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            # A symlinked file may point outside; only follow it when it stays inside.
            if path.is_symlink() and not Path(os.path.realpath(path)).is_relative_to(root):
                continue
            yield path


class WriteFile(Tool):
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
        path = resolve_in_workspace(ctx.workspace, _path_arg(args))
        content = args.get("content")
        if not isinstance(content, str):
            raise ToolFailed("content must be a string")
        data = content.encode("utf-8")
        limit = _options(ctx).max_write_bytes
        if len(data) > limit:
            raise ToolFailed(f"content is {len(data)} bytes; the limit is {limit} ([agent.file_tools] max_write_bytes)")
        if path.is_dir():
            raise ToolFailed(f"{display(ctx.workspace, path)} is a directory")
        await asyncio.to_thread(_write_atomic, path, data)
        return f"wrote {len(data)} bytes to {display(ctx.workspace, path)}"


class EditFile(Tool):
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
        path = resolve_in_workspace(ctx.workspace, _path_arg(args), must_exist=True)
        old, new = args.get("old"), args.get("new")
        if not isinstance(old, str) or not old or not isinstance(new, str):
            raise ToolFailed("old must be a non-empty string and new a string")
        text = (await asyncio.to_thread(path.read_bytes)).decode("utf-8", errors="strict")
        count = text.count(old)
        if count != 1:
            raise ToolFailed(
                f"`old` occurs {count} times in {display(ctx.workspace, path)}; it must occur exactly once "
                "(include more surrounding text)"
            )
        data = text.replace(old, new, 1).encode("utf-8")
        if len(data) > _options(ctx).max_write_bytes:
            raise ToolFailed("the edited file would exceed [agent.file_tools] max_write_bytes")
        await asyncio.to_thread(_write_atomic, path, data)
        return f"edited {display(ctx.workspace, path)}: replaced {len(old)} characters with {len(new)}"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.bmo-tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
