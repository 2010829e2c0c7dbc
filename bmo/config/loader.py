"""Layered configuration: defaults < user file < ./bmo.toml < --config files < BMO_* env < CLI flags."""

from __future__ import annotations

import os
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from bmo.field_errors import field_error, field_parts

ENV_PREFIX = "BMO_"
# Environment variables with a meaning of their own, not a config key path.
RESERVED_ENV = {
    "BMO_AUTH_TOKEN", "BMO_LOAD_PLUGINS", "BMO_CONFIG", "BMO_REQUESTER_TRUSTED_PROXIES",
    "BMO_DATA_DIR", "BMO_ADDR", "BMO_E2E_OPEN_WEBUI", "BMO_E2E_PHOENIX", "BMO_TEST_NO_LEDGER",
    "BMO_WORKER_ID", "BMO_STORE_SHARED",
}
# Short environment names for the settings people set most.
ENV_SHORTCUTS = {
    "BMO_ADDR": "options.http_server.addr",
    "BMO_DATA_DIR": "storage.data_dir",
    "BMO_STORE_URL": "store.url",
}
_SECRET_KEY = re.compile(r"(token|secret|password|api_key|authorization)$", re.IGNORECASE)
# A URL's password (``scheme://user:PASSWORD@host``, ``?password=...``), e.g. in [store] url.
_URL_PASSWORD = re.compile(r"(?<=://)([^/@:?#]*):[^/@?#]*@|(?<=[?&])password=[^&#]*", re.IGNORECASE)


class ConfigError(Exception):
    """A configuration problem, worded for the person who has to fix it."""


@dataclass(frozen=True)
class Section:
    """A config section a plugin declared: dotted path, msgspec type, default factory."""

    path: str
    type: Any
    default: Any


@dataclass
class Config:
    """The merged, typed configuration. ``section(path)`` returns a decoded struct."""

    sections: dict[str, Any]
    sources: list[str] = field(default_factory=list)

    def section(self, path: str) -> Any:
        """The decoded struct of a declared section; ``KeyError`` names the known ones."""
        try:
            return self.sections[path]
        except KeyError:
            known = ", ".join(sorted(self.sections))
            raise KeyError(f"no config section {path!r} is declared (is its plugin loaded?); known: {known}") from None

    def to_dict(self, redact: bool = True) -> dict:
        """The merged tree; with ``redact`` every secret-looking key shows ``set``/``unset``."""
        tree: dict = {}
        for path in sorted(self.sections):
            node = tree
            for part in path.split("."):
                node = node.setdefault(part, {})
            value = msgspec.to_builtins(self.sections[path])
            if isinstance(value, dict):
                node.update(value)
        return _redact(tree) if redact else tree


