"""Confinement: every path a tool touches must stay inside the workspace root."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from bmo.agent.tools.base import ToolFailed


def resolve_in_workspace(root: Path, raw: object, *, must_exist: bool = False) -> Path:
    """The real path for ``raw`` (relative to ``root``), refused when it could leave the workspace.

    ``..`` is refused outright (even when it would land inside), absolute paths must lie
    inside the root, and symlinks are resolved so one pointing outside is refused too.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise ToolFailed("path must be a non-empty string, relative to the workspace (e.g. \"notes.txt\")")
    text = raw.strip()
    if "\x00" in text:
        raise ToolFailed("path contains a NUL byte")
    parts = PurePosixPath(text.replace("\\", "/")).parts
    if ".." in parts:
        raise ToolFailed(f"path {raw!r} is refused: '..' is not allowed; use a path inside the workspace")
    real_root = root.resolve()
    candidate = Path(text) if os.path.isabs(text) else real_root / text
    resolved = Path(os.path.realpath(candidate))
    if resolved != real_root and not resolved.is_relative_to(real_root):
        why = "it is a symlink that points" if not os.path.isabs(text) else "it is"
        raise ToolFailed(f"path {raw!r} is refused: {why} outside the workspace ({real_root})")
    if must_exist and not resolved.exists():
        raise ToolFailed(f"{display(real_root, resolved)} does not exist")
    return resolved


def display(root: Path, path: Path) -> str:
    """A path as the model should see it: relative to the workspace."""
    try:
        rel = path.relative_to(root.resolve())
    except ValueError:
        return str(path)
    return str(rel) if str(rel) != "." else "."
