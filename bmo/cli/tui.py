"""``bmo tui``: the terminal client of a running server."""

from __future__ import annotations

import click


@click.command()
@click.option("--url", default="http://127.0.0.1:9000", show_default=True, envvar="BMO_URL",
              help="Base URL of a running bmo serve.")
@click.option("--auth-token", envvar="BMO_AUTH_TOKEN", default=None, help="The server's bearer token.")
@click.option("--session", "session_id", default=None, help="Resume this session instead of starting one.")
@click.option("--model", default=None, help="Model for a new session (default: the server's).")
def tui(url: str, auth_token: str | None, session_id: str | None, model: str | None) -> None:
    """Chat with a BMO session in the terminal; slash commands and sidebar come from plugins."""
    from bmo.tui.app import BmoApp

    BmoApp(url, auth_token, session_id, model).run()
