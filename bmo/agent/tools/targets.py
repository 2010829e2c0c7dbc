"""What one tool call really touches, in the form permission rules and "always" decisions match.

A target has a kind (a workspace path, a command line, a URL or plain text), the text shown in
the challenge and the audit, and its parts: a command line is split with ``bashlex`` (a port of
bash's own grammar, so quoting, newlines, ``$(…)``, backticks and heredocs parse as bash would)
into every simple command and every file redirection it holds. A line the parser cannot
classify (a loop, a function, arithmetic, an unreadable heredoc) is marked unclassified: no
allow rule approves it.
"""

from __future__ import annotations

from dataclasses import dataclass

import bashlex

PATH, COMMAND, URL, TEXT = "path", "command", "url", "text"
_FD_ONLY = (">&", "<&")  # 2>&1 and the like duplicate a descriptor: no file is opened
_HEREDOC = ("<<", "<<-")


@dataclass(frozen=True)
class Target:
    kind: str
    text: str
    parts: tuple[str, ...]
    classified: bool = True

    @classmethod
    def path(cls, rel: str) -> Target:
        return cls(PATH, rel, (rel,))

    @classmethod
    def url(cls, url: str) -> Target:
        return cls(URL, url, (url,))

    @classmethod
    def plain(cls, text: str) -> Target:
        return cls(TEXT, text, (text,))

    @classmethod
    def command(cls, line: str) -> Target:
        try:
            parts = command_parts(line)
        except Unclassified:
            return cls(COMMAND, line, (line,), classified=False)
        return cls(COMMAND, line, tuple(parts) or (line,), classified=bool(parts))


class Unclassified(Exception):
    """The command line holds something the rules cannot reason about."""


def command_parts(line: str) -> list[str]:
    """Every simple command (``git status``) and file redirection (``> out.txt``) in ``line``."""
    if not line.strip():
        return []
    try:
        trees = bashlex.parse(line)
    except Exception as exc:  # bashlex raises ParsingError, NotImplementedError and others on what it lacks
        raise Unclassified(str(exc)) from None
    out: list[str] = []
    for tree in trees:
        _visit(tree, out)
    return out


def _visit(node, out: list[str]) -> None:
    kind = node.kind
    if kind in ("list", "pipeline"):
        for part in node.parts:
            if part.kind not in ("operator", "pipe"):
                _visit(part, out)
    elif kind == "compound":
        words = [p.word for p in node.list if p.kind == "reservedword"]
        if not words or words[0] not in ("(", "{"):
            raise Unclassified(f"a {words[0] if words else kind} block")
        for part in node.list:
            if part.kind != "reservedword":
                _visit(part, out)
        for redirect in getattr(node, "redirects", ()):
            _redirect(redirect, out)
    elif kind == "command":
        words = []
        for part in node.parts:
            if part.kind in ("word", "assignment"):
                words.append(part.word)
                _expansions(part, out)
            elif part.kind == "redirect":
                _redirect(part, out)
            else:
                raise Unclassified(part.kind)
        if words:
            out.append(" ".join(words))
    else:
        raise Unclassified(kind)


def _redirect(redirect, out: list[str]) -> None:
    if redirect.type in _HEREDOC:
        body = getattr(getattr(redirect, "heredoc", None), "value", "")
        if "$" in body or "`" in body:
            raise Unclassified("a heredoc that expands")
        return
    if isinstance(redirect.output, int) or redirect.type in _FD_ONLY:
        return
    _expansions(redirect.output, out)
    if redirect.type != "<<<":  # a here-string is text, not a file
        out.append(f"{redirect.type} {redirect.output.word}")


def _expansions(word, out: list[str]) -> None:
    """The commands inside ``$(…)``, backticks and ``<(…)`` of a word are parts of their own."""
    for part in getattr(word, "parts", ()):
        if part.kind in ("commandsubstitution", "processsubstitution"):
            _visit(part.command, out)
        elif part.kind not in ("parameter", "tilde"):
            raise Unclassified(part.kind)
