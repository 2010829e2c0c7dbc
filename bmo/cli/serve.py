"""``bmo serve``: run the HTTP server (one process, or a supervisor and N workers with ``--workers``)."""

from __future__ import annotations

import asyncio
import os
import sys

import click

from bmo.cli.main import plugin_manager
from bmo.cli.options import config_option, data_dir_option, load_or_exit
from bmo.guidance import startup_paragraph
from bmo.host import ServeSettings


@click.command()
@click.option("--addr", default=None, help="HOST:PORT to bind (default 127.0.0.1:9000, env BMO_ADDR).")
@click.option("--auth-token", envvar="BMO_AUTH_TOKEN", default=None, show_envvar=True,
              help="Bearer token every client must send (Authorization: Bearer TOKEN).")
@click.option("--allow-no-auth", is_flag=True, help="Run without a token; loopback addresses only.")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Worker processes serving the port (default 1, [options.http_server] workers).")
@config_option
@data_dir_option
def serve(addr, auth_token, allow_no_auth, workers, config_files, data_dir) -> None:
    """Serve the BMO HTTP API (OpenAI-compatible routes come from plugins)."""
    from bmo.server.app import build_host
    from bmo.server.event_loop import loop_factory
    from bmo.server.serve import ServeRefused, check_boundary, check_data_dir, serve_forever
    from bmo.server.workers.worker import die_with_parent, worker_role

    role = worker_role()  # set when a supervisor started this process as one of its workers
    if role is not None and not die_with_parent():
        sys.exit(0)  # the supervisor is already gone: nothing to serve for
    pm = plugin_manager()
    config = load_or_exit(pm, config_files, {"options.http_server.addr": addr, "storage.data_dir": data_dir,
                                             "options.http_server.workers": workers})
    settings = ServeSettings(
        addr=config.section("options.http_server").addr, auth_token=auth_token, allow_no_auth=allow_no_auth
    )
    prefix = f"bmo serve [{role.worker_id}]" if role else "bmo serve"
    try:
        warning = check_boundary(settings)
        plan = build_host(config, pm, settings)
        check_data_dir(plan)
        factory = loop_factory(config.section("options.http_server").event_loop)
    except (ServeRefused, ValueError) as exc:
        click.echo(f"{prefix}: {exc}", err=True)
        sys.exit(2)
    if role is None:  # the supervisor said all this once; its workers stay quiet
        for failure in pm.failures:  # import failures; hooks that raised, were refused or are unknown
            what = "failed to load" if not failure.hook else "has a failed hook"
            click.echo(f"bmo: plugin {failure.name!r} {what}: {failure.error}", err=True)
        if warning:
            click.echo(warning, err=True)
        if guidance := startup_paragraph(config):  # it still starts: /healthz answers, the routes say the same
            click.echo(guidance, err=True)
    count = config.section("options.http_server").workers
    if role is None and count > 1:
        _supervise(plan, count, settings, config_files)
        return
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(serve_forever(plan, worker=role))
    except OSError as exc:
        click.echo(f"{prefix}: cannot bind {settings.addr}: {exc.strerror or exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # a startup hook or migration failed: say which, without a traceback wall
        click.echo(f"{prefix}: startup failed: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)


def _supervise(plan, count: int, settings: ServeSettings, config_files) -> None:
    """Run ``count`` workers of this same command on one socket until SIGINT/SIGTERM."""
    from bmo.server.serve import ready_message
    from bmo.server.workers.supervisor import Supervisor, SupervisorStopped
    from bmo.net import split_addr

    def command(port: int) -> list[str]:  # the bound port, so a worker's records name it (port 0 included)
        host = split_addr(settings.addr)[0]
        shown = f"[{host}]" if ":" in host else host
        args = [sys.executable, "-m", "bmo", "serve", "--addr", f"{shown}:{port}", "--data-dir", str(plan.data_dir)]
        args += ["--allow-no-auth"] if settings.allow_no_auth else []
        for path in config_files:
            args += ["--config", os.path.abspath(path)]
        return args

    env = dict(os.environ)
    if settings.auth_token is not None:  # by environment, not argv: a token on a command line shows in ps
        env["BMO_AUTH_TOKEN"] = settings.auth_token
    supervisor = Supervisor(plan, count, command, env)
    try:
        supervisor.run(lambda port: click.echo(ready_message(plan, port, workers=count), err=True))
    except OSError as exc:  # the system's words, without socket.create_server's "(while attempting ...)"
        click.echo(f"bmo serve: cannot bind {settings.addr}: {os.strerror(exc.errno) if exc.errno else exc}", err=True)
        sys.exit(1)
    except SupervisorStopped as exc:
        click.echo(f"bmo serve: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # a migration failed: say which, without a traceback wall
        click.echo(f"bmo serve: startup failed: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
