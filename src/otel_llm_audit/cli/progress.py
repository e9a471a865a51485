"""Progress bars for long scans, on standard error so that standard output stays clean for pipes and ``--json``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

#: Scans shorter than this finish before a bar would be worth drawing.
MIN_BYTES = 8 * 1024 * 1024
MIN_RECORDS = 50_000


@contextmanager
def progress_bar(
    total: int, description: str, *, unit: str = "bytes", enabled: bool = True
) -> Iterator[Callable[[int], None]]:
    """An ``advance(n)`` callable that moves a transient bar on standard error (a no-op for short scans).

    ``unit`` is ``bytes`` (a file read) or ``records`` (rows of the store).
    """
    threshold = MIN_BYTES if unit == "bytes" else MIN_RECORDS
    console = stderr_console() if enabled and total >= threshold else None
    if console is None or not console.is_terminal:  # nobody watches a redirected standard error
        yield _ignore
        return
    amount = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        amount,
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=total)
        step = max(total // 1000, 1)
        pending = 0

        def advance(n: int) -> None:
            # The bar's lock costs microseconds: move it every 0.1 %, not every line.
            nonlocal pending
            pending += n
            if pending >= step:
                progress.advance(task, pending)
                pending = 0

        yield advance


def stderr_console() -> Console:
    return Console(stderr=True)


def _ignore(n: int) -> None:
    return None
