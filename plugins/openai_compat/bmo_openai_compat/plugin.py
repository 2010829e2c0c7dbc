"""The plugin's registration with the host: config, CLI, tables, routes, posture surfaces."""

from __future__ import annotations

from aiohttp import web

from bmo.hookspecs import hookimpl
from bmo_openai_compat import config_show, hookspecs
from bmo_openai_compat.config import SECTION, OpenAICompatOptions
from bmo_openai_compat.migrations import MIGRATIONS, OWNER
from bmo_openai_compat.migrations_postgresql import MIGRATIONS as POSTGRESQL_MIGRATIONS
from bmo_openai_compat.observe import outcomes

# Server-side modules load in the server-side hooks, so `bmo config …` and `bmo logs` start fast.


def _routes():
    """(method, path, handler, route label for records; None: not a recorded compat request)."""
    from bmo_openai_compat.http.chat import chat_completions
    from bmo_openai_compat.http.completions import completions
    from bmo_openai_compat.http.models import get_model, list_models
    from bmo_openai_compat.http.posture_route import posture
    from bmo_openai_compat.http.responses import create_response
    from bmo_openai_compat.http.runs import list_run_events, list_runs
    from bmo_openai_compat.http.stored_responses import (
        cancel_response,
        delete_response,
        get_response,
        list_input_items,
    )

    return (
        ("POST", "/v1/chat/completions", chat_completions, outcomes.CHAT_COMPLETIONS),
        ("GET", "/v1/models", list_models, outcomes.MODELS_LIST),
        ("GET", "/v1/models/{model_id:.+}", get_model, outcomes.MODELS_GET),
        ("POST", "/v1/completions", completions, outcomes.COMPLETIONS),
        ("GET", "/v1/openai-compat/runs", list_runs, outcomes.RUNS_LIST),
        ("GET", "/v1/openai-compat/runs/{request_id}/events", list_run_events, outcomes.RUN_EVENTS_LIST),
        ("POST", "/v1/responses", create_response, outcomes.RESPONSES_CREATE),
        ("GET", "/v1/responses/{response_id}", get_response, outcomes.RESPONSES_GET),
        ("DELETE", "/v1/responses/{response_id}", delete_response, outcomes.RESPONSES_DELETE),
        ("GET", "/v1/responses/{response_id}/input_items", list_input_items, outcomes.RESPONSES_INPUT_ITEMS),
        ("POST", "/v1/responses/{response_id}/cancel", cancel_response, outcomes.RESPONSES_CANCEL),
        ("GET", "/v1/openai-compat/posture", posture, None),
    )


@hookimpl
def bmo_addhooks(pluginmanager):
    pluginmanager.add_hookspecs(hookspecs)


@hookimpl
def bmo_config_sections(register):
    register(SECTION, OpenAICompatOptions)


@hookimpl
def bmo_config_show(register):
    register("openai-compat", config_show.render, help=config_show.HELP, example=config_show.EXAMPLE)


@hookimpl
def bmo_migrations(register):
    for version, sql in MIGRATIONS:
        register(OWNER, version, sql, postgresql=POSTGRESQL_MIGRATIONS.get(version))


def _auth_failure_observer(route: str):
    """Record a 401 on a compat route as outcome ``auth_failed`` (without reading the body)."""

    async def observe(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        from bmo.server.app import get_host
        from bmo_openai_compat.observe.compat_request import CompatRequest
        from bmo_openai_compat.sessions import SESSION_HEADER
        from bmo_openai_compat.state import state_of

        host = get_host(request)
        state = state_of(host)
        if not state.options.enabled or state.ledger is None:
            return response
        rt = CompatRequest(host, state.ledger, state.options, request, route)
        session_id = request.headers.get(SESSION_HEADER, "").strip()[:128]
        rt.set(session_id=session_id, is_session_reuse=bool(session_id))
        await rt.fire()
        await rt.finish(outcomes.AUTH_FAILED, response.status, error="missing or wrong bearer token")
        response.headers["X-Request-Id"] = rt.request_id
        return response

    return observe


@hookimpl
def bmo_routes(register, host):
    for method, path, handler, label in _routes():
        if label is None:
            register(method, path, handler)
        else:
            register(method, path, handler, on_auth_failure=_auth_failure_observer(label))


@hookimpl
def bmo_slash_commands(register, host):
    from bmo_openai_compat.observe.posture import slash_openai_compat

    register("openai-compat", slash_openai_compat,
             help="Read-only posture of the OpenAI-compatible API: policies, models, ledger, clients, outcomes.")


@hookimpl
def bmo_sidebar_indicators(register, host):
    from bmo_openai_compat.observe.posture import sidebar_value

    register("OpenAI compat", sidebar_value)


@hookimpl
def bmo_tools(register, host):
    from bmo_openai_compat.observe.posture import OpenAICompatStatusTool

    register(OpenAICompatStatusTool())


@hookimpl
def bmo_posture(register, host):
    from bmo_openai_compat.observe.posture import build_snapshot

    register("openai_compat", build_snapshot)


@hookimpl
async def bmo_startup(host):
    import os

    from bmo.cluster import store_is_shared
    from bmo_openai_compat.observe.ledger import NO_LEDGER_ENV, Ledger
    from bmo_openai_compat.observe.recovery import recover
    from bmo_openai_compat.state import state_of

    await recover(host)  # before serving: close ledger rows a crashed process left running
    holder = None
    if store_is_shared(host.config):  # on a shared store, a dead server's rows close when its lease expires
        import socket

        from bmo.cluster import worker_id
        from bmo.cluster.liveness import register_sweeper
        from bmo.cluster.takeover import register_closer
        from bmo_openai_compat.observe.recovery import DEAD_HOLDERS, close_runs

        register_closer(host, close_runs)
        register_sweeper(host, DEAD_HOLDERS)  # and its rows that are no run, once its heartbeat is gone
        holder = {"holder": worker_id(), "holder_host": socket.gethostname()}

    env = os.environ if host.env is None else host.env
    writes = env.get(NO_LEDGER_ENV, "") != "1"
    ledger = state_of(host).ledger = Ledger(host.db, host.emit, writes=writes, holder=holder)
    await ledger.seed_counts()  # once: the posture then reads counters, not whole tables
    if not writes:
        host.emit("openai_compat.ledger_disabled", "warn", env=NO_LEDGER_ENV,
                  detail="the run ledger writes nothing (a benchmark switch); records and answers are unchanged")


@hookimpl
async def bmo_shutdown(host):
    from bmo_openai_compat.state import state_of

    state = state_of(host)
    if state.ledger is not None:
        await state.ledger.drain()
