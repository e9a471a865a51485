"""The ``otel-llm-audit`` command: ``demo``; ``show``, ``find``, ``cost``, ``export`` (audit store or OTLP JSON)."""

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

    from otel_llm_audit.cli.queries import add_query_parsers

    add_query_parsers(commands)  # show, find, cost, export: from the audit store or an OTLP JSON file
    from otel_llm_audit.cli.verify import add_verify_parser

    add_verify_parser(commands)  # verify: tamper evidence, by position

    args = parser.parse_args(argv)
    console = Console()
    if args.command == "demo":
        from otel_llm_audit.cli.demo import run_demo

        return run_demo(args.output, args.content, console)
    if getattr(args, "handler", None) is not None:
        from otel_llm_audit.cli.options import run_command

        return run_command(args.handler, args, console)
    return 2


if __name__ == "__main__":
    sys.exit(main())
