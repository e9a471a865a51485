"""Points in time as a responder types them: ISO 8601 (UTC unless an offset is given) or ``30m``/``24h``/``7d`` ago."""

from __future__ import annotations

import argparse
import re
import time
from datetime import datetime, timezone

_RELATIVE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str, *, now_ns: int | None = None) -> int:
    """``text`` as nanoseconds since the epoch.

    ``2026-11-27``, ``2026-11-27T10:00``, ``2026-11-27 10:00:05.250``, ``2026-11-27T10:00+01:00``
    or ``...Z``: an instant (no offset means UTC, as the store's times are). ``30m``, ``24h``,
    ``7d``, ``2w``, ``90s``: that long before now. ``now``: now. Raises ``ValueError``.
    """
    now = time.time_ns() if now_ns is None else now_ns
    if text.strip().lower() == "now":
        return now
    relative = _RELATIVE.match(text)
    if relative:
        return now - int(relative.group(1)) * _UNIT_SECONDS[relative.group(2)] * 1_000_000_000
    value = text.strip()
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (use ISO 8601 such as 2026-11-27T10:00 or 2026-11-27, or 30m, 24h, 7d ago)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def time_argument(text: str) -> int:
    """``parse_time`` for argparse (a bad value is a usage error)."""
    try:
        return parse_time(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def utc_text(ns: int, *, precise: bool = False, year: bool = True) -> str:
    """``2026-11-27 10:00:05`` (UTC), ``11-27 10:00:05`` without the ``year`` (a narrow table),
    or ISO 8601 with microseconds and ``Z`` when ``precise``."""
    moment = datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc).replace(
        microsecond=(ns % 1_000_000_000) // 1000
    )
    if precise:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%d %H:%M:%S" if year else "%m-%d %H:%M:%S")
