"""``--table`` output with rich tables: plain text, one line per row, no trailing blanks (grep- and pipe-friendly)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Wide enough that no row ever wraps; lines are stripped, so nothing is padded to it.
_NO_WRAP_WIDTH = 1_000_000


@dataclass(frozen=True)
class Column:
    header: str
    justify: str = "left"
    # Rows printed one at a time (``--follow``) line up only when each column has a fixed least width.
    min_width: int | None = None


def table_lines(columns: Sequence[Column], rows: Iterable[Sequence[str]], *, header: bool = True,
                gap: int = 1) -> list[str]:
    """The table as text lines: ``gap`` spaces between columns, none at the edges."""
    from rich.console import Console  # only --table pays for importing rich
    from rich.table import Table

    table = Table(box=None, show_header=header, header_style="", pad_edge=False, padding=(0, gap, 0, 0))
    for column in columns:
        table.add_column(column.header, justify=column.justify, min_width=column.min_width, no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console = Console(file=io.StringIO(), width=_NO_WRAP_WIDTH, color_system=None, force_terminal=False,
                      highlight=False, markup=False, emoji=False)
    console.print(table)
    return [line.rstrip() for line in console.file.getvalue().splitlines()]
