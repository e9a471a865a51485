"""PII and secret masking for audit spans, before anything leaves the process.

The engine is self-contained: a :class:`MaskingPolicy` (YAML, validated and versioned) and a
:class:`Masker` that applies it to texts and JSON documents with presidio's pattern
recognizers, offline, plus this package's recognizers for API keys, tokens and medical record
numbers. The span pipeline calls it from its worker thread; nothing here touches spans.

Importing this package is cheap: presidio (and spaCy, which it imports) is loaded when the
first :class:`Masker` is built.

>>> policy = MaskingPolicy.load()                       # doctest: +SKIP
>>> Masker(policy).mask_text("mail jane@example.com").text   # doctest: +SKIP
'mail <EMAIL_ADDRESS>'
"""

from __future__ import annotations

from .engine import Masker, MaskResult
from .errors import MaskingConfigError, MaskingError
from .policy import BUILTIN_ENTITIES, CustomRecognizer, DenyRule, MaskingPolicy, ReplacementMode
from .replace import Detection

__all__ = [
    "BUILTIN_ENTITIES",
    "CustomRecognizer",
    "DenyRule",
    "Detection",
    "MaskResult",
    "Masker",
    "MaskingConfigError",
    "MaskingError",
    "MaskingPolicy",
    "ReplacementMode",
]
