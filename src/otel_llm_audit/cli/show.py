"""``otel-llm-audit show TRACE_ID``: one trace, as a tree, as numbered steps, or as JSON.

From the audit store the trace is fetched by its trace id index; from a file, by one scan.
Like git's short hashes, a unique prefix of the id does (at least 8 hex digits: ``find`` shows
12 in a narrow terminal); an ambiguous one lists the traces it matches. The older form
``show FILE [--trace ID]`` (a file as the positional argument) still works: an existing path is
a source, hex digits are a trace id.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from typing import Any

from rich.console import Console

from otel_llm_audit.cli.options import NO_MATCH, add_source_option, note, print_json
from otel_llm_audit.cli.otlp_reader import SpanView
from otel_llm_audit.cli.sources import (
    MIN_TRACE_PREFIX,
    TRACE_ID_DIGITS,
    Source,
    SourceError,
    TraceSummary,
    open_source,
)
from otel_llm_audit.cli.timespec import utc_text

_HEX = re.compile(r"^[0-9a-fA-F]+$")
#: An ambiguous prefix lists at most this many of the traces it matches.
MAX_CANDIDATES = 10
_DIGITS = f"{MIN_TRACE_PREFIX} to {TRACE_ID_DIGITS} hex digits"


def add_show_parser(commands: Any) -> None:
    show = commands.add_parser(
        "show",
        help="print a trace as a tree: identity, model, parameters, masked content, tool calls, audit events, cost",
    )
    show.add_argument(
        "target",
        nargs="?",
        metavar="TRACE_ID",
        help=f"the trace id, or a unique prefix of it ({_DIGITS}); an existing file here is read as the source "
        "(the older `show FILE`)",
    )
    show.add_argument(
        "--trace", dest="trace_id", metavar="TRACE_ID", help="the trace id (or its prefix), when FILE is positional"
    )
    add_source_option(show)
    show.add_argument(
        "--steps",
        action="store_true",
        help="tell each workflow as numbered steps (following resumed runs in other traces) instead of a tree",
    )
    show.add_argument("--json", action="store_true", help="the spans as JSON (attributes decoded, content in full)")
    show.set_defaults(handler=run_show)


def _resolve(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """(source path, trace id or prefix, lowercase) from the positional argument, ``--trace`` and ``--source``."""
    source, trace_id = args.source, args.trace_id
    target = args.target
    if target is not None:
        if _HEX.match(target) and not os.path.exists(target):
            if trace_id is not None and trace_id.lower() != target.lower():
                raise SourceError(f"two trace ids given: {target} and --trace {trace_id}")
            trace_id = target
        elif os.path.exists(target):
            if source is not None and source != target:
                raise SourceError(f"two sources given: {target} and --source {source}")
            source = target
        else:
            raise SourceError(f"{target} is neither a trace id ({_DIGITS}) nor an existing file")
    if trace_id is not None:
        if not _HEX.match(trace_id) or len(trace_id) > TRACE_ID_DIGITS:
            raise SourceError(f"not a trace id ({_DIGITS}): {trace_id}")
        if len(trace_id) < MIN_TRACE_PREFIX:
            raise SourceError(f"a trace id prefix needs at least {MIN_TRACE_PREFIX} hex digits: {trace_id}")
        trace_id = trace_id.lower()
    return source, trace_id


def run_show(args: argparse.Namespace, console: Console) -> int:
    source_path, given = _resolve(args)
    source = open_source(source_path)
    try:
        trace_id = given if given is None else full_trace_id(source, given)
        spans = [] if given is not None and trace_id is None else _spans(source, trace_id, steps=args.steps)
        count = _print(spans, trace_id, args, console) if spans else 0
    finally:
        source.close()
    for warning in source.warnings():
        note(warning)
    if count == 0:
        note(NO_MATCH)
        return 1
    return 0


def full_trace_id(source: Source, trace_id: str) -> str | None:
    """The trace id that ``trace_id`` (a whole id or a prefix) names; None when no trace matches.

    Raises :class:`SourceError` (exit status 2) when several traces match, listing them.
    """
    if len(trace_id) == TRACE_ID_DIGITS:
        return trace_id
    matches = source.traces_with_prefix(trace_id, MAX_CANDIDATES + 1)
    if len(matches) > 1:
        raise SourceError(ambiguous(trace_id, matches))
    return matches[0].trace_id if matches else None


def ambiguous(prefix: str, matches: list[TraceSummary]) -> str:
    """The message for a prefix that several traces share: each with its start and root span."""
    count = f"more than {MAX_CANDIDATES}" if len(matches) > MAX_CANDIDATES else str(len(matches))
    first = f"; the first {MAX_CANDIDATES}" if len(matches) > MAX_CANDIDATES else ""
    lines = [f"trace id {prefix} is ambiguous: {count} traces start with it (give more digits){first}:"]
    lines += [f"  {m.trace_id}  {utc_text(m.start_ns)}  {m.root_name}" for m in matches[:MAX_CANDIDATES]]
    return "\n".join(lines)


def _spans(source: Source, trace_id: str | None, *, steps: bool) -> list[SpanView]:
    from otel_llm_audit.cli.store_source import StoreSource

    if trace_id is None:
        if isinstance(source, StoreSource):
            raise SourceError(f"name a trace: otel-llm-audit show TRACE_ID --source {source.path}")
        return list(source.all_spans())
    return source.with_resumed(trace_id) if steps else source.trace(trace_id)


def _print(spans: list[SpanView], trace_id: str | None, args: argparse.Namespace, console: Console) -> int:
    from otel_llm_audit.cli.steps import render_steps, workflow_starts, workflow_steps
    from otel_llm_audit.cli.tree import render_traces

    if args.steps and args.json:
        starts = workflow_starts(spans, trace_id)
        print_json(
            [
                {"trace_id": start, "steps": [dataclasses.asdict(step) for step in workflow_steps(spans, start)]}
                for start in starts
            ]
        )
        return len(starts)
    if args.json:
        print_json([span_json(span) for span in sorted(spans, key=lambda s: (s.trace_id != trace_id, s.start_ns))])
        return len({span.trace_id for span in spans})
    if args.steps:
        return render_steps(spans, console, trace_id=trace_id)
    return render_traces(spans, console, trace_id=trace_id)


def span_json(span: SpanView) -> dict[str, Any]:
    """A span as OTLP/JSON-shaped JSON with its attributes decoded (``{"key": value}``), content in full."""
    return {
        "traceId": span.trace_id,
        "spanId": span.span_id,
        "parentSpanId": span.parent_span_id or "",
        "name": span.name,
        "kind": span.kind,
        "startTimeUnixNano": str(span.start_ns),
        "endTimeUnixNano": str(span.end_ns),
        "scope": span.scope,
        "resource": span.resource,
        "attributes": span.attributes,
        "events": [
            {"name": event["name"], "timeUnixNano": str(event["time_ns"]), "attributes": event["attributes"]}
            for event in span.events
        ],
        "links": [
            {"traceId": link["trace_id"], "spanId": link["span_id"], "attributes": link["attributes"]}
            for link in span.links
        ],
        "status": {"code": span.status_code, "message": span.status_message},
    }
