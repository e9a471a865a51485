"""The masking stage's work on one span: a masked copy, or a copy with its content withheld.

Which values are content is declared in the registry (``x-masking`` in ``semconv/*.yaml``,
generated into :data:`semconv.MASKED_JSON_KEYS` and :data:`semconv.MASKED_TEXT_KEYS`); the
policy's ``extra_attribute_keys`` add more, and the content keys of other GenAI
instrumentations (OpenLLMetry's ``gen_ai.prompt.*``, OpenInference's ``input.value``, ...)
are covered too, so running one of them beside this package does not leak through our
exporters. Span event attributes that are not known non-content keys (exception messages
and stack traces above all) and the status description are masked on every span.

JSON values are masked inside their strings (same keys, same shape); when a value cannot be
masked it is *withheld*: replaced by a marker holding its SHA-256, so nothing unmasked
leaves, yet a holder of the original can still prove what it was. The span then says
``llm_audit.redaction.status=failed`` and why. Identity attributes (``user.id``...) are left
alone unless the policy lists them: the audit needs them.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Status

from otel_llm_audit import semconv
from otel_llm_audit.emitter.handoff import SCOPE_PREFIX
from otel_llm_audit.processing.span_copy import replace_span

if TYPE_CHECKING:
    from otel_llm_audit.processing.masking import Masker, MaskingPolicy

__all__ = ["PEER_CONTENT_PREFIXES", "SpanRedactor", "withheld_marker"]

#: Content keys of other GenAI instrumentations (prefixes), masked as JSON-or-text.
PEER_CONTENT_PREFIXES: tuple[str, ...] = (
    "gen_ai.prompt.",  # OpenLLMetry (legacy indexed keys)
    "gen_ai.completion.",
    "traceloop.entity.input",
    "traceloop.entity.output",
    "llm.input_messages",  # OpenInference
    "llm.output_messages",
    "llm.prompts",
    "input.value",
    "output.value",
    "retrieval.documents",
    "tool.parameters",
)
#: The peer keys above that hold what was sent to the model.
_PEER_SENT_PREFIXES = (
    "gen_ai.prompt.",
    "traceloop.entity.input",
    "llm.input_messages",
    "llm.prompts",
    "input.value",
    "retrieval.documents",
)

_JSON = "json"
_TEXT = "text"
_AUTO = "auto"  # JSON when it parses as an object or array, else text
_FORMAT_CACHE_LIMIT = 4096
_PII_CATEGORY = "pii"  # a well-known value of llm_audit.policy.category (a free-form string)
_PII_POLICY_NAME = "pii_masking"
_PII_POLICY_SOURCE = "otel_llm_audit.masking"


def withheld_marker(value: str) -> str:
    """What a value that could not be masked becomes: its SHA-256, never its text."""
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return f"<WITHHELD sha256:{digest}>"


class _Outcome:
    """What happened to one span's values."""

    __slots__ = ("entities", "failure", "sent", "touched")

    def __init__(self, failure: str | None) -> None:
        self.entities: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.failure = failure
        self.touched = False


