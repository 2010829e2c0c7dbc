"""The security boundary: bearer auth and trusted requester identity."""

from __future__ import annotations

import hmac

from aiohttp import web

from bmo.net import TrustedProxies

# Routes a liveness probe must reach without a token.
PUBLIC_ROUTES = {("GET", "/healthz"), ("HEAD", "/healthz")}
REQUESTER_HEADERS = {
    "user": "X-Auth-Request-User",
    "email": "X-Auth-Request-Email",
    "preferred_username": "X-Auth-Request-Preferred-Username",
    "groups": "X-Auth-Request-Groups",
}


def token_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (scheme case-insensitive, constant-time compare)."""
    if not header:
        return False
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def requester_of(request: web.Request, proxies: TrustedProxies) -> dict[str, str] | None:
    """The forwarded identity when the TCP peer is a trusted proxy, else None."""
    if not proxies.trusts(request.remote):
        return None
    identity = {k: request.headers[h] for k, h in REQUESTER_HEADERS.items() if request.headers.get(h)}
    return identity or None


def requester_label(requester: dict[str, str] | None) -> str:
    """One string to store for who asked: user, else email, else preferred username."""
    if not requester:
        return ""
    return requester.get("user") or requester.get("email") or requester.get("preferred_username") or ""
