"""web_fetch: GET one http(s) URL inside the network boundary, bounded in time, size and redirects.

Every hop (the URL and each redirect) is resolved and checked by :class:`AddressPolicy`, then
connected to through the pinned addresses. A redirect is followed only when a permission rule
allows its URL or it stays on the origin the permission was given for (an upgrade from http to
https included); a rule denying it refuses it; otherwise the model is told where it leads, so
that fetching it is a call of its own, with its own permission check.
"""

from __future__ import annotations

import asyncio

import aiohttp
from yarl import URL

from bmo.agent.config import WebFetchOptions
from bmo.agent.permissions import DENY, rules_decide
from bmo.agent.tools.base import NETWORK, Tool, ToolContext, ToolFailed
from bmo.agent.tools.targets import Target
from bmo.agent.tools.web.addresses import AddressPolicy, PinnedResolver
from bmo.agent.tools.web.decode import HTML_TYPES, charset_of, decode, html_to_markdown

REDIRECTS = (301, 302, 303, 307, 308)
_CHUNK = 64 * 1024


class WebFetch(Tool):
    name = "web_fetch"
    description = "Fetch a URL with HTTP GET; returns the status and the text (HTML as Markdown)."
    parameters = {
        "type": "object",
        "properties": {"url": {"type": "string", "description": "An http:// or https:// URL"}},
        "required": ["url"],
    }
    tool_class = NETWORK

    def permission_target(self, args: dict) -> str:
        return str(args.get("url", ""))

    def permission_scope(self, args, workspace) -> Target:
        return Target.url(_normal(self.permission_target(args)))

    async def run(self, args: dict, ctx: ToolContext) -> str:
        url = args.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ToolFailed("url must be an http:// or https:// URL")
        agent = ctx.host.config.section("agent")
        try:
            async with asyncio.timeout(agent.web_fetch_timeout_s):
                return await _fetch(URL(url), agent.web_fetch_max_bytes, _options(ctx), agent.permission_rules)
        except TimeoutError:
            raise ToolFailed(f"{url} did not answer within {agent.web_fetch_timeout_s:g}s") from None
        except aiohttp.ClientError as exc:
            raise ToolFailed(f"fetching {url} failed: {type(exc).__name__}: {exc}") from None
        except ValueError as exc:  # yarl on a malformed URL
            raise ToolFailed(f"url {url!r} is not a valid URL: {exc}") from None


def _options(ctx: ToolContext) -> WebFetchOptions:
    try:
        return ctx.host.config.section("agent.web_fetch")
    except (AttributeError, KeyError):
        return WebFetchOptions()


def _normal(url: str) -> str:
    try:
        return str(URL(url))
    except (ValueError, TypeError):
        return url


async def _fetch(url: URL, limit: int, opts: WebFetchOptions, rules: list) -> str:
    policy = AddressPolicy(opts.allow_hosts, opts.allow_cidrs)
    resolver = PinnedResolver()
    connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
    approved = url
    async with aiohttp.ClientSession(connector=connector, headers={"User-Agent": "bmo-web-fetch"}) as http:
        for hop in range(opts.max_redirects + 1):
            if url.scheme not in ("http", "https") or not url.host:
                raise ToolFailed(f"redirect to {url} refused: only http(s) URLs with a host are fetched")
            port = url.port or (443 if url.scheme == "https" else 80)
            if hop:
                ruled = rules_decide(rules, WebFetch.name, Target.url(str(url)))
                if ruled == DENY:
                    raise ToolFailed(f"redirect to {url} refused by a permission rule")
            try:
                checked = await policy.resolve(url.host, port)
            except ToolFailed as exc:
                raise ToolFailed(f"{'redirect to ' if hop else ''}{url} {exc}") from None
            if hop and ruled is None and not _same_origin(approved, url):
                return (f"HTTP redirect from {approved} to {url}, not followed: it leaves the origin that was "
                        "approved. Call web_fetch with that URL to fetch it (it is permission-checked).")
            resolver.pin(url.host, port, checked)
            async with http.get(url, allow_redirects=False) as resp:
                location = resp.headers.get("Location")
                if resp.status in REDIRECTS and location:
                    url = resp.url.join(URL(location))
                    continue
                return await _answer(resp, limit)
    raise ToolFailed(f"more than {opts.max_redirects} redirects ([agent.web_fetch] max_redirects)")


def _same_origin(approved: URL, url: URL) -> bool:
    upgrade = approved.scheme == "http" and url.scheme == "https"
    return (approved.host or "").lower() == (url.host or "").lower() and (
        (approved.scheme == url.scheme and approved.port == url.port) or (upgrade and url.port == 443))


async def _answer(resp: aiohttp.ClientResponse, limit: int) -> str:
    body = bytearray()
    truncated = False
    async for chunk in resp.content.iter_chunked(_CHUNK):
        room = limit - len(body)
        if len(chunk) > room:
            body += chunk[:room]
            truncated = True
            break
        body += chunk
    ctype = resp.headers.get("Content-Type", "")
    mime = resp.content_type.lower() if ctype else ""  # aiohttp says octet-stream when there is no header
    is_html = mime in HTML_TYPES
    size = f"{len(body)} of {resp.content_length} bytes" if resp.content_length else f"{len(body)} bytes"
    head = f"HTTP {resp.status} {ctype}".strip()
    mark = f"\n[truncated: showing the first {size}; the page is larger than web_fetch_max_bytes ({limit})]"
    if not (mime.startswith("text/") or is_html or mime.endswith(("json", "xml", "javascript")) or not mime):
        return f"{head}\n[{mime} content, {len(body)} bytes{', truncated' if truncated else ''}: not shown as text]"
    text = decode(bytes(body), charset_of(bytes(body), resp.charset, is_html), complete=not truncated)
    if is_html:
        text = await asyncio.to_thread(html_to_markdown, text)
    return (f"{head}\n" + (mark.strip() + "\n" if truncated else "") + text + (mark if truncated else ""))
