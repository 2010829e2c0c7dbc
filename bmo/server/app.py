"""The aiohttp app factory: middlewares, plugin routes, and every resource's open/close."""

from __future__ import annotations

import asyncio
import os
import traceback
from collections.abc import AsyncIterator

from aiohttp import web

from bmo.config import Config
from bmo.hook_calls import acall_each, in_reverse_of
from bmo.host import Host, HostPlan, ServeSettings, close_host, open_host, resolve_data_dir
from bmo.net import TrustedProxies
from bmo.registry import collect_registry, maybe_await
from bmo.server.auth import PUBLIC_ROUTES, requester_of, token_matches
from bmo.server.boundary import Boundary, add_cors_headers, make_body_middleware, make_origin_middleware
from bmo.server.errors import ApiError, envelope_for_http_exception, store_error_reply
from bmo.server.event_loop import loop_name
from bmo.server.protocol import handler_args
from bmo.server.request_trace import make_request_trace_middleware
from bmo.store import StoreError, collect_migrations
from bmo.tracing.otel import export_settings

# What the app was built from; the started host appears under HOST_KEY once resources are open.
PLAN_KEY = web.AppKey("bmo_host_plan", HostPlan)
HOST_KEY = web.AppKey("bmo_host", Host)
# Route template -> on_auth_failure(request, response) callbacks routes asked for.
AUTH_FAILURE_KEY = web.AppKey("bmo_auth_failure", dict)
# {"done": bool}: whether on_shutdown already ran the plugins' shutdown hooks.
_SHUTDOWN_STATE_KEY = web.AppKey("bmo_shutdown_state", dict)


def get_host(request: web.Request) -> Host:
    """The started :class:`Host` serving this request (store, records and tracer open)."""
    return request.app[HOST_KEY]


def build_host(config: Config, pm, serve: ServeSettings, env: dict[str, str] | None = None) -> HostPlan:
    """The plan of a host for ``config``: data dir resolved, trusted proxies parsed, plugin contributions collected.

    Raises ``ValueError`` with a fixable message for a bad trusted-proxy entry or tracing setting.
    """
    env = dict(os.environ if env is None else env)
    options = config.section("options.http_server")
    proxies = list(options.requester_trusted_proxies)
    proxies += [p for p in env.get("BMO_REQUESTER_TRUSTED_PROXIES", "").split(",") if p.strip()]
    export_settings(config.section("tracing"), env)  # a bad protocol fails here, before binding
    plan = HostPlan(
        config=config,
        pm=pm,
        data_dir=resolve_data_dir(config, env),
        serve=serve,
        trusted_proxies=TrustedProxies.parse(proxies),
        env=env,
    )
    plan.registry = collect_registry(pm, plan)
    return plan


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
    except StoreError as exc:  # a full or failing disk is the operator's to fix, not an internal error
        request.app[HOST_KEY].emit("bmo.store_unavailable", "warn", path=request.path, method=request.method,
                                   status=exc.status, error=str(exc))
        return store_error_reply(exc).response()
    except Exception as exc:
        host = request.app[HOST_KEY]
        host.emit(
            "bmo.http_error", "error", path=request.path, method=request.method,
            error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=8),
        )
        return ApiError(500, "Internal error while handling the request; the server log has the details.").response()


