"""``otel-llm-audit cost``: what the model calls cost, per team, application, model, user or tenant.

A call is a span that carries a cost or token counts. Calls whose model has no price in the
price table count their tokens but no dollars; the table says how many (``unpriced``), so a
total is never silently low.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from otel_llm_audit.cli.find import format_cost
from otel_llm_audit.cli.layout import fitting_table, header, light_table
from otel_llm_audit.cli.options import NO_MATCH, add_filter_options, add_source_option, note, print_json
from otel_llm_audit.cli.sources import COST_DIGITS, GROUPS, CostRow, open_source, sort_cost_rows

DEFAULT_GROUP = "team"
_NONE = "(none)"


def add_cost_parser(commands: Any) -> None:
    cost = commands.add_parser("cost", help="token and dollar totals grouped by team, application, model, user ...")
    cost.add_argument(
        "--by",
        action="append",
        choices=sorted(GROUPS),
        help=f"group by this (default {DEFAULT_GROUP}); twice for two levels: --by team --by model",
    )
    add_filter_options(cost)
    add_source_option(cost)
    cost.add_argument("--json", action="store_true", help="print the totals as JSON")
    cost.set_defaults(handler=run_cost)


def run_cost(args: argparse.Namespace, console: Console) -> int:
    from otel_llm_audit.cli.options import filters_from
    from otel_llm_audit.cli.sources import SourceError

    by = list(dict.fromkeys(args.by or [DEFAULT_GROUP]))
    if len(by) > 2:
        raise SourceError("--by at most twice (two levels)")
    fields = [GROUPS[name] for name in by]
    source = open_source(args.source)
    try:
        rows = sort_cost_rows(source.cost(fields, filters_from(args)))
    finally:
        source.close()
    for warning in source.warnings():
        note(warning)
    if not rows:
        note(NO_MATCH)
        return 1
    total = total_row(rows)
    if args.json:
        print_json(
            {
                "by": by,
                "groups": [_row_json(by, row) for row in rows],
                "total": _row_json([], total),
            }
        )
        return 0
    show_unpriced = total.unpriced > 0
    console.print(fitting_table(console, lambda compact: _table(by, rows, total, compact=compact)))
    if show_unpriced:
        console.print(f"{total.unpriced} calls have no price (model not in the price table): their cost is not counted")
    return 0


def _table(by: list[str], rows: list[CostRow], total: CostRow, *, compact: bool) -> Table:
    """The totals per group, with a total row; ``compact`` (two-line titles) when the full table would not fit.

    The figures never wrap; a long model or user name folds onto further lines rather than
    losing its end to "…".
    """
    show_unpriced = total.unpriced > 0
    table = light_table(footer=True)
    for index, name in enumerate(by):
        table.add_column(name, footer="total" if index == 0 else "", overflow="fold")
    for title, footer in (
        ("calls", str(total.calls)),
        ("input tokens", f"{total.input_tokens:,}"),
        ("output tokens", f"{total.output_tokens:,}"),
        ("cost USD", format_cost(total.cost_usd)),
        *((("unpriced", str(total.unpriced)),) if show_unpriced else ()),
    ):
        table.add_column(header(title, compact), justify="right", no_wrap=True, footer=footer)
    for row in rows:
        cells = [escape(value) if value is not None else _NONE for value in row.group]
        cells += [str(row.calls), f"{row.input_tokens:,}", f"{row.output_tokens:,}", format_cost(row.cost_usd)]
        if show_unpriced:
            cells.append(str(row.unpriced))
        table.add_row(*cells)
    return table


def total_row(rows: list[CostRow]) -> CostRow:
    return CostRow(
        group=(),
        calls=sum(row.calls for row in rows),
        input_tokens=sum(row.input_tokens for row in rows),
        output_tokens=sum(row.output_tokens for row in rows),
        cost_usd=round(sum(row.cost_usd for row in rows), COST_DIGITS),
        unpriced=sum(row.unpriced for row in rows),
    )


def _row_json(by: list[str], row: CostRow) -> dict[str, Any]:
    return {
        **dict(zip(by, row.group, strict=True)),
        "calls": row.calls,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "cost_usd": row.cost_usd,
        "unpriced": row.unpriced,
    }