class SpanRedactor:
    """Builds the masked (or withheld) copy of an ended span; never changes the span itself.

    Without a ``masker`` it can only withhold: that is what the stage uses while presidio is
    starting, when it could not start, and on the caller's thread when the queue is full.
    """

    def __init__(self, policy: MaskingPolicy, masker: Masker | None = None) -> None:
        self.policy = policy
        self.masker = masker
        self.policy_version = policy.version
        keys = tuple(policy.extra_attribute_keys)
        self._extra_exact = frozenset(k for k in keys if not k.endswith("*"))
        self._prefixes = tuple(k[:-1] for k in keys if k.endswith("*")) + PEER_CONTENT_PREFIXES
        self._span_formats: dict[str, str | None] = {}
        self._event_formats: dict[str, str | None] = {}

    # -------------------------------------------------------------------------------------

    def redact(self, span: ReadableSpan) -> ReadableSpan:
        """The masked copy of ``span`` (values that fail to mask are withheld and flagged)."""
        if self.masker is None:
            return self.withhold(span, semconv.LlmAuditRedactionFailureValues.UNAVAILABLE)
        return self._rewrite(span, _Outcome(None))

    def withhold(self, span: ReadableSpan, failure: str) -> ReadableSpan:
        """``span`` with every content value replaced by its marker, flagged failed for ``failure``."""
        return self._rewrite(span, _Outcome(failure))

    # -------------------------------------------------------------------------------------

    def _rewrite(self, span: ReadableSpan, outcome: _Outcome) -> ReadableSpan:
        attrs = span.attributes or {}
        new_attrs: dict[str, Any] | None = None
        formats = self._span_formats
        for key, value in attrs.items():
            fmt = formats.get(key, _UNKNOWN)  # most keys are known and carry no content
            if fmt is _UNKNOWN:
                fmt = self._span_format(key)
            if fmt is None:
                continue
            new = self._value(value, fmt, outcome, self._is_sent(key))
            if new is not value:
                if new_attrs is None:
                    new_attrs = dict(attrs)
                new_attrs[key] = new
        events = self._events(span.events, outcome)
        status = span.status
        if status.description:
            description = self._value(status.description, _TEXT, outcome, False)
            if description is not status.description:
                status = Status(status.status_code, description)
        ours = span.instrumentation_scope is not None and span.instrumentation_scope.name.startswith(SCOPE_PREFIX)
        if not ours and not outcome.touched and outcome.failure is None:
            return span  # nothing of ours, nothing to mask: the span passes as it is
        if new_attrs is None:
            new_attrs = dict(attrs)
        self._annotate(new_attrs, outcome)
        if outcome.sent:
            events = list(events if events is not None else span.events)
            events.append(self._pii_event(outcome.sent, span.end_time))
            new_attrs[semconv.LLM_AUDIT_AUDIT_RECORD] = True
        if outcome.failure is not None and outcome.touched:
            # Content withheld because masking could not run: an audit fact the SIEM must see.
            events = list(events if events is not None else span.events)
            events.append(self._withheld_event(outcome.failure, span.end_time))
            new_attrs[semconv.LLM_AUDIT_AUDIT_RECORD] = True
        return replace_span(span, attributes=new_attrs, events=events, status=status)

    def _annotate(self, attrs: dict[str, Any], outcome: _Outcome) -> None:
        values = semconv.LlmAuditRedactionStatusValues
        attrs[semconv.LLM_AUDIT_REDACTION_POLICY_VERSION] = self.policy_version
        if outcome.failure is not None:
            attrs[semconv.LLM_AUDIT_REDACTION_STATUS] = values.FAILED
            attrs[semconv.LLM_AUDIT_REDACTION_FAILURE] = outcome.failure
        else:
            attrs[semconv.LLM_AUDIT_REDACTION_STATUS] = values.MASKED if outcome.entities else values.CLEAN
        if outcome.entities:
            attrs[semconv.LLM_AUDIT_REDACTION_ENTITIES] = _counts_json(outcome.entities)

    def _pii_event(self, sent: Counter[str], when: int | None) -> Event:
        """Personal data was found in what was sent, and masked."""
        details = {"entities": dict(sorted(sent.items())), "policy_version": self.policy_version}
        return self._masking_event(semconv.LlmAuditPolicyActionValues.MASKED, details, when)

    def _withheld_event(self, failure: str, when: int | None) -> Event:
        """Masking could not run: the content was withheld."""
        details = {"failure": failure, "content": "withheld", "policy_version": self.policy_version}
        return self._masking_event(semconv.LlmAuditPolicyActionValues.REDACTED, details, when)

    @staticmethod
    def _masking_event(action: str, details: dict[str, Any], when: int | None) -> Event:
        return Event(
            semconv.EVENT_LLM_AUDIT_POLICY,
            {
                semconv.LLM_AUDIT_POLICY_CATEGORY: _PII_CATEGORY,
                semconv.LLM_AUDIT_POLICY_ACTION: action,
                semconv.LLM_AUDIT_POLICY_SOURCE: _PII_POLICY_SOURCE,
                semconv.LLM_AUDIT_POLICY_NAME: _PII_POLICY_NAME,
                semconv.LLM_AUDIT_POLICY_DETAILS: json.dumps(details, sort_keys=True, separators=(",", ":")),
            },
            when,
        )

    def _events(self, events: Sequence[Event], outcome: _Outcome) -> list[Event] | None:
        """The events with their content masked, or ``None`` when none changed."""
        out: list[Event] | None = None
        for index, event in enumerate(events):
            attrs = event.attributes or {}
            new_attrs: dict[str, Any] | None = None
            for key, value in attrs.items():
                fmt = self._event_format(key)
                if fmt is None:
                    continue
                new = self._value(value, fmt, outcome, False)
                if new is not value:
                    if new_attrs is None:
                        new_attrs = dict(attrs)
                    new_attrs[key] = new
            if new_attrs is not None:
                if out is None:
                    out = list(events)
                out[index] = Event(event.name, new_attrs, event.timestamp)
        return out

    # -------------------------------------------------------------------------------------

    def _value(self, value: Any, fmt: str, outcome: _Outcome, sent: bool) -> Any:
        """The masked value: strings masked, sequences of strings masked item by item."""
        if isinstance(value, str):
            outcome.touched = True
            return self._text(value, fmt, outcome, sent)
        if isinstance(value, (tuple, list)) and any(isinstance(v, str) for v in value):
            outcome.touched = True
            masked = [self._text(v, fmt, outcome, sent) if isinstance(v, str) else v for v in value]
            return value if all(a is b for a, b in zip(masked, value, strict=True)) else tuple(masked)
        return value

    def _text(self, text: str, fmt: str, outcome: _Outcome, sent: bool) -> str:
        if not text:
            return text
        masker = self.masker
        if outcome.failure is not None or masker is None:
            return _withheld(text, fmt)
        try:
            result = masker.mask_text(text) if fmt == _TEXT else masker.mask_json(text)
        except Exception:  # MaskingError, or anything the engine let through: fail closed
            outcome.failure = semconv.LlmAuditRedactionFailureValues.ERROR
            return _withheld(text, fmt)
        if result.entities:
            outcome.entities.update(result.entities)
            if sent:
                outcome.sent.update(result.entities)
            return result.text
        return text if type(text) is str else result.text  # the emitter's JsonArrayText: a plain copy

    # -------------------------------------------------------------------------------------

    def _span_format(self, key: str) -> str | None:
        return self._format(key, self._span_formats, event=False)

    def _event_format(self, key: str) -> str | None:
        return self._format(key, self._event_formats, event=True)

    def _format(self, key: str, cache: dict[str, str | None], *, event: bool) -> str | None:
        """How ``key``'s value is masked (``None``: not at all), remembered per key."""
        found = cache.get(key, _UNKNOWN)
        if found is _UNKNOWN:
            found = self._classify(key, event=event)
            if len(cache) < _FORMAT_CACHE_LIMIT:
                cache[key] = found
        return found

    def _classify(self, key: str, *, event: bool) -> str | None:
        if key in semconv.MASKED_JSON_KEYS:
            return _JSON
        if key in semconv.MASKED_TEXT_KEYS:
            return _TEXT
        if key in self._extra_exact or key.startswith(self._prefixes):
            return _AUTO
        if event and key not in semconv.ALL_ATTRIBUTE_KEYS:
            return _AUTO  # an event attribute we do not know may well carry content
        return None

    def _is_sent(self, key: str) -> bool:
        return key in semconv.SENT_TO_MODEL_KEYS or key.startswith(_PEER_SENT_PREFIXES)


_UNKNOWN = "\x00unclassified"  # not a format: the key has not been looked at yet


def _withheld(text: str, fmt: str) -> str:
    marker = withheld_marker(text)
    return json.dumps(marker) if fmt == _JSON else marker


def _counts_json(counts: Counter[str]) -> str:
    return json.dumps(dict(sorted(counts.items())), separators=(",", ":"))
