"""Host routes: loaded plugins, posture, and the slash/sidebar surfaces the TUI reads over HTTP (not `/healthz`, which the app serves itself)."""

from __future__ import annotations

from aiohttp import web

from bmo.hookspecs import hookimpl
from bmo.plugins import describe_plugins
from bmo.server.errors import ApiError


def _host(request: web.Request):
    from bmo.server.app import HOST_KEY

    return request.app[HOST_KEY]


async def plugins_json(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": describe_plugins(_host(request).pm)})


async def posture_json(request: web.Request) -> web.Response:
    return web.json_response(await _host(request).posture())


async def slash_run(request: web.Request) -> web.Response:
    host = _host(request)
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "Body must be JSON like {\"command\": \"/openai-compat\"}.", param="command") from None
    line = body.get("command") if isinstance(body, dict) else None
    if not isinstance(line, str) or not line.strip():
        raise ApiError(400, "Field 'command' must be a slash command string such as \"/openai-compat\".", param="command")
    width = body.get("width", 100)
    width = width if isinstance(width, int) and 20 <= width <= 400 else 100
    return web.json_response({"command": line, "text": await host.render_slash(line, width)})


async def slash_list(request: web.Request) -> web.Response:
    cmds = _host(request).registry.slash_commands.values()
    return web.json_response({"object": "list", "data": [
        {"name": c.name, "aliases": list(c.aliases), "help": c.help, "plugin": c.plugin} for c in cmds
    ]})


async def sidebar_json(request: web.Request) -> web.Response:
    rows = await _host(request).sidebar()
    return web.json_response({"object": "list", "data": [{"label": k, "value": v} for k, v in rows]})


@hookimpl
def bmo_routes(register):
    register("GET", "/v1/bmo/plugins", plugins_json)
    register("GET", "/v1/bmo/posture", posture_json)
    register("GET", "/v1/bmo/slash", slash_list)
    register("POST", "/v1/bmo/slash", slash_run)
    register("GET", "/v1/bmo/sidebar", sidebar_json)
