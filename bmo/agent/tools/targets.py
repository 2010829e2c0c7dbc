"""What one tool call really touches, in the form permission rules and "always" decisions match.

A target has a kind (a workspace path, a command line, a URL or plain text), the text shown in
the challenge and the audit, and its parts: a command line is parsed with tree-sitter's bash
grammar (so quoting, newlines, ``$(…)``, backticks and heredocs parse as bash would) into every
simple command and every file redirection it holds. A line the parser cannot classify (a loop,
a function, arithmetic, a computed program name, a syntax error) is marked unclassified: no
allow rule approves it.
"""

from __future__ import annotations

import functools
import shlex
from dataclasses import dataclass

PATH, COMMAND, URL, TEXT = "path", "command", "url", "text"
_GROUPS = {"program", "list", "pipeline", "subshell", "compound_statement", "negated_command", "redirected_statement"}
_REDIRECTS = {"file_redirect", "heredoc_redirect", "herestring_redirect"}
_SUBSTITUTIONS = {"command_substitution", "process_substitution"}
# Text whose value bash computes in ways a glob on the source cannot follow.
_OPAQUE = {"arithmetic_expansion", "ansi_c_string", "translated_string", "brace_expression"}
_DYNAMIC = {"simple_expansion", "expansion", "command_substitution", "process_substitution"}


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


@functools.cache
def _parser():
    import tree_sitter_bash
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_bash.language()))


def command_parts(line: str) -> list[str]:
    """Every simple command (``git status``) and file redirection (``> out.txt``) in ``line``."""
    if not line.strip():
        return []
    tree = _parser().parse(line.encode())
    if tree.root_node.has_error:
        raise Unclassified("a syntax error")
    out: list[str] = []
    _statement(tree.root_node, out)
    return out


def _statement(node, out: list[str], extra_words: tuple[str, ...] = ()) -> None:
    kind = node.type
    if kind in _GROUPS:
        extra = _stray_arguments(node) if kind == "redirected_statement" else ()
        for child in node.named_children:
            if child.type in _REDIRECTS:
                _redirect(child, out)
            else:
                _statement(child, out, extra)
    elif kind == "command":
        _command(node, out, extra_words)
    elif kind == "variable_assignment":
        _substitutions(node, out)
        out.append(_unquote(node))
    elif kind != "comment":
        raise Unclassified(kind.replace("_", " "))


def _command(node, out: list[str], extra_words: tuple[str, ...]) -> None:
    words = []
    for child in node.named_children:
        if child.type in _REDIRECTS:
            _redirect(child, out)
            continue
        if child.type == "command_name" and any(_has(child, t) for t in _DYNAMIC):
            raise Unclassified("a program name computed at run time")
        _substitutions(child, out)
        words.append(_unquote(child))
    out.append(" ".join(words + list(extra_words)))


def _stray_arguments(node) -> tuple[str, ...]:
    """``ls 2>/dev/null x``: the grammar hangs ``x`` on the redirection; bash gives it to ``ls``."""
    extra = []
    for child in node.named_children:
        if child.type == "file_redirect":
            extra += [_unquote(d) for d in _destinations(child)[1:]]
    return tuple(extra)


def _destinations(redirect) -> list:
    return [c for i, c in enumerate(redirect.children) if redirect.field_name_for_child(i) == "destination"]


def _redirect(node, out: list[str]) -> None:
    if node.type == "file_redirect":
        dest = _destinations(node)
        operator = next((c.type for c in node.children if not c.is_named), "")
        if not dest or (operator in (">&", "<&") and dest[0].type == "number") or dest[0].text == b"-":
            return  # 2>&1, >&2, <&-: a descriptor is copied or closed, no file is opened
        _substitutions(dest[0], out)
        out.append(f"{operator} {_unquote(dest[0])}")
        return
    if node.type == "heredoc_redirect":
        start = next((c for c in node.named_children if c.type == "heredoc_start"), None)
        quoted = start is not None and any(q in start.text for q in (b"'", b'"', b"\\"))
        for child in node.named_children:
            if child.type == "heredoc_body" and not quoted:
                _substitutions(child, out)
            elif child.type in _REDIRECTS:
                _redirect(child, out)
            elif child.type not in ("heredoc_start", "heredoc_body", "heredoc_end"):
                _statement(child, out)  # cat <<EOF | sh: the pipeline after the marker
        return
    _substitutions(node, out)  # a here-string is text, not a file


def _substitutions(node, out: list[str]) -> None:
    """The commands inside ``$(…)``, backticks and ``<(…)`` are parts of their own."""
    if node.type in _SUBSTITUTIONS:
        for inner in node.named_children:
            _statement(inner, out)
    elif node.type in _OPAQUE:
        raise Unclassified(node.type.replace("_", " "))
    else:
        for child in node.named_children:
            _substitutions(child, out)


def _has(node, kind: str) -> bool:
    return node.type == kind or any(_has(c, kind) for c in node.named_children)


def _unquote(node) -> str:
    """A word as bash passes it on, quotes removed (``'rm'`` and ``r''m`` are ``rm``)."""
    if _has(node, "ansi_c_string"):
        raise Unclassified("an ANSI-C quoted string")
    try:
        return " ".join(shlex.split(node.text.decode(errors="replace")))
    except ValueError:
        raise Unclassified("unbalanced quotes") from None
