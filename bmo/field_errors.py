"""Which field a ``msgspec.ValidationError`` is about, for messages that name it (config, HTTP bodies)."""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

import msgspec

# msgspec ends a message with " - at `$.a.b[0]`" when the error is below the top level.
_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_NAMED = re.compile(r"Object (?P<kind>contains unknown|missing required) field `(?P<name>[^`]+)`")
_KINDS = {"contains unknown": "unknown", "missing required": "missing"}


class FieldError(NamedTuple):
    """``param`` is the dotted path (``messages[0].role``), None for the body itself; ``message`` is msgspec's text."""

    param: str | None
    message: str
    # "unknown": param names a field the type does not have; "missing": a required one absent.
    problem: Literal["unknown", "missing", "invalid"] = "invalid"


def field_error(exc: msgspec.ValidationError) -> FieldError:
    """The field ``exc`` is about and its message without msgspec's location suffix."""
    text = str(exc)
    match = _AT.search(text)
    path = match.group("path") if match else ""
    message = text[: match.start()] if match else text
    named = _NAMED.match(message)
    if named is None:
        return FieldError(path or None, message)
    param = f"{path}.{named.group('name')}" if path else named.group("name")
    return FieldError(param, message, _KINDS[named.group("kind")])


def field_parts(param: str | None) -> list[str]:
    """``"a.b[0].c"`` as ``["a", "b", "0", "c"]``, to walk the raw value the error is about."""
    return [p for p in re.split(r"\.|\[|\]", param or "") if p]
