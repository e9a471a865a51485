"""Small readers that tolerate dicts, pydantic models, SDK sentinels and missing fields.

Capture modules read requests and responses of SDKs that change shape between releases
(a plain dict in one version, a pydantic model in the next, a ``NotGiven`` / ``Omit``
placeholder for an unset parameter). These readers return ``None`` (or the default) for
anything that is not what they read, so a new shape becomes a missing attribute, never an
exception that loses the record.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

_MISSING = object()


def get(obj: Any, name: str, default: Any = None) -> Any:
    """``obj[name]`` for dicts, ``obj.name`` for SDK objects; ``default`` when absent.

    Called for every field of every chunk: plain dicts and attribute access first, the
    (slow) ``Mapping`` ABC check only as a last resort.
    """
    if obj is None:
        return default
    if type(obj) is dict:
        return obj.get(name, default)
    value = getattr(obj, name, _MISSING)
    if value is not _MISSING:
        return value
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return default


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def as_str_list(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return None


def json_or_text(value: Any) -> Any:
    """Tool arguments arrive as JSON text; the conventions want the object when it parses."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class DictView:
    """Attribute access over a dict chunk, so chunk assembly reads SDK objects and dicts alike
    with plain ``getattr`` (the fast path for the SDK's own objects, which is what arrives)."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        return view(self._data.get(name))

    @property
    def data(self) -> dict[str, Any]:
        return self._data


def view(value: Any) -> Any:
    """``value`` with its dicts behind :class:`DictView` (lists converted item by item)."""
    if type(value) is dict:
        return DictView(value)
    if type(value) is list:
        return [view(v) for v in value]
    return value


def host_and_port(url: Any) -> tuple[str | None, int | None]:
    """``server.address`` and ``server.port`` of a URL: the scheme's default port for http(s)."""
    parts = urlsplit(str(url or ""))
    host = parts.hostname
    if not host:
        return None, None
    try:
        port = parts.port
    except ValueError:  # a port that is not a number
        port = None
    if port is None and parts.scheme in ("http", "https"):
        port = 443 if parts.scheme == "https" else 80
    return host, port
