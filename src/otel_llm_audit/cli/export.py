"""``otel-llm-audit export``: the audit store as OTLP JSON lines (the collector's ``otlpjsonfile`` receiver reads them).

Each line is one ``ExportTraceServiceRequest``. Every span keeps its seal (the
``llm_audit.integrity.*`` attributes), and its canonical body is unchanged by the trip, so the
copy verifies like the store (``otel-llm-audit verify FILE``). Checkpoint records are exported
too: they are what a verifier checks the chain's signatures against.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import IO, Any

from rich.console import Console

from otel_llm_audit.cli.options import NO_MATCH, add_source_option, add_time_options, note
from otel_llm_audit.cli.progress import progress_bar
from otel_llm_audit.cli.sources import SourceError, open_source


def add_export_parser(commands: Any) -> None:
    export = commands.add_parser("export", help="write the audit store as OTLP JSON lines (the collector can read it)")
    add_source_option(export, "the audit store")
    export.add_argument("--output", "-o", default="-", metavar="FILE", help="file to write ('-' or none: stdout)")
    add_time_options(export)
    export.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace, console: Console) -> int:
    from otel_llm_audit.cli.store_source import StoreSource
    from otel_llm_audit.delivery.stored_spans import export_requests

    source = open_source(args.source)
    if not isinstance(source, StoreSource):
        raise SourceError(f"export reads an audit store; {source.path} is OTLP JSON lines already")
    to_stdout = args.output in ("-", "")
    out: IO[bytes] | None = None
    spans = requests = 0
    try:
        total = source.count(args.since, args.until)
        with progress_bar(total, "exporting", unit="records") as advance:
            for request in export_requests(source.store, source.records(args.since, args.until)):
                if out is None:
                    out = _open_output(args.output, to_stdout)
                # Lone surrogates (kept by the canonical encoding) become JSON's \udXXX escapes.
                out.write(
                    (json.dumps(request, separators=(",", ":"), ensure_ascii=False) + "\n").encode(
                        "utf-8", "backslashreplace"
                    )
                )
                count = sum(len(scope["spans"]) for rs in request["resourceSpans"] for scope in rs["scopeSpans"])
                spans += count
                requests += 1
                advance(count)
    finally:
        source.close()
        if out is not None:
            out.flush()
            if not to_stdout:
                out.close()
    if spans == 0:
        note(NO_MATCH)
        return 1
    where = "standard output" if to_stdout else args.output
    note(f"exported {_count(spans, 'span')} ({_count(requests, 'request')}) to {where}")
    return 0


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _open_output(path: str, to_stdout: bool) -> IO[bytes]:
    if to_stdout:
        sys.stdout.flush()
        return sys.stdout.buffer
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    return open(path, "wb")
