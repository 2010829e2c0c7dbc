"""An MCP server's tool as a BMO agent tool named ``mcp__<server>__<tool>``."""

from __future__ import annotations

import json
import re
from typing import Any

from bmo.agent.tools.base import Tool, ToolContext, ToolFailed
from bmo_mcp.connection import McpConnection, NotConnected, describe_error

PREFIX = "mcp__"
MAX_NAME = 64  # what OpenAI-style function names may hold
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def bmo_tool_name(server: str, tool: str) -> str:
    """``mcp__<server>__<tool>``, with characters a function name may not hold replaced by ``_``."""
    return (PREFIX + server + "__" + _UNSAFE.sub("_", tool))[:MAX_NAME]


def input_schema(schema: dict | None) -> dict:
    """The server's argument schema, as an object schema a model API accepts."""
    schema = dict(schema or {})
    if schema.get("type") != "object":
        # Newer MCP versions allow a non-object root, which function-calling APIs do not: accept any object.
        return {"type": "object", "properties": {}}
    schema.setdefault("properties", {})
    return schema


def result_text(result: Any) -> str:
    """What the model sees of a ``CallToolResult``: its text blocks joined, other blocks named."""
    parts: list[str] = []
    for block in result.content or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind} content, {block.mime_type}, not shown]")
        elif kind == "resource":
            resource = block.resource
            text = getattr(resource, "text", None)
            parts.append(text if text is not None else f"[binary resource {resource.uri}, not shown]")
        elif kind == "resource_link":
            parts.append(f"[resource link: {block.uri}]")
        else:
            parts.append(f"[{kind or 'unknown'} content, not shown]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


class McpTool(Tool):
    """One tool of one connected MCP server; its permission class is the server's ``tool_class``."""

    def __init__(self, connection: McpConnection, spec: Any):
        self.connection = connection
        self.remote_name = spec.name
        self.name = bmo_tool_name(connection.name, spec.name)
        description = (spec.description or getattr(spec, "title", None) or spec.name).strip()
        self.description = f"[MCP server {connection.name}] {description}"
        self.parameters = input_schema(spec.input_schema)
        self.tool_class = connection.options.tool_class

    def permission_target(self, args: dict) -> str:
        """Rules match MCP calls by tool name; the target is the server and tool, e.g. ``time/get_current_time``."""
        return f"{self.connection.name}/{self.remote_name}"

    async def run(self, args: dict, ctx: ToolContext) -> str:
        try:
            result = await self.connection.call_tool(self.remote_name, args)
        except NotConnected as exc:
            raise ToolFailed(str(exc), error_type="disconnected") from None
        except TimeoutError as exc:
            raise ToolFailed(str(exc) or f"{self.name} timed out", error_type="timeout") from None
        except Exception as exc:  # noqa: BLE001 - a protocol error (unknown tool, bad arguments) goes back to the model
            raise ToolFailed(f"MCP server {self.connection.name!r} refused {self.remote_name}: {describe_error(exc)}",
                             error_type="refused") from None
        text = result_text(result)
        if result.is_error:
            self.connection.failed_calls += 1
            raise ToolFailed(text or f"{self.remote_name} reported an error without a message")
        return text
