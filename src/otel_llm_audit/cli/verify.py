"""``otel-llm-audit verify``: is the audit trail complete and unaltered? Every problem, by position.

Exit statuses: 0 nothing wrong (warnings and notes may be printed), 1 at least one finding of
severity error (modified, deleted, inserted, reordered records; bad checkpoints; wrong key),
2 the source or key cannot be used at all (one line on standard error).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from otel_llm_audit.cli.layout import fitting_table, header, light_table, short_id
from otel_llm_audit.processing.verify_findings import ERROR, INFO, WARNING, VerifyInputError, VerifyResult

#: The terminal shows this many findings; ``--json`` has them all.
MAX_ROWS = 500

_STYLE = {ERROR: "bold red", WARNING: "yellow", INFO: "dim"}


def add_verify_parser(commands: Any) -> None:
    """Register ``verify`` (it runs through the same ``handler`` dispatch as the query commands)."""
    parser = commands.add_parser(
        "verify",
        help="check an audit store or OTLP JSON file for modified, deleted, inserted or reordered records",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "source",
        nargs="?",
        metavar="SOURCE",
        help="an audit store or an OTLP JSON lines file (default: the configured store, OTEL_LLM_AUDIT_STORE)",
    )
    parser.add_argument("--source", dest="source_option", metavar="PATH", help="the same as SOURCE")
    parser.add_argument(
        "--key",
        metavar="FILE",
        help="the seal key: the HMAC secret, or the Ed25519 public (or private) key PEM "
        "(default: OTEL_LLM_AUDIT_SEAL_KEY_FILE when set; without a key only naive edits are caught)",
    )
    parser.add_argument(
        "--any-order",
        action="store_true",
        help="do not report records stored out of sequence order (a collector's batching may reorder spans)",
    )
    parser.add_argument(
        "--partial",
        action="store_true",
        help="the source is a filtered subset of each stream (the SIEM's copy: audit records and checkpoints "
        "only): count missing records as absent instead of reporting them as deleted (implies --any-order)",
    )
    parser.add_argument("--json", action="store_true", help="the result as JSON on standard output")
    parser.set_defaults(handler=run_verify)


def run_verify(args: argparse.Namespace, console: Console) -> int:
    from otel_llm_audit.cli.options import note, print_json
    from otel_llm_audit.config import Settings
    from otel_llm_audit.processing.sealing import SealKeyError, load_seal_key
    from otel_llm_audit.processing.verification import verify

    try:
        settings = Settings.from_env()
        source = args.source or args.source_option or settings.store
        key_file = args.key if args.key is not None else settings.seal_key_file
        key = load_seal_key(key_file) if key_file else None
    except (SealKeyError, ValueError) as err:
        note(str(err))
        return 2
    with contextlib.ExitStack() as stack:
        try:
            result = verify(
                source,
                key=key,
                any_order=args.any_order,
                partial=args.partial,
                progress=_progress(stack, source),
            )
        except VerifyInputError as err:
            note(str(err))
            return 2
        except OSError as err:
            note(f"{getattr(err, 'filename', None) or source}: {err.strerror or err}")
            return 2
    if args.json:
        print_json(result.to_json())
    else:
        render(result, console)
    return 0 if result.ok else 1


def _progress(stack: contextlib.ExitStack, source: str) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` that opens a bar on standard error once the total is known."""
    from otel_llm_audit.cli.progress import progress_bar

    advance: Callable[[int], None] | None = None
    seen = 0

    def progress(done: int, total: int) -> None:
        nonlocal advance, seen
        if advance is None:
            is_store = _is_store(source)
            unit = "records" if is_store else "bytes"
            advance = stack.enter_context(progress_bar(total, f"verifying {source}", unit=unit))
        advance(done - seen)
        seen = done

    return progress


def _is_store(source: str) -> bool:
    from otel_llm_audit.delivery.store import SQLITE_MAGIC

    try:
        with open(source, "rb") as handle:
            return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def _streams_table(result: VerifyResult, *, compact: bool) -> Table:
    """One row per stream; ``compact`` (12-digit stream ids) when the full table would not fit.

    A partial copy's table also says how many records of each stream the copy does not hold.
    """
    table = light_table(title="streams", title_justify="left")
    columns = ["stream", "records", "seqs", "checkpoints", "last checkpoint", "seal"]
    if result.partial:
        columns.insert(2, "absent")
    for column in columns:
        figure = column in ("records", "absent", "checkpoints")
        # ids and figures never wrap; the seal ("hmac-sha256 (key id)") may, at its space
        title = header(column, compact)
        table.add_column(title, justify="right" if figure else "left", no_wrap=column != "seal")
    for stream in result.streams:
        seqs = f"{stream.first_seq}..{stream.last_seq}" if stream.first_seq is not None else ""
        seal = stream.algorithm + (f" ({stream.key_id})" if stream.key_id else "")
        row = [short_id(stream.stream, compact), f"{stream.records:,}", seqs]
        if result.partial:
            row.insert(2, f"{stream.absent:,}")
        table.add_row(*row, str(stream.checkpoints), stream.last_checkpoint, seal)
    return table


def render(result: VerifyResult, console: Console) -> None:
    """A summary line, the streams, and the findings by position."""
    streams = len(result.streams)
    key = f"{result.key} key {result.key_id}" if result.key != "none" else "no key"
    verdict = Text("OK", style="bold green") if result.ok else Text("TAMPERED", style="bold red")
    kind = f"{result.source_kind}, partial copy" if result.partial else result.source_kind
    summary = Text.assemble(
        f"{result.source} ({kind}): {result.records:,} records in {streams} stream"
        f"{'s' if streams != 1 else ''}, {result.checkpoints:,} checkpoints, checked with {key}: ",
        verdict,
    )
    if result.findings:
        parts = [f"{count} {kind}" for kind, count in result.counts.items()]
        summary.append(f"  ({', '.join(parts)})")
    console.print(summary)
    if result.streams:
        console.print(fitting_table(console, lambda compact: _streams_table(result, compact=compact)))
    if not result.findings:
        return
    with_lines = result.source_kind == "otlp"
    table = light_table(title="findings", title_justify="left")
    table.add_column("position", justify="right", no_wrap=True)
    if with_lines:
        table.add_column("line", justify="right", no_wrap=True)
    table.add_column("stream", no_wrap=True)
    table.add_column("seq", justify="right", no_wrap=True)
    table.add_column("finding", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for item in result.findings[:MAX_ROWS]:
        seq = "" if item.seq is None else str(item.seq)
        if item.seq_end is not None and item.seq_end != item.seq:
            seq += f"..{item.seq_end}"
        row: list[str | Text] = ["" if item.position is None else str(item.position)]
        if with_lines:
            row.append("" if item.line is None else str(item.line))
        row += [item.stream[:8], seq, Text(item.kind, style=_STYLE[item.severity]), item.message]
        table.add_row(*row)
    console.print(table)
    if len(result.findings) > MAX_ROWS:
        console.print(f"... and {len(result.findings) - MAX_ROWS} more findings (--json has them all)")
