"""``bmo logs``: read the trace-record log."""

from __future__ import annotations

import click


@click.command()
def logs() -> None:
    """Read trace records."""
