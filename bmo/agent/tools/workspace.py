"""Confinement without a check-then-use gap: every workspace path is walked from a directory fd.

Each component is opened relative to the directory fd before it, with ``O_NOFOLLOW`` (and
``O_DIRECTORY`` for directories), so a concurrent swap of a directory for a symlink can only
make the walk fail, never leave the root. Symlinks inside the workspace are followed by reading
them (``readlinkat``) and walking their text from the same fds, confined to the root lexically.
Reads refuse anything but a regular file with one hard link; writes go through an exclusive
temporary (random name, ``O_CREAT|O_EXCL|O_NOFOLLOW``) renamed over the target in its directory.
Everything here blocks: callers run it in a thread.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bmo.agent.tools.base import ToolFailed

MAX_SYMLINK_HOPS = 40  # the kernel's own ELOOP bound
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class MissingDirectory(ToolFailed):
    """An intermediate directory does not exist; ``rel`` is where the path would lead."""

    def __init__(self, message: str, rel: str):
        super().__init__(message)
        self.rel = rel


@dataclass
class Located:
    """A path walked to its last component: the open fd of its directory and the name in it."""

    dir_fd: int
    name: str  # "" when the path is the workspace root itself
    rel: str  # the resolved workspace-relative path ("." for the root), for rules and messages
    lstat: os.stat_result | None  # the entry itself (not followed); None when it does not exist


def path_parts(root: Path, raw: object) -> list[str]:
    """The components of a model-supplied path, refused when it names something outside the root."""
    if not isinstance(raw, str) or not raw.strip():
        raise ToolFailed("path must be a non-empty string, relative to the workspace (e.g. \"notes.txt\")")
    text = raw.strip()
    if "\x00" in text:
        raise ToolFailed("path contains a NUL byte")
    parts = PurePosixPath(text.replace("\\", "/")).parts
    if ".." in parts:
        raise ToolFailed(f"path {raw!r} is refused: '..' is not allowed; use a path inside the workspace")
    if not os.path.isabs(text):
        return [p for p in parts if p not in ("", ".")]
    inside = _inside(root, text)
    if inside is None:
        raise ToolFailed(f"path {raw!r} is refused: it is outside the workspace ({root.resolve()})")
    return inside


def normalized(raw: object) -> str:
    """A lexical workspace-relative form of ``raw`` (``./a`` and ``b/../a`` give ``a``), for rules."""
    text = str(raw).strip().replace("\\", "/")
    norm = os.path.normpath(text) if text else "."
    return norm[2:] if norm.startswith("./") else norm


def _inside(root: Path, absolute: str) -> list[str] | None:
    """The root-relative parts of an absolute path, or None when it is not under the root."""
    path = PurePosixPath(os.path.normpath(absolute))
    for base in {PurePosixPath(root.resolve()), PurePosixPath(os.path.normpath(os.path.abspath(root)))}:
        if path == base or base in path.parents:
            return list(path.relative_to(base).parts)
    return None


def open_root(root: Path) -> int:
    try:
        return os.open(root.resolve(), _DIR_FLAGS)
    except OSError as exc:
        raise ToolFailed(f"the workspace {root} cannot be opened: {exc.strerror}") from None


def locate(root: Path, raw: object, *, create_dirs: bool = False, want_dir: bool = False) -> Located:
    """Walk ``raw`` from the root fd; the caller closes ``dir_fd`` (use :func:`located`)."""
    pending = path_parts(root, raw)
    stack: list[tuple[str, int]] = [("", open_root(root))]
    hops = 0

    def symlink(name: str) -> None:
        nonlocal pending, hops, stack
        hops += 1
        if hops > MAX_SYMLINK_HOPS:
            raise ToolFailed(f"path {raw!r} is refused: too many levels of symlinks")
        target = os.readlink(name, dir_fd=stack[-1][1])
        if os.path.isabs(target):
            parts = _inside(root, target)
            if parts is None:
                raise _outside(root, raw)
            while len(stack) > 1:
                os.close(stack.pop()[1])
            pending = parts + pending
        else:
            pending = list(PurePosixPath(target).parts) + pending

    try:
        while pending:
            name = pending.pop(0)
            if name in ("", "."):
                continue
            if name == "..":  # only ever from a symlink's text
                if len(stack) == 1:
                    raise _outside(root, raw)
                os.close(stack.pop()[1])
                continue
            if not pending and not want_dir:
                try:
                    st = os.stat(name, dir_fd=stack[-1][1], follow_symlinks=False)
                except FileNotFoundError:
                    st = None
                if st is not None and stat.S_ISLNK(st.st_mode):
                    symlink(name)
                    continue
                return _found(stack, name, st)
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=stack[-1][1])
            except FileNotFoundError:
                if not create_dirs:
                    would_be = os.path.normpath("/".join([_rel(stack, name), *pending]))
                    raise MissingDirectory(f"{_rel(stack, name)} does not exist", would_be) from None
                try:
                    os.mkdir(name, dir_fd=stack[-1][1])
                except FileExistsError:
                    pass
                pending.insert(0, name)  # open what is there now, with the same checks
                continue
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise ToolFailed(f"{_rel(stack, name)} cannot be opened: {exc.strerror}") from None
                if stat.S_ISLNK(os.stat(name, dir_fd=stack[-1][1], follow_symlinks=False).st_mode):
                    symlink(name)
                    continue
                raise ToolFailed(f"{_rel(stack, name)} is not a directory") from None
            stack.append((name, fd))
        if want_dir:
            return _found(stack, "", None)
        return _found(stack, "", os.fstat(stack[-1][1]))
    except BaseException:
        for _, fd in stack:
            os.close(fd)
        raise


def _found(stack: list[tuple[str, int]], name: str, st: os.stat_result | None) -> Located:
    """Close every fd but the innermost directory's, which the Located owns."""
    for _, fd in stack[:-1]:
        os.close(fd)
    return Located(dir_fd=stack[-1][1], name=name, rel=_rel(stack, name), lstat=st)