def _redact(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        if key.lower() == "headers":
            return {k: ("set" if v else "unset") for k, v in value.items()}
        return {k: _redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    if key and _SECRET_KEY.search(key) and not key.endswith("_env"):
        return "set" if value else "unset"
    if isinstance(value, str) and "://" in value:
        return _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:***@" if m.group(1) is not None else "password=***", value)
    return value


def user_config_path(env: dict[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "bmo" / "bmo.toml"


def default_data_dir(env: dict[str, str]) -> Path:
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "bmo"


def env_key_path(name: str) -> str | None:
    """The dotted key an environment variable sets, or None if it sets none.

    ``BMO_AGENT__MAX_STEPS`` -> ``agent.max_steps`` (``__`` separates levels, names are
    lower-cased); ``BMO_ADDR`` and ``BMO_DATA_DIR`` are shortcuts. Other ``BMO_*`` names
    without ``__`` (tokens, plugin lists, test switches) are not config keys.
    """
    if not name.startswith(ENV_PREFIX):
        return None
    if name in ENV_SHORTCUTS:
        return ENV_SHORTCUTS[name]
    rest = name[len(ENV_PREFIX):]
    if name in RESERVED_ENV or "__" not in rest:
        return None
    return ".".join(p.lower() for p in rest.split("__"))


def _env_value(raw: str) -> Any:
    """An env value: a TOML array or inline table when it looks like one (``["a"]``), else the text.

    Plain text stays text so ``BMO_X__NAME=2024`` is still a string; the typed decode turns
    ``"30"``, ``"true"`` or ``"1.5"`` into numbers and booleans where the section wants them.
    """
    if raw.lstrip().startswith(("[", "{")):
        try:
            return tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            pass
    return raw


def _set_dotted(tree: dict, dotted: str, value: Any, origins: dict, source: str) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = node[part] = {}
        node = nxt
    node[parts[-1]] = value
    origins[dotted] = source


def _merge(into: dict, layer: dict, origins: dict, source: str, prefix: str = "") -> None:
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value, origins, source, dotted + ".")
        else:
            into[key] = value
            _record_origins(value, origins, source, dotted)


def _record_origins(value: Any, origins: dict, source: str, dotted: str) -> None:
    origins[dotted] = source
    if isinstance(value, dict):
        for k, v in value.items():
            _record_origins(v, origins, source, f"{dotted}.{k}")


def _read_file(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found; check the path given to --config") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None


def collect_sections(pm) -> dict[str, Section]:
    sections: dict[str, Section] = {}

    def register(path: str, struct_type: Any, default: Any = None) -> None:
        if path in sections:
            raise ConfigError(f"config section [{path}] is declared twice")
        sections[path] = Section(path, struct_type, default if default is not None else struct_type)

    pm.hook.bmo_config_sections(register=register)
    return sections


def load_config(
    pm,
    *,
    config_files: tuple[str | os.PathLike, ...] = (),
    overrides: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
) -> Config:
    """Merge every layer and decode it into the sections plugins declared."""
    env = dict(os.environ if env is None else env)
    sections = collect_sections(pm)
    merged: dict = {}
    origins: dict[str, str] = {}
    sources: list[str] = ["defaults"]
    layers: list[Path] = [user_config_path(env), Path(cwd or os.getcwd()) / "bmo.toml"]
    for path in layers:
        if path.is_file():
            _merge(merged, _read_file(path), origins, str(path))
            sources.append(str(path))
    # BMO_CONFIG names files like --config does (path-separator list), merged before them.
    named = [p for p in env.get("BMO_CONFIG", "").split(os.pathsep) if p.strip()]
    for raw in (*named, *config_files):
        path = Path(raw)
        _merge(merged, _read_file(path), origins, str(path))
        sources.append(str(path))
    for name, raw in sorted(env.items()):
        dotted = env_key_path(name)
        if dotted is None:
            continue
        _set_dotted(merged, dotted, _env_value(raw), origins, f"environment variable {name}")
        sources.append(name)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(merged, dotted, value, origins, "command line")
    return Config(_decode(merged, sections, origins), sources)


def _decode(merged: dict, sections: dict[str, Section], origins: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # Deepest first, so "agent.file_tools" is taken out before "agent" is decoded.
    for path in sorted(sections, key=lambda p: -p.count(".")):
        section = sections[path]
        raw = _pop(merged, path)
        if raw is None:
            out[path] = section.default() if callable(section.default) else section.default
            continue
        if not isinstance(raw, dict):
            where = origins.get(path, "config")
            raise ConfigError(f"{where}: [{path}] must be a table, got {raw!r}")
        out[path] = _convert_section(raw, section.type, path, origins)
    leftovers = _leaves(merged)
    if leftovers:
        key = leftovers[0]
        known = ", ".join(f"[{p}]" for p in sorted(sections))
        raise ConfigError(
            f"{origins.get(key, 'config')}: unknown key `{key}`; known sections are {known}"
        )
    return out


def _convert_section(raw: dict, kind: Any, path: str, origins: dict[str, str]) -> Any:
    # A table of named tables ([providers.NAME]) is decoded entry by entry so an error names the entry.
    if typing.get_origin(kind) is dict:
        value_type = typing.get_args(kind)[1]
        out = {}
        for key, value in raw.items():
            try:
                out[key] = msgspec.convert(value, value_type, strict=False)
            except msgspec.ValidationError as exc:
                raise ConfigError(_explain(exc, f"{path}.{key}", value if isinstance(value, dict) else {}, origins)) from None
        return out
    try:
        return msgspec.convert(raw, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(exc, path, raw, origins)) from None


def _pop(tree: dict, dotted: str) -> Any:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.get(part)
        if not isinstance(node, dict):
            return None
    value = node.pop(parts[-1], None)
    _prune(tree)
    return value


def _prune(tree: dict) -> None:
    for key in list(tree):
        if isinstance(tree[key], dict):
            _prune(tree[key])
            if not tree[key]:
                del tree[key]


def _leaves(tree: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.extend(_leaves(value, dotted + "."))
        else:
            out.append(dotted)
    return out


def _explain(exc: msgspec.ValidationError, section: str, raw: dict, origins: dict[str, str]) -> str:
    problem = field_error(exc)
    parts = field_parts(problem.param)
    if problem.problem == "missing":  # point at the table that lacks the key, as before
        parts = parts[:-1]
    message = problem.message
    key = ".".join([section, *parts])
    value: Any = raw
    for part in parts:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            value = None
            break
    where = _origin(origins, key)
    if problem.problem == "unknown":
        return f"{where}: unknown key `{key}` (value {value!r}); remove it or check its spelling"
    return f"{where}: key `{key}` has value {value!r}: {message.rstrip('.')}"


def _origin(origins: dict[str, str], key: str) -> str:
    parts = key.split(".")
    while parts:
        hit = origins.get(".".join(parts))
        if hit:
            return hit
        parts.pop()
    return "config"
