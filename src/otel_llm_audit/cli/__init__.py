"""The ``otel-llm-audit`` command: ``demo`` and ``show``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="otel-llm-audit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run a scripted app against a local fake model and print its trace")
    demo.add_argument("--output", default="llm-audit/demo-traces.jsonl", help="OTLP JSON file to write")
    demo.add_argument(
        "--content",
        default="masked",
        choices=["masked", "raw", "hash", "none"],
        help="content mode for the demo (default masked, as everywhere; its personal data is made up)",
    )

    show = commands.add_parser("show", help="print the traces in an OTLP JSON file as trees")
    show.add_argument("file", help="OTLP JSON lines file (ours or the collector's file exporter)")
    show.add_argument("--trace", dest="trace_id", help="only this trace id (hex)")
    show.add_argument(
        "--steps",
        action="store_true",
        help="tell each workflow as numbered steps (following resumed runs in other traces) instead of a tree",
    )

    args = parser.parse_args(argv)
    console = Console()
    if args.command == "demo":
        from otel_llm_audit.cli.demo import run_demo

        return run_demo(args.output, args.content, console)
    from otel_llm_audit.cli.otlp_reader import read_spans
    from otel_llm_audit.cli.tree import render_traces

    spans, bad = read_spans(args.file)
    if args.steps:
        from otel_llm_audit.cli.steps import render_steps

        count = render_steps(spans, console, trace_id=args.trace_id)
    else:
        count = render_traces(spans, console, trace_id=args.trace_id)
    if bad:
        console.print(f"[yellow]{bad} unreadable lines skipped[/yellow]")
    if count == 0:
        console.print("[yellow]no matching trace[/yellow]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
