"""``wrapt.ObjectProxy`` as a base class that type-checks under wrapt 1.x and 2.x.

wrapt 2 ships type hints in which ``ObjectProxy`` is generic; wrapt 1.14 (the oldest we
support) is not subscriptable at run time. Our proxies subclass this alias instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import wrapt

if TYPE_CHECKING:
    ObjectProxy = wrapt.ObjectProxy[Any]
else:
    ObjectProxy = wrapt.ObjectProxy

__all__ = ["ObjectProxy"]
