"""The aiohttp app factory: middlewares, plugin routes, and every resource's open/close."""

from __future__ import annotations

import asyncio
import os
import traceback
from collections.abc import AsyncIterator

from aiohttp import web

from bmo.config import Config
from bmo.host import Host, ServeSettings, resolve_data_dir
from bmo.registry import collect_registry, maybe_await
from bmo.server.auth import PUBLIC_ROUTES, TrustedProxies, requester_of, token_matches
from bmo.server.errors import ApiError, envelope_for_http_exception
from bmo.store import Database, collect_migrations
from bmo.tracing.otel import create_tracer_provider, get_tracer
from bmo.tracing.records import RecordLog

HOST_KEY = web.AppKey("bmo_host", Host)


def get_host(request: web.Request) -> Host:
    return request.app[HOST_KEY]


def build_host(config: Config, pm, serve: ServeSettings, env: dict[str, str] | None = None) -> Host:
    env = dict(os.environ if env is None else env)
    options = config.section("options.http_server")
    proxies = list(options.requester_trusted_proxies)
    proxies += [p for p in env.get("BMO_REQUESTER_TRUSTED_PROXIES", "").split(",") if p.strip()]
    host = Host(
        config=config,
        pm=pm,
        data_dir=resolve_data_dir(config, env),
        serve=serve,
        trusted_proxies=TrustedProxies.parse(proxies),
    )
    host.registry = collect_registry(pm, host)
    return host


def _is_api_path(path: str) -> bool:
    return path.startswith("/v1/") or path == "/v1"


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Every error under /v1/ leaves in the OpenAI envelope; never a traceback."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400 or not _is_api_path(request.path):
            raise
        return envelope_for_http_exception(exc).response()
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:
        host = request.app[HOST_KEY]
        host.emit(
            "bmo.http_error", "error", path=request.path, method=request.method,
            error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=8),
        )
        return ApiError(500, "Internal error while handling the request; the server log has the details.").response()


@web.middleware
async def auth_middleware(request: web.Request, handler) -> web.StreamResponse:
    host = request.app[HOST_KEY]
    request["requester"] = requester_of(request, host.trusted_proxies)
    token = host.serve.auth_token
    if token is None:
        return await handler(request)
    route = request.match_info.route
    if (request.method, route.resource.canonical if route.resource else "") in PUBLIC_ROUTES:
        return await handler(request)
    if token_matches(request.headers.get("Authorization"), token):
        return await handler(request)
    response = ApiError(
        401,
        "Missing or wrong bearer token. Send 'Authorization: Bearer <token>' with the token given to "
        "bmo serve --auth-token (or BMO_AUTH_TOKEN); in the openai SDK that is api_key=<token>.",
    ).response()
    callback = request.app["bmo_auth_failure"].get(route.resource.canonical if route.resource else None)
    if callback is not None:
        result = await maybe_await(callback(request, response))
        response = result if isinstance(result, web.StreamResponse) else response
    return response


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(host: Host) -> web.Application:
    """An app serving ``host``; resources open on startup and close on cleanup."""
    options = host.config.section("options.http_server")
    app = web.Application(
        client_max_size=options.max_body_bytes,
        middlewares=[error_middleware, auth_middleware],
    )
    app[HOST_KEY] = host
    app["bmo_auth_failure"] = {}
    app.router.add_get("/healthz", _healthz)
    for spec in host.registry.routes:
        route = app.router.add_route(spec.method, spec.path, spec.handler)
        if spec.on_auth_failure is not None:
            app["bmo_auth_failure"][route.resource.canonical] = spec.on_auth_failure
    app.cleanup_ctx.append(_resources)
    return app


async def _resources(app: web.Application) -> AsyncIterator[None]:
    host: Host = app[HOST_KEY]
    tracing = host.config.section("tracing")
    host.records = RecordLog(
        host.log_dir, max_bytes=tracing.log_max_bytes, backups=tracing.log_backups,
        stderr=tracing.log_stderr, hook=host.pm.hook.bmo_trace_record,
    )
    host.tracer_provider = create_tracer_provider(tracing)
    host.tracer = get_tracer(host.tracer_provider)
    host.db = Database(host.db_path)
    await host.db.open(collect_migrations(host.pm))
    for failure in host.pm.bmo_failures:
        host.emit("bmo.plugin_failed", "error", plugin=failure.name, error=failure.error)
    for result in host.pm.hook.bmo_startup(host=host):
        await maybe_await(result)
    host.emit("bmo.started", addr=host.serve.addr, auth=host.serve.auth_token is not None, data_dir=str(host.data_dir))
    if not host.serve.loopback:
        host.emit("bmo.unsafe_bind", "warn", addr=host.serve.addr)
    try:
        yield
    finally:
        for result in host.pm.hook.bmo_shutdown(host=host):
            try:
                await maybe_await(result)
            except Exception as exc:  # one plugin's shutdown must not skip the rest
                host.emit("bmo.shutdown_failed", "error", error=f"{type(exc).__name__}: {exc}")
        host.emit("bmo.stopped", addr=host.serve.addr)
        await host.db.close()
        await asyncio.to_thread(host.tracer_provider.shutdown)
        await asyncio.to_thread(host.records.close)
