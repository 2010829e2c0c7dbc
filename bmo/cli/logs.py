"""``bmo logs``: read, filter, count and follow the trace-record log."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bmo.cli.options import config_option, data_dir_option
from bmo.cli.tables import Column, table_lines
from bmo.tracing.query import (
    QueryError,
    RecordFilter,
    as_text,
    backlog_then_follow,
    has_logs,
    last,
    matching_all,
    parse_when,
    parse_where,
    top_values,
)
from bmo.tracing.records import LEVELS

# Fields shown first in --table, when a record has them; the rest follow in record order.
KEY_FIELDS = ("request_id", "route", "outcome", "status", "session_id", "model", "client_ua", "error")
_TABLE_VALUE_MAX = 80

EXAMPLES = """
\b
Examples:
  bmo logs --msg 'openai_compat.*' --since 10m --table
  bmo logs --level warn --where route=chat_completions --where outcome=error
  bmo logs --msg openai_compat.action --top client_ua --limit 5
  bmo logs --follow --msg openai_compat.action
"""


def _resolve_log_dir(data_dir: str | None, config_files: tuple[str, ...]) -> Path:
    """--data-dir, else BMO_DATA_DIR, else [storage] data_dir from config, else the default."""
    import os

    from bmo.cli.main import plugin_manager
    from bmo.cli.options import load_or_exit
    from bmo.host import resolve_data_dir

    # Given directly, the config is not needed: logs stay readable even when a config file is broken.
    direct = data_dir or os.environ.get("BMO_DATA_DIR")
    if direct:
        return Path(direct).expanduser().absolute() / "logs"
    config = load_or_exit(plugin_manager(), config_files, {"storage.data_dir": data_dir})
    return resolve_data_dir(config) / "logs"


def table_cells(record: dict) -> tuple[str, str, str, str]:
    """Time, level, msg, then the ``key=value`` fields (key fields first)."""
    rest = [k for k in record if k not in ("time", "level", "msg")]
    ordered = [k for k in KEY_FIELDS if k in record] + [k for k in rest if k not in KEY_FIELDS]
    fields = []
    for key in ordered:
        text = as_text(record[key]).replace("\n", "\\n")
        if len(text) > _TABLE_VALUE_MAX:
            text = text[: _TABLE_VALUE_MAX - 1] + "…"
        fields.append(f"{key}={text}")
    return str(record.get("time", "")), str(record.get("level", "")), str(record.get("msg", "")), " ".join(fields)


# Least widths keep rows printed one by one (the log streams, --follow never ends) in line.
TABLE_COLUMNS = (Column("TIME", min_width=24), Column("LEVEL", min_width=5), Column("MSG", min_width=28),
                 Column("FIELDS"))
TOP_COLUMNS = (Column("COUNT", justify="right", min_width=7),)


@click.command(epilog=EXAMPLES, short_help="Read, filter, count and follow trace records.")
@data_dir_option
@config_option
@click.option("--msg", "msgs", multiple=True, metavar="NAME",
              help="Record name, exact or glob (openai_compat.*); repeat to accept several.")
@click.option("--level", type=click.Choice([*LEVELS, "warning"], case_sensitive=False), default=None,
              help="Minimum severity: debug < info < warn < error.")
@click.option("--where", "where", multiple=True, metavar="KEY=VALUE",
              help="Keep records whose field equals VALUE (glob allowed, dotted keys reach nested fields); repeatable, ANDed.")
@click.option("--since", default=None, metavar="WHEN", help="Records at or after WHEN: 10m, 2h, 1d, or an ISO time (local if no zone).")
@click.option("--until", default=None, metavar="WHEN", help="Records at or before WHEN (same forms as --since).")
@click.option("--json", "output", flag_value="json", default=True, help="Print JSON lines (the default).")
@click.option("--table", "output", flag_value="table", help="Print a table: time, level, msg and key fields.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new records as they are written (Ctrl-C stops).")
@click.option("--top", "top", default=None, metavar="FIELD", help="Count records per value of FIELD, most frequent first.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Only the last N records (with --top: the N most frequent values).")
def logs(data_dir, config_files, msgs, level, where, since, until, output, follow, top, limit) -> None:
    """Read the trace-record log (<data-dir>/logs/bmo.jsonl and its rotated backups).

    Under bmo serve --workers N each worker writes logs/workers/<id>/bmo.jsonl; all are read, merged by time.

    Every filter given must match. Output is JSON lines unless --table is given.
    """
    try:
        keep = RecordFilter(
            msgs=list(msgs), min_level=level, where=parse_where(where),
            since=parse_when(since) if since else None, until=parse_when(until) if until else None,
        )
    except QueryError as exc:
        raise click.UsageError(str(exc)) from None
    if top and follow:
        raise click.UsageError("--top counts what is already written; it cannot be combined with --follow")
    log_dir = _resolve_log_dir(data_dir, config_files)
    try:
        if top:
            _print_top(log_dir, keep, top, limit, output)
        elif follow:
            _print_rows(backlog_then_follow(log_dir, keep, limit=limit), output)
        else:
            if not has_logs(log_dir):
                click.echo(f"bmo logs: no log in {log_dir} yet (the server writes it on start)", err=True)
                return
            _print_rows(last(matching_all(log_dir, keep), limit), output)
    except KeyboardInterrupt:  # Ctrl-C ends --follow; that is the normal way out
        pass
    except BrokenPipeError:  # piped into head/less that closed early
        sys.stderr.close()


def _print_rows(rows, output: str) -> None:
    if output == "table":
        click.echo(table_lines(TABLE_COLUMNS, [])[0])
    for line, record in rows:
        if output == "table":
            click.echo("\n".join(table_lines(TABLE_COLUMNS, [table_cells(record)], header=False)))
        else:
            click.echo(line.decode("utf-8", "replace"))


def _print_top(log_dir: Path, keep: RecordFilter, key: str, limit: int | None, output: str) -> None:
    records = (record for _, record in matching_all(log_dir, keep))
    counts = top_values(records, key).most_common(limit)
    if output == "table":
        columns = (*TOP_COLUMNS, Column(key.upper()))
        for text in table_lines(columns, [(str(count), str(value)) for value, count in counts], gap=2):
            click.echo(text)
        return
    import json

    for value, count in counts:
        click.echo(json.dumps({"field": key, "value": value, "count": count}))
