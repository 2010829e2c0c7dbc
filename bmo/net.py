"""Addresses: ``HOST:PORT`` parsing, loopback checks and the trusted-proxy list (no HTTP here)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


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
