"""What PostgreSQL says differently from SQLite: placeholders, and which errors mean the store is failing.

Store users write SQL both engines accept; the one thing translated is the placeholder
syntax (``?`` and ``:name`` to psycopg's ``%s`` and ``%(name)s``), never the statements.
"""

from __future__ import annotations

import functools
import re

import psycopg

from bmo.store.errors import StoreError, StoreFull

# Quoted text and comments keep their ? and :name (only % is doubled); ``::`` is a cast, not a named parameter.
_TOKENS = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|::|\?|:[A-Za-z_]\w*|%""", re.S)
_INSERT_INTO = re.compile(r"\s*INSERT\s+(?:OR\s+\w+\s+)?INTO\s+([A-Za-z_][\w.]*)", re.I)


@functools.lru_cache(maxsize=1024)
def translate(sql: str, with_params: bool) -> str:
    """``sql`` with psycopg placeholders; a literal ``%`` is doubled when psycopg will read the text for them."""
    if not with_params:  # psycopg passes a query without parameters as it is
        return sql

    def swap(match: re.Match) -> str:
        token = match.group()
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        if token[0] == ":" and token != "::":
            return f"%({token[1:]})s"
        return token.replace("%", "%%")  # psycopg reads a % inside quotes and comments too

    return _TOKENS.sub(swap, sql)


def text_safe(params: tuple | list | dict) -> tuple | list | dict:
    """``params`` with every NUL in a string replaced by U+FFFD: PostgreSQL text cannot hold NUL (SQLite's can).

    Without it a raw NUL from a client (a model name, a path in a tool call) fails the write, and
    the ledger's replay would fail every write queued behind it.
    """
    values = params.values() if isinstance(params, dict) else params
    if not any(type(v) is str and "\x00" in v for v in values):
        return params
    if isinstance(params, dict):
        return {k: v.replace("\x00", "\ufffd") if type(v) is str else v for k, v in params.items()}
    return [v.replace("\x00", "\ufffd") if type(v) is str else v for v in params]


@functools.lru_cache(maxsize=1024)
def inserted_table(sql: str) -> str | None:
    """The table an ``INSERT`` statement writes to (for the last inserted id), else None."""
    match = _INSERT_INTO.match(sql)
    return match.group(1).lower() if match else None


# SQLSTATEs of the server failing, not the job: connection (08), resources and disk (53), shutting down or
# starting (57P), the server's own I/O (58), a read-only standby (25006).
_OUTAGE_STATES = ("08", "53", "57P", "58", "25006")


def is_outage(exc: BaseException) -> bool:
    """True when the server or the connection failed (down, restarting, disk full, read-only), not the job."""
    if not isinstance(exc, psycopg.Error):
        return False
    sqlstate = exc.sqlstate
    if sqlstate is None:  # no answer from the server: the client lost (or never had) the connection
        return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
    return sqlstate.startswith(_OUTAGE_STATES)


def store_error(exc: BaseException, doing: str = "write") -> StoreError:
    """A :class:`StoreError` in words a client may read: never the server's address, user or password."""
    if isinstance(exc, StoreError):
        return exc
    if getattr(exc, "sqlstate", None) == "53100":  # disk_full
        return StoreFull(f"database {doing} failed: the disk of the PostgreSQL server is full (SQLSTATE 53100)")
    if is_outage(exc):
        return StoreError(f"database {doing} failed: the PostgreSQL server {_outage_words(exc)}")
    sqlstate = getattr(exc, "sqlstate", None)
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StoreError(f"database {doing} failed: {first_line}" + (f" (SQLSTATE {sqlstate})" if sqlstate else ""))


def _outage_words(exc: BaseException) -> str:
    """What happened to the server, from the error's kind and never from its text (that names the host)."""
    sqlstate = getattr(exc, "sqlstate", None) or ""
    if sqlstate.startswith("53"):
        return f"is out of resources (SQLSTATE {sqlstate})"
    if sqlstate == "25006":
        return "is read-only (a standby?)"
    if sqlstate.startswith("57P"):
        return f"is shutting down or restarting (SQLSTATE {sqlstate})"
    if sqlstate.startswith("58"):
        return f"reported an I/O error (SQLSTATE {sqlstate})"
    text = str(exc).lower()
    if "refused" in text or "no such file" in text:
        return "refused the connection (is it running?)"
    if "timeout" in text or "timed out" in text:
        return "did not answer in time"
    if "password" in text or "authentication" in text:
        return "refused the credentials in [store] url"
    return "closed the connection or cannot be reached"
