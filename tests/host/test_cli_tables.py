"""``--table`` output: rich tables rendered as plain, stripped lines."""

from __future__ import annotations

from bmo.cli.tables import Column, table_lines


def test_columns_line_up_by_display_width_and_text_is_taken_literally():
    lines = table_lines([Column("NAME"), Column("N", justify="right")],
                        [("[bold]x[/bold]", "1"), ("日本", "22")])
    assert lines == ["NAME            N", "[bold]x[/bold]  1", "日本           22"]


def test_a_least_width_keeps_rows_printed_one_by_one_in_line():
    columns = [Column("MSG", min_width=8), Column("FIELDS")]
    one = table_lines(columns, [("a", "x=1")], header=False)
    other = table_lines(columns, [("longer", "y=2")], header=False)
    assert one[0].index("x=1") == other[0].index("y=2") == 9


def test_no_row_wraps_however_long():
    assert len(table_lines([Column("F")], [("k=" + "v" * 5000,)], header=False)) == 1
