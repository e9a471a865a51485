"""Options the query commands share, and the one place their errors become exit statuses.

Exit statuses: 0 found something, 1 nothing matched ("no matching spans"), 2 the source or
the command line is wrong (one line on standard error, never a traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console

from otel_llm_audit.cli.sources import TEXT_FILTERS, Filters, SourceError
from otel_llm_audit.cli.timespec import time_argument

NO_MATCH = "no matching spans"

Handler = Callable[[argparse.Namespace, Console], int]


def add_source_option(parser: argparse.ArgumentParser, what: str = "an audit store or OTLP JSON lines file") -> None:
    parser.add_argument(
        "--source",
        metavar="PATH",
        help=f"{what} to read (default: the configured store, OTEL_LLM_AUDIT_STORE)",
    )


def add_time_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since",
        type=time_argument,
        metavar="TIME",
        help="spans that started at or after TIME: ISO 8601 in UTC (2026-11-27T10:00, 2026-11-27) or 30m, 24h, 7d ago",
    )
    parser.add_argument("--until", type=time_argument, metavar="TIME", help="spans that started before TIME")


def add_filter_options(parser: argparse.ArgumentParser) -> None:
    """``--user --session --tenant --team --app --model --since --until --policy --errors``."""
    helps = {
        "user": "user id (user.id)",
        "session": "session id (session.id)",
        "tenant": "tenant (llm_audit.tenant.id)",
        "team": "team (llm_audit.team)",
        "app": "application (llm_audit.application)",
        "model": "model (the response's, else the request's): * is a wildcard, 'gpt-4o-mini*' every snapshot",
    }
    for option, _ in TEXT_FILTERS:
        wildcard = "" if option == "model" else "; * is a wildcard"
        parser.add_argument(f"--{option}", metavar=option.upper(), help=f"only this {helps[option]}{wildcard}")
    add_time_options(parser)
    parser.add_argument("--policy", action="store_true", help="only spans carrying a policy event")
    parser.add_argument("--errors", action="store_true", help="only failed spans (error status or error.type)")


def filters_from(args: argparse.Namespace) -> Filters:
    return Filters(
        text=tuple((field_name, getattr(args, option)) for option, field_name in TEXT_FILTERS if getattr(args, option)),
        since_ns=args.since,
        until_ns=args.until,
        policy=bool(getattr(args, "policy", False)),
        errors=bool(getattr(args, "errors", False)),
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def print_json(value: Any) -> None:
    """JSON on standard output, unwrapped (rich would fold long strings at the terminal's width)."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def note(message: str) -> None:
    sys.stderr.write(f"otel-llm-audit: {message}\n")


def run_command(handler: Handler, args: argparse.Namespace, console: Console) -> int:
    """Run a query command; a source problem is one line and status 2."""
    try:
        return handler(args, console)
    except SourceError as err:
        note(str(err))
    except sqlite3.Error as err:
        note(f"cannot read the audit store: {err}")
    except OSError as err:
        if isinstance(err, BrokenPipeError):  # `... | head`: the reader has what it wanted
            _silence_stdout()
            return 0
        note(f"{getattr(err, 'filename', None) or 'input'}: {err.strerror or err}")
    return 2


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
