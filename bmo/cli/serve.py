"""``bmo serve``: run the HTTP server."""

from __future__ import annotations

import asyncio
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
@config_option
@data_dir_option
def serve(addr, auth_token, allow_no_auth, config_files, data_dir) -> None:
    """Serve the BMO HTTP API (OpenAI-compatible routes come from plugins)."""
    from bmo.server.app import build_host
    from bmo.server.event_loop import loop_factory
    from bmo.server.serve import ServeRefused, check_boundary, check_data_dir, serve_forever

    pm = plugin_manager()
    config = load_or_exit(pm, config_files, {"options.http_server.addr": addr, "storage.data_dir": data_dir})
    settings = ServeSettings(
        addr=config.section("options.http_server").addr, auth_token=auth_token, allow_no_auth=allow_no_auth
    )
    try:
        warning = check_boundary(settings)
        plan = build_host(config, pm, settings)
        check_data_dir(plan)
        factory = loop_factory(config.section("options.http_server").event_loop)
    except (ServeRefused, ValueError) as exc:
        click.echo(f"bmo serve: {exc}", err=True)
        sys.exit(2)
    for failure in pm.failures:  # import failures; hooks that raised, were refused or are unknown
        what = "failed to load" if not failure.hook else "has a failed hook"
        click.echo(f"bmo: plugin {failure.name!r} {what}: {failure.error}", err=True)
    if warning:
        click.echo(warning, err=True)
    if guidance := startup_paragraph(config):  # it still starts: /healthz answers, the routes say the same
        click.echo(guidance, err=True)
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(serve_forever(plan))
    except OSError as exc:
        click.echo(f"bmo serve: cannot bind {settings.addr}: {exc.strerror or exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # a startup hook or migration failed: say which, without a traceback wall
        click.echo(f"bmo serve: startup failed: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
