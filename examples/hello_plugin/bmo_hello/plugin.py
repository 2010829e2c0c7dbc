"""The hello plugin: every kind of contribution a third party usually makes, once.

- config section ``[options.hello]`` and ``bmo config show-hello``
- a table of its own, ``hello_visits``, created by a migration
- route ``GET /v1/hello`` (records each visit, with the trusted requester if any)
- slash command ``/hello [name]``
- sidebar indicator ``Hello: <greeting>``
"""

from __future__ import annotations

import json

import msgspec
from aiohttp import web

from bmo.hookspecs import hookimpl
from bmo.server.app import get_host
from bmo.server.auth import requester_label

SECTION = "options.hello"


class HelloOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[options.hello]``: how the plugin greets."""

    greeting: str = "Hello"
    name: str = "world"


def greet(options: HelloOptions, name: str = "") -> str:
    return f"{options.greeting}, {name or options.name}!"


@hookimpl
def bmo_config_sections(register):
    register(SECTION, HelloOptions)


def render_show(config, as_json: bool) -> str:
    options = config.section(SECTION)
    data = msgspec.to_builtins(options)
    if as_json:
        return json.dumps({"section": SECTION, **data, "example": greet(options)}, indent=2)
    return "\n".join([f"[{SECTION}]", *(f"{k} = {json.dumps(v)}" for k, v in data.items()), f"# says: {greet(options)}"])


@hookimpl
def bmo_config_show(register):
    register(
        "hello", render_show,
        help="Show the hello plugin's resolved settings.",
        example='[options.hello]\ngreeting = "Hello"\nname = "world"\n# says: Hello, world!',
    )


@hookimpl
def bmo_migrations(register):
    register("hello", 1, """
        CREATE TABLE hello_visits (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            requester TEXT NOT NULL DEFAULT '',
            at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        )
    """)


async def hello_route(request: web.Request) -> web.Response:
    host = get_host(request)
    options = host.config.section(SECTION)
    name = request.query.get("name", "") or options.name
    # Set only when a trusted proxy asserted who is asking (BMO_REQUESTER_TRUSTED_PROXIES).
    requester = requester_label(request.get("requester"))
    # The store's single writer commits it; the response is sent only once the row is durable.
    visit_id = await host.db.write("INSERT INTO hello_visits (name, requester) VALUES (?, ?)", (name, requester))
    return web.json_response({
        "object": "hello",
        "message": greet(options, name),
        "requester": requester,
        "visit": visit_id,
    })


@hookimpl
def bmo_routes(register):
    register("GET", "/v1/hello", hello_route)


def hello_slash(host, args: str) -> str:
    return greet(host.config.section(SECTION), args)


@hookimpl
def bmo_slash_commands(register):
    register("hello", hello_slash, help="Greet someone: /hello [name]")


@hookimpl
def bmo_sidebar_indicators(register):
    register("Hello", lambda host: host.config.section(SECTION).greeting)
