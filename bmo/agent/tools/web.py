"""web_fetch: GET one http(s) URL, bounded in time and size."""

from __future__ import annotations

import asyncio
import html
import re

import aiohttp

from bmo.agent.tools.base import NETWORK, Tool, ToolContext, ToolFailed

_TAGS = re.compile(r"<(script|style)[^>]*>.*?</\1>|<[^>]+>", re.IGNORECASE | re.DOTALL)
_BLANKS = re.compile(r"\n\s*\n+")


class WebFetch(Tool):
    name = "web_fetch"
    description = "Fetch a URL with HTTP GET; returns the status and the text (HTML reduced to text)."
    parameters = {
        "type": "object",
        "properties": {"url": {"type": "string", "description": "An http:// or https:// URL"}},
        "required": ["url"],
    }
    tool_class = NETWORK

    def permission_target(self, args: dict) -> str:
        return str(args.get("url", ""))

    async def run(self, args: dict, ctx: ToolContext) -> str:
        url = args.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ToolFailed("url must be an http:// or https:// URL")
        opts = ctx.host.config.section("agent")
        timeout = aiohttp.ClientTimeout(total=opts.web_fetch_timeout_s)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http:
                async with http.get(url, headers={"User-Agent": "bmo-web-fetch"}) as resp:
                    data = await resp.content.read(opts.web_fetch_max_bytes + 1)
                    ctype = resp.headers.get("Content-Type", "")
                    status = resp.status
        except asyncio.TimeoutError:
            raise ToolFailed(f"{url} did not answer within {opts.web_fetch_timeout_s:g}s") from None
        except aiohttp.ClientError as exc:
            raise ToolFailed(f"fetching {url} failed: {type(exc).__name__}: {exc}") from None
        truncated = len(data) > opts.web_fetch_max_bytes
        text = data[: opts.web_fetch_max_bytes].decode("utf-8", errors="replace")
        if "html" in ctype.lower():
            text = _BLANKS.sub("\n\n", html.unescape(_TAGS.sub("", text))).strip()
        head = f"HTTP {status} {ctype}".strip()
        return f"{head}\n{text}" + ("\n[truncated]" if truncated else "")
