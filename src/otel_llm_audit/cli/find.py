"""``otel-llm-audit find``: which spans match, newest first, and how many match in all.

The table gives what a responder needs to pick the trace to ``show`` next: when, which trace,
which step, who, which model, what it used and cost, and whether a policy fired or it failed.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

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
    table = Table(show_lines=False)
    for column, options in (
        ("start (UTC)", {"no_wrap": True}),
        ("trace id", {"no_wrap": True}),
        ("span", {}),
        ("user", {}),
        ("model", {}),
        ("tokens in/out", {"justify": "right", "no_wrap": True}),
        ("cost USD", {"justify": "right", "no_wrap": True}),
        ("flags", {"no_wrap": True}),
    ):
        table.add_column(column, **options)
    for facts in result.spans:
        table.add_row(
            utc_text(facts.start_ns),
            facts.trace_id,
            escape(facts.name),
            escape(facts.user_id or ""),
            escape(facts.model or ""),
            _tokens(facts),
            format_cost(facts.cost_usd),
            _flags(facts),
        )
    console.print(table)
    shown = len(result.spans)
    more = f" (the newest {shown}; --limit to see more)" if shown < result.total else ""
    console.print(f"{result.total} matching span{'' if result.total == 1 else 's'}{more}")
    return 0


def found_json(facts: SpanFacts) -> dict[str, Any]:
    return {"start": utc_text(facts.start_ns, precise=True), **dataclasses.asdict(facts)}


def _tokens(facts: SpanFacts) -> str:
    if facts.input_tokens is None and facts.output_tokens is None:
        return ""
    return f"{facts.input_tokens if facts.input_tokens is not None else '?'}/{facts.output_tokens or 0}"


def format_cost(cost: float | None) -> str:
    """Dollars with enough decimals for a single small call (``0.00000540``)."""
    return "" if cost is None else f"{cost:.8f}"


def _flags(facts: SpanFacts) -> str:
    flags = []
    if facts.policy:
        flags.append("[yellow]policy[/yellow]")
    if facts.error:
        flags.append("[red]error[/red]")
    return " ".join(flags)