def _rel(stack: list[tuple[str, int]], name: str = "") -> str:
    parts = [n for n, _ in stack[1:]] + ([name] if name else [])
    return "/".join(parts) or "."


def _outside(root: Path, raw: object) -> ToolFailed:
    return ToolFailed(f"path {raw!r} is refused: it is a symlink that points outside the workspace ({root.resolve()})")


@contextmanager
def located(root: Path, raw: object, **kwargs):
    loc = locate(root, raw, **kwargs)
    try:
        yield loc
    finally:
        os.close(loc.dir_fd)


def resolved_rel(root: Path, raw: object) -> str:
    """Where ``raw`` really leads inside the workspace (symlinks followed); lexical when it cannot be walked."""
    try:
        with located(root, raw) as loc:
            return loc.rel
    except MissingDirectory as exc:  # a write would create it: the rules see where it would land
        return exc.rel if not exc.rel.startswith("..") else normalized(raw)
    except (ToolFailed, OSError):
        return normalized(raw)


def _refuse_unsafe(rel: str, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise ToolFailed(f"{rel} is a directory; use list_dir")
    if not stat.S_ISREG(st.st_mode):
        raise ToolFailed(f"{rel} is refused: it is not a regular file (a FIFO, socket or device)")
    if st.st_nlink > 1:
        raise ToolFailed(f"{rel} is refused: it has {st.st_nlink} hard links, and a hard link can lead outside the workspace")


def read_regular(root: Path, raw: object, limit: int) -> tuple[bytes, int, str]:
    """(up to ``limit + 1`` bytes, the file's size, its resolved relative path)."""
    with located(root, raw) as loc:
        if loc.lstat is None:
            raise ToolFailed(f"{loc.rel} does not exist")
        if not loc.name:
            raise ToolFailed(". is a directory; use list_dir")
        _refuse_unsafe(loc.rel, loc.lstat)  # before opening: a device is never opened
        try:
            # O_NONBLOCK: should a FIFO be swapped in after the check, opening it cannot hang.
            fd = os.open(loc.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=loc.dir_fd)
        except OSError as exc:
            raise ToolFailed(f"{loc.rel} cannot be opened: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fd)
            _refuse_unsafe(loc.rel, st)
            return fh.read(limit + 1), st.st_size, loc.rel


def write_atomic(root: Path, raw: object, data: bytes) -> str:
    """Replace (or create) the file at ``raw`` with ``data``; returns its resolved relative path."""
    with located(root, raw, create_dirs=True) as loc:
        if not loc.name:
            raise ToolFailed(". is a directory")
        mode = None
        if loc.lstat is not None:
            if stat.S_ISDIR(loc.lstat.st_mode):
                raise ToolFailed(f"{loc.rel} is a directory")
            _refuse_unsafe(loc.rel, loc.lstat)
            mode = stat.S_IMODE(loc.lstat.st_mode)
        tmp, fd = _exclusive_temporary(loc)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                if mode is not None:
                    os.fchmod(fh.fileno(), mode)
            os.rename(tmp, loc.name, src_dir_fd=loc.dir_fd, dst_dir_fd=loc.dir_fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=loc.dir_fd)
            except OSError:
                pass
            raise
        return loc.rel


def _exclusive_temporary(loc: Located) -> tuple[str, int]:
    for _ in range(16):
        tmp = f".{loc.name[:200]}.{secrets.token_hex(8)}.bmo-tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=loc.dir_fd)
        except FileExistsError:
            continue
        except OSError as exc:
            raise ToolFailed(f"{loc.rel} cannot be written: {exc.strerror}") from None
        return tmp, fd
    raise ToolFailed(f"{loc.rel} cannot be written: no free temporary name")


def display(root: Path, path: Path) -> str:
    """A path as the model should see it: relative to the workspace."""
    try:
        rel = path.relative_to(root.resolve())
    except ValueError:
        return str(path)
    return str(rel) if str(rel) != "." else "."
