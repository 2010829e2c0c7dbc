"""Which addresses web_fetch may connect to, and a resolver that connects only to those it checked.

A name is resolved once; when any of its addresses is loopback, private, link-local (the cloud
metadata address included), multicast, unspecified or otherwise not globally routable (an
IPv4-mapped, NAT64, 6to4 or Teredo form of one too), the fetch is refused unless the operator's
allow-list opens it. aiohttp then connects through :class:`PinnedResolver`, which hands back
exactly the addresses that were checked: there is no second lookup a rebinding DNS could answer.
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import socket
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult

from bmo.agent.tools.base import ToolFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
ALLOW_HINT = "an operator can open it with [agent.web_fetch] allow_hosts or allow_cidrs"


def refusal(ip: IPAddress) -> str | None:
    """Why BMO must not connect to ``ip`` by default, or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            inner = refusal(embedded)
            return f"an IPv6 form of {embedded}, {inner}" if inner else None
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address" + (" (the cloud metadata service)" if str(ip) == "169.254.169.254" else "")
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "an address that is not globally routable"
    return None


class AddressPolicy:
    """The default refusals and the operator's allow-list (host globs and CIDRs)."""

    def __init__(self, allow_hosts: list[str], allow_cidrs: list[str]):
        self.allow_hosts = [h.lower().strip("[]") for h in allow_hosts]
        self.allow_cidrs = [ipaddress.ip_network(c, strict=False) for c in allow_cidrs]

    def host_allowed(self, host: str) -> bool:
        return any(fnmatch.fnmatchcase(host.lower(), pattern) for pattern in self.allow_hosts)

    def address_refusal(self, ip: IPAddress) -> str | None:
        if any(ip in net for net in self.allow_cidrs if net.version == ip.version):
            return None
        mapped = getattr(ip, "ipv4_mapped", None)
        if mapped is not None and any(mapped in net for net in self.allow_cidrs if net.version == 4):
            return None
        return refusal(ip)

    async def resolve(self, host: str, port: int) -> list[ResolveResult]:
        """Every address of ``host``, each one checked; ToolFailed naming the first refused one."""
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ToolFailed(f"the name {host} could not be resolved: {exc.strerror}") from None
        allowed = self.host_allowed(host)
        results: list[ResolveResult] = []
        for family, _, proto, _, sockaddr in infos:
            ip = ipaddress.ip_address(sockaddr[0])
            why = None if allowed else self.address_refusal(ip)
            if why is not None:
                named = host if host == str(ip) else f"{host} resolves to {ip},"
                raise ToolFailed(f"refused: {named} {why}; {ALLOW_HINT}")
            results.append(ResolveResult(hostname=host, host=str(ip), port=port, family=family, proto=proto,
                                         flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV))
        if not results:
            raise ToolFailed(f"the name {host} has no address")
        return results


class PinnedResolver(AbstractResolver):
    """Answers aiohttp with the addresses a :class:`AddressPolicy` checked, and nothing else."""

    def __init__(self) -> None:
        self.pinned: dict[tuple[str, int], list[ResolveResult]] = {}

    def pin(self, host: str, port: int, results: list[ResolveResult]) -> None:
        self.pinned[(host, port)] = results

    async def resolve(self, host: str, port: int = 0, family: Any = socket.AF_INET) -> list[ResolveResult]:
        try:
            return self.pinned[(host, port)]
        except KeyError:
            raise OSError(f"{host}:{port} was not checked before connecting") from None

    async def close(self) -> None:
        self.pinned.clear()
