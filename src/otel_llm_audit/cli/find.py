"""``otel-llm-audit find``: which spans match, newest first, and how many match in all.

The table gives what a responder needs to pick the trace to ``show`` next: when, which trace,
which step, who, which model, what it used and cost, and whether a policy fired or it failed.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from otel_llm_audit.cli.layout import fits, header, light_table, share, short_id, width_of
from otel_llm_audit.cli.options import (
    NO_MATCH,
    add_filter_options,
    add_source_option,
    filters_from,
    note,
    positive_int,
    print_json,
)
from otel_llm_audit.cli.sources import SpanFacts, open_source
from otel_llm_audit.cli.timespec import utc_text

_TEXT_COLUMNS = ("span", "user", "model")
#: In a narrow terminal the span, user and model columns never get narrower than this: their values
#: fold instead (a user id such as ``analyst-17`` stays whole if the other two can keep this much).
_MIN_TEXT_WIDTH = 7
#: The start column's width when it shows the date over the time.
_TWO_LINE_START = len("00:00:00")


def add_find_parser(commands: Any) -> None:
    find = commands.add_parser("find", help="list the spans matching a user, session, team, model, time range, ...")
    add_filter_options(find)
    find.add_argument("--limit", type=positive_int, default=50, help="show at most this many (newest first; 50)")
    add_source_option(find)
    find.add_argument("--json", action="store_true", help="print the matches as JSON")
    find.set_defaults(handler=run_find)


def run_find(args: argparse.Namespace, console: Console) -> int:
    source = open_source(args.source)
    try:
        result = source.find(filters_from(args), args.limit)
    finally:
        source.close()
    for warning in source.warnings():
        note(warning)
    if result.total == 0:
        note(NO_MATCH)
        return 1
    if args.json:
        print_json({"total": result.total, "spans": [found_json(facts) for facts in result.spans]})
        return 0
    console.print(_matches_table(console, result.spans))
    shown = len(result.spans)
    more = f" (the newest {shown}; --limit to see more)" if shown < result.total else ""
    console.print(f"{result.total} matching span{'' if result.total == 1 else 's'}{more}")
    return 0


def _matches_table(console: Console, spans: list[SpanFacts]) -> Table:
    """The matches in full when that fits the console, else compact with the widths shared out.

    Compact: 12-digit trace ids (``show`` takes them), times without the year, figure titles on
    two lines. The span, user and model columns share what the ids and figures leave: short
    values keep their width, long ones fold within equal parts, none narrower than
    :data:`_MIN_TEXT_WIDTH`; in about 80 columns the start time may take two lines (date over
    time) to leave them more room.
    """
    full = _table(spans)
    if fits(console, full):
        return full
    texts: list[list[str | None]] = [[f.name for f in spans], [f.user_id for f in spans], [f.model for f in spans]]
    wanted = [
        max([cell_len(title)] + [cell_len(value or "") for value in values])
        for title, values in zip(_TEXT_COLUMNS, texts, strict=True)
    ]
    one_line = len(utc_text(0, year=False))
    probe = _table(spans, widths=(one_line, [1] * len(wanted)))
    room = console.width - (width_of(console, probe) - one_line - len(wanted))
    # The start time on one line, or as the date over the time to give the text more room: whichever
    # takes fewer lines (on a tie, the date over the time: the text folds less).
    layouts = [
        _table(spans, widths=(start, share(room - start, wanted, _MIN_TEXT_WIDTH)))
        for start in (_TWO_LINE_START, one_line)
    ]
    return min(layouts, key=lambda table: len(console.render_lines(table, pad=False)))


def _table(spans: list[SpanFacts], widths: tuple[int, list[int]] | None = None) -> Table:
    """The matches in full, or compact with ``widths`` (of the start column, and of the span, user, model)."""
    compact = widths is not None
    start_width, text_widths = widths if widths is not None else (None, [None] * len(_TEXT_COLUMNS))
    table = light_table()
    table.add_column("start (UTC)", width=start_width)
    table.add_column("trace id", no_wrap=True)
    for title, width in zip(_TEXT_COLUMNS, text_widths, strict=True):
        table.add_column(title, width=width, overflow="fold")
    # Figures never wrap (a number cut in two misleads); in a compact table their titles take two lines.
    table.add_column(header("tokens in/out", compact), justify="right", no_wrap=True)
    table.add_column(header("cost USD", compact), justify="right", no_wrap=True)
    table.add_column("flags", no_wrap=True)
    for facts in spans:
        table.add_row(
            utc_text(facts.start_ns, year=not compact),
            short_id(facts.trace_id, compact),
            escape(facts.name),
            escape(facts.user_id or ""),
            escape(facts.model or ""),
            _tokens(facts),
            format_cost(facts.cost_usd),
            _flags(facts, compact),
        )
    return table


def found_json(facts: SpanFacts) -> dict[str, Any]:
    return {"start": utc_text(facts.start_ns, precise=True), **dataclasses.asdict(facts)}


def _tokens(facts: SpanFacts) -> str:
    if facts.input_tokens is None and facts.output_tokens is None:
        return ""
    return f"{facts.input_tokens if facts.input_tokens is not None else '?'}/{facts.output_tokens or 0}"


def format_cost(cost: float | None) -> str:
    """Dollars with enough decimals for a single small call (``0.00000540``)."""
    return "" if cost is None else f"{cost:.8f}"


def _flags(facts: SpanFacts, compact: bool = False) -> str:
    flags = []
    if facts.policy:
        flags.append("[yellow]policy[/yellow]")
    if facts.error:
        flags.append("[red]error[/red]")
    return ("\n" if compact else " ").join(flags)