@web.middleware
async def auth_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Bearer token on every route but the public ones; forwarded identity only from trusted peers."""
    host = request.app[HOST_KEY]
    request["requester"] = requester_of(request, host.trusted_proxies)
    token = host.serve.auth_token
    if token is None:
        return await handler(request)
    canonical = route_canonical(request)
    if (request.method, canonical) in PUBLIC_ROUTES:
        return await handler(request)
    if token_matches(request.headers.get("Authorization"), token):
        return await handler(request)
    # Unknown paths get 401 too, so an unauthenticated caller learns nothing about the routes.
    response = ApiError(
        401,
        "Missing or wrong bearer token. Send 'Authorization: Bearer <token>' with the token given to "
        "bmo serve --auth-token (or BMO_AUTH_TOKEN); in the openai SDK that is api_key=<token>.",
        headers={"WWW-Authenticate": 'Bearer realm="bmo"'},
    ).response()
    callback = request.app[AUTH_FAILURE_KEY].get(canonical) if canonical else None
    if callback is not None:
        try:
            result = await maybe_await(callback(request, response))
        except Exception as exc:  # an observer's bug must not turn a 401 into a 500
            host.emit("bmo.auth_hook_failed", "error", path=request.path, error=f"{type(exc).__name__}: {exc}")
            result = None
        response = result if isinstance(result, web.StreamResponse) else response
    return response


def route_canonical(request: web.Request) -> str:
    """The matched route's template, or "" when nothing matched."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else ""


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(plan: HostPlan) -> web.Application:
    """An app serving ``plan``; its started :class:`Host` opens on startup and closes on cleanup."""
    options = plan.config.section("options.http_server")
    boundary = Boundary.from_options(options, plan.serve.host)
    app = web.Application(
        client_max_size=options.max_body_bytes,
        handler_args=handler_args(options),
        # Outermost first: the request span sees the final status of everything inside it.
        middlewares=[make_request_trace_middleware(HOST_KEY), make_origin_middleware(boundary, HOST_KEY),
                     error_middleware, auth_middleware, make_body_middleware(boundary, HOST_KEY)],
    )
    app.on_response_prepare.append(add_cors_headers)
    app[PLAN_KEY] = plan
    app[AUTH_FAILURE_KEY] = {}
    app.router.add_get("/healthz", _healthz)
    for spec in plan.registry.routes:
        route = app.router.add_route(spec.method, spec.path, spec.handler)
        if spec.on_auth_failure is not None:
            app[AUTH_FAILURE_KEY][route.resource.canonical] = spec.on_auth_failure
    app.cleanup_ctx.append(_resources)
    app[_SHUTDOWN_STATE_KEY] = {"done": False}
    app.on_shutdown.append(_plugins_shutdown)
    return app


async def _resources(app: web.Application) -> AsyncIterator[None]:
    """Open the started host (records, tracer, store), run startup hooks; close in reverse.

    Runs after in-flight requests finished (or were cancelled at the grace deadline), so the
    last ledger rows a handler writes still reach the database before it closes.
    """
    plan = app[PLAN_KEY]
    host = app[HOST_KEY] = await open_host(plan, collect_migrations(plan.pm))
    try:
        for failure in host.pm.failures:
            host.emit("bmo.plugin_failed", "error", plugin=failure.name, error=failure.error)
        await acall_each(host.pm.hook.bmo_startup, {"host": host})
    except BaseException:
        # Plugins whose startup already ran get to release what they opened.
        await _run_shutdown_hooks(host)
        await close_host(host)
        raise
    host.emit("bmo.started", addr=host.serve.addr, auth=host.serve.auth_token is not None, data_dir=str(host.data_dir),
              event_loop=loop_name(asyncio.get_running_loop()))
    if not host.serve.loopback:
        host.emit("bmo.unsafe_bind", "warn", addr=host.serve.addr)
    try:
        yield
    finally:
        if not app[_SHUTDOWN_STATE_KEY]["done"]:  # on_shutdown does not run when startup of a later step failed
            await _run_shutdown_hooks(host)
        host.emit("bmo.stopped", addr=host.serve.addr)
        await close_host(host)


async def _plugins_shutdown(app: web.Application) -> None:
    """Stop accepting is done; tell plugins to wind down (cancel runs) before in-flight requests are awaited."""
    app[_SHUTDOWN_STATE_KEY]["done"] = True
    await _run_shutdown_hooks(app[HOST_KEY])


async def _run_shutdown_hooks(host: Host) -> None:
    """``bmo_shutdown`` in the reverse of startup order: the agent core stops its runs before the
    plugins it may be using (the compat ledger, MCP connections) wind down."""

    def failed(plugin: str, exc: Exception) -> None:  # one plugin's shutdown must not skip the rest
        host.emit("bmo.shutdown_failed", "error", plugin=plugin, error=f"{type(exc).__name__}: {exc}")

    hook = host.pm.hook
    order = in_reverse_of(host.pm, hook.bmo_shutdown, hook.bmo_startup)
    await acall_each(hook.bmo_shutdown, {"host": host}, order=order, on_error=failed)
