"""Config trees as TOML text, for ``bmo config show`` and the ``show-<name>`` renderers."""

from __future__ import annotations

import json
import math
import re

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(value) -> str:
    """A TOML value: JSON's string escapes are valid TOML; tables inside lists become inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None) + " }"
    return json.dumps(value)


def to_toml(tree: dict, prefix: str = "") -> str:
    """TOML text for a config tree; ``tomllib`` reads it back to the same tree (None values are omitted)."""
    lines: list[str] = []
    tables: list[tuple[str, dict]] = []
    for key, value in tree.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif value is None:
            lines.append(f"# {_key(key)} is not set")
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    out = ""
    if prefix and (lines or not tables):
        out += f"[{prefix}]\n"
    if lines:
        out += "\n".join(lines) + "\n\n"
    for key, value in tables:
        out += to_toml(value, f"{prefix}.{_key(key)}" if prefix else _key(key))
    return out
