"""What an upstream failure may tell an API client, and what only the records and the ledger get.

A client learns the provider's name and the kind of failure. It never sees the base URL, an
aiohttp exception class or a 5xx body: those map the internal network. The full text goes in
each error's ``detail``.
"""

from __future__ import annotations

import asyncio
import ssl

import aiohttp
import msgspec

MAX_RELAYED_4XX = 300  # characters of a 4xx error message passed on to the client


def network_failure(exc: BaseException) -> str:
    """The kind of a connection failure in plain words, without addresses or class names."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "its host name does not resolve"
    if isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError)):
        return "the TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, ConnectionRefusedError):
            return "the connection was refused"
        return "the connection could not be opened"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the answer's body was cut or malformed"
    if isinstance(exc, asyncio.TimeoutError):
        return "it timed out"
    return "a network error"


def describe(exc: BaseException) -> str:
    """The full text of an exception, for ``detail``."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def error_text(resp: aiohttp.ClientResponse) -> tuple[str, str]:
    """(what a client may read, the full body) of an upstream error answer.

    A 4xx passes on the JSON ``error.message`` (it is about the request); a 5xx or a body that
    is not an OpenAI error passes on nothing of the body.
    """
    try:
        raw = await resp.content.read(64 * 1024)
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return "", resp.reason or ""
    full = raw.decode(errors="replace")[:2000] or (resp.reason or "")
    if resp.status >= 500:
        return "", full
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return "", full
    err = body.get("error") if isinstance(body, dict) else None
    message = err.get("message") if isinstance(err, dict) else err
    if isinstance(message, str) and message:
        return message[:MAX_RELAYED_4XX], full
    return "", full
