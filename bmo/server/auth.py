"""The security boundary: bearer auth and trusted requester identity."""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass

from aiohttp import web

# Routes a liveness probe must reach without a token.
PUBLIC_ROUTES = {("GET", "/healthz"), ("HEAD", "/healthz")}
REQUESTER_HEADERS = {
    "user": "X-Auth-Request-User",
    "email": "X-Auth-Request-Email",
    "preferred_username": "X-Auth-Request-Preferred-Username",
    "groups": "X-Auth-Request-Groups",
}


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback IP (127.0.0.0/8, ::1); names are never resolved."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_addr(addr: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) into its parts, with a fixable error."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"--addr {addr!r} is not HOST:PORT; use e.g. 127.0.0.1:9000")
    return host.strip("[]"), int(port)


def token_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (scheme case-insensitive, constant-time compare)."""
    if not header:
        return False
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


@dataclass(frozen=True)
class TrustedProxies:
    """The peers allowed to assert requester identity with ``X-Auth-Request-*`` headers."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, entries: list[str]) -> "TrustedProxies":
        nets = []
        for entry in entries:
            entry = entry.strip()
            if not entry:
                continue
            try:
                nets.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(
                    f"BMO_REQUESTER_TRUSTED_PROXIES entry {entry!r} is not an IP or CIDR (e.g. 10.0.0.5 or 10.0.0.0/8)"
                ) from None
        return cls(tuple(nets))

    def trusts(self, peer: str | None) -> bool:
        if not peer or not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(peer.split("%", 1)[0])
        except ValueError:
            return False
        # On a dual-stack socket an IPv4 peer shows up as ::ffff:a.b.c.d; judge it as IPv4.
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.networks)


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
