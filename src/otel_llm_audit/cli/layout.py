"""Tables that read in an 80-column terminal and on a wide screen alike.

A responder may be on a laptop's split pane or a jump host's 80 columns. Rich shares out a
narrow width by shrinking every column that may wrap, which can squeeze a text column to
nothing while a 32-digit id keeps its room. So the tables here use a light box (a rule under
the header, two spaces between columns, no frame: the most room for values), and a command
builds its table twice when it must: in full, and, when the full table would not fit the
console, compact (ids shortened to a prefix that ``show`` still accepts, times without the year).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

#: How many hex digits of an id a compact table shows: 48 bits, so that even among a million
#: traces the chance that any two share them is about one in 500 (and ``show`` refuses a prefix
#: two traces share, listing both).
SHORT_ID_DIGITS = 12

#: Wide enough that no table is ever measured against it.
_UNBOUNDED = 1_000_000


def light_table(*, footer: bool = False, **options: Any) -> Table:
    """A table with a rule under the header (and above the footer), no frame, two spaces between columns."""
    return Table(
        box=box.SIMPLE if footer else box.SIMPLE_HEAD,
        show_footer=footer,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        **options,
    )


def fits(console: Console, table: Table) -> bool:
    """Whether ``table`` fits the console's width with no cell wrapped."""
    return width_of(console, table) <= console.width


def fitting_table(console: Console, build: Callable[[bool], Table]) -> Table:
    """``build(False)`` (full values) when it fits the console, else ``build(True)`` (compact values)."""
    full = build(False)
    return full if fits(console, full) else build(True)


def short_id(hex_id: str, compact: bool) -> str:
    """The id, or its first :data:`SHORT_ID_DIGITS` digits in a compact table."""
    return hex_id[:SHORT_ID_DIGITS] if compact else hex_id


def header(title: str, compact: bool) -> str:
    """A column title on one line, or on two (split at its first space) in a compact table.

    For the columns that must not wrap (figures, ids): their title would otherwise set their width.
    """
    return title.replace(" ", "\n", 1) if compact else title


def width_of(console: Console, table: Table) -> int:
    """How wide ``table`` is with no cell wrapped (its fixed-width columns at their width)."""
    return Measurement.get(console, console.options.update_width(_UNBOUNDED), table).maximum


def share(room: int, wanted: Sequence[int], floor: int) -> list[int]:
    """Widths for columns that want ``wanted`` and share ``room``.

    Narrowest first, each gets what it wants while the others can still have ``floor`` (a user id
    stays whole), else an equal part of what is left; none gets less than ``floor`` unless it
    wants less, or unless the room is too small for that (then equal parts of it).
    """
    widths = list(wanted)
    floor = max(1, min(floor, room // max(1, len(wanted))))
    left = room
    for done, index in enumerate(sorted(range(len(wanted)), key=lambda i: wanted[i])):
        others = len(wanted) - done - 1
        if wanted[index] <= left - floor * others:
            widths[index] = wanted[index]
        else:
            widths[index] = max(floor, left // (others + 1))
        left -= widths[index]
    return widths
