"""The canonical encoding of a span: the bytes a seal is computed over.

A seal must verify wherever the span travels: in our local store, and in the copy a collector
wrote to a file or a SIEM. So the encoding is defined over what OTLP carries, and two
functions build it, one from the SDK's ``ReadableSpan`` (when the store seals it) and one from
OTLP/JSON (when ``otel-llm-audit verify`` reads a collector's copy); tests hold them equal.

The document is OTLP/JSON-shaped with everything that could legitimately be reordered or
reformatted on the way normalised away: attributes sorted by key, 64-bit integers as decimal
strings, doubles as their shortest round-trip decimal string, ids as lowercase hex. It has no
JSON numbers besides small enum integers and only ASCII object keys, so ``json.dumps`` with
sorted keys and no whitespace writes exactly its RFC 8785 (JCS) form (a test checks this
against the ``rfc8785`` package). That matters for speed: the RFC 8785 reference encoder costs
~300 us per span, ``json.dumps`` ~40 us.

Covered: trace, span and parent ids, name, kind, start and end times, status, attributes,
events, links, the instrumentation scope, and the resource keys that say which application
sent the span (``RESOURCE_KEYS``). Not covered: trace state, flags, dropped counts and other
resource attributes, which collectors add or rewrite in ordinary operation (k8s metadata).
The seal's own attributes (``SEAL_KEYS``) are outside the body: they are the seal.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from otel_llm_audit import semconv

#: Version tag of the encoding; part of every seal's input.
FORMAT = "llm-audit-seal/1"

#: The seal fields themselves, excluded from the body they seal. (A checkpoint's own fields,
#: ``llm_audit.integrity.checkpoint.*``, are content: its seal covers them.)
SEAL_KEYS = frozenset(
    {
        semconv.LLM_AUDIT_INTEGRITY_STREAM,
        semconv.LLM_AUDIT_INTEGRITY_SEQUENCE,
        semconv.LLM_AUDIT_INTEGRITY_PREV_HASH,
        semconv.LLM_AUDIT_INTEGRITY_HASH,
        semconv.LLM_AUDIT_INTEGRITY_ALGORITHM,
        semconv.LLM_AUDIT_INTEGRITY_KEY_ID,
    }
)

#: Resource attributes covered by the seal: the identity of the sending application.
RESOURCE_KEYS = frozenset(
    {
        "service.name",
        "service.namespace",
        "service.version",
        "service.instance.id",
        "deployment.environment",
        "deployment.environment.name",
    }
)

Typed = list[Any]

_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def encode(document: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a canonical document (see the module docstring for why this is JCS)."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # A lone surrogate (text decoded with surrogateescape) is kept as is, not a crash.
    return text.encode("utf-8", "surrogatepass")


# From the SDK ---------------------------------------------------------------------------------


def typed_value(value: Any) -> Typed:
    """A Python attribute value as ``[type tag, canonical value]``."""
    if isinstance(value, str):
        return ["s", value]
    if isinstance(value, bool):
        return ["b", value]
    if isinstance(value, int):
        return ["i", str(value)]
    if isinstance(value, float):
        return ["d", repr(value)]
    if isinstance(value, bytes | bytearray):
        return ["x", base64.b64encode(bytes(value)).decode("ascii")]
    if isinstance(value, Mapping):
        return ["k", _attribute_list(value.items())]
    if isinstance(value, Sequence):
        return ["a", [typed_value(item) for item in value]]
    if value is None:
        return ["n", None]
    return ["s", str(value)]


def _attribute_list(items: Iterable[tuple[str, Any]]) -> list[Typed]:
    return sorted(
        ([str(key), typed_value(value)] for key, value in items if key not in SEAL_KEYS),
        key=lambda pair: pair[0],
    )


def span_document(span: ReadableSpan) -> dict[str, Any]:
    """The canonical document of an SDK span."""
    context = span.context
    parent = span.parent
    scope = span.instrumentation_scope
    resource = span.resource.attributes if span.resource is not None else {}
    status = span.status
    return {
        "v": FORMAT,
        "resource": _attribute_list((k, v) for k, v in resource.items() if k in RESOURCE_KEYS),
        "scope": [scope.name if scope else "", (scope.version or "") if scope else ""],
        "traceId": format(context.trace_id, "032x") if context else "",
        "spanId": format(context.span_id, "016x") if context else "",
        "parentSpanId": format(parent.span_id, "016x") if parent is not None else "",
        "name": span.name,
        "kind": span.kind.value + 1,  # OTLP numbers kinds from 1 (INTERNAL); the SDK from 0
        "start": str(span.start_time or 0),
        "end": str(span.end_time or 0),
        "attributes": _attribute_list((span.attributes or {}).items()),
        "events": [
            [event.name, str(event.timestamp), _attribute_list((event.attributes or {}).items())]
            for event in span.events
        ],
        "links": [
            [
                format(link.context.trace_id, "032x"),
                format(link.context.span_id, "016x"),
                _attribute_list((link.attributes or {}).items()),
            ]
            for link in span.links
        ],
        "status": [status.status_code.value, status.description or ""],
    }


def span_body(span: ReadableSpan) -> bytes:
    """The canonical bytes of an SDK span."""
    return encode(span_document(span))


# From OTLP/JSON -------------------------------------------------------------------------------


def _typed_json(value: Mapping[str, Any] | None) -> Typed:
    """An OTLP/JSON ``AnyValue`` as ``[type tag, canonical value]`` (the same tags as ``_typed``)."""
    if not value:
        return ["n", None]
    if "stringValue" in value:
        return ["s", str(value["stringValue"])]
    if "boolValue" in value:
        return ["b", bool(value["boolValue"])]
    if "intValue" in value:
        return ["i", str(int(value["intValue"]))]
    if "doubleValue" in value:
        return ["d", repr(float(value["doubleValue"]))]
    if "bytesValue" in value:
        return ["x", str(value["bytesValue"])]
    if "arrayValue" in value:
        return ["a", [_typed_json(item) for item in (value["arrayValue"] or {}).get("values", [])]]
    if "kvlistValue" in value:
        return ["k", _attribute_list_json((value["kvlistValue"] or {}).get("values", []))]
    return ["n", None]


def _attribute_list_json(items: Iterable[Mapping[str, Any]] | None) -> list[Typed]:
    return sorted(
        (
            [str(item.get("key", "")), _typed_json(item.get("value"))]
            for item in items or ()
            if item.get("key", "") not in SEAL_KEYS
        ),
        key=lambda pair: pair[0],
    )


def _hex_id(value: Any) -> str:
    """An id as OTLP/JSON writes it (hex); tolerate base64 from protobuf's generic JSON."""
    text = str(value or "")
    if text and not all(c in "0123456789abcdefABCDEF" for c in text):
        try:
            return base64.b64decode(text).hex()
        except ValueError:
            return text
    return text.lower()


def otlp_document(
    span: Mapping[str, Any], resource_attributes: Iterable[Mapping[str, Any]] | None, scope: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The canonical document of one OTLP/JSON span, given its resource's and scope's JSON."""
    scope = scope or {}
    status = span.get("status") or {}
    return {
        "v": FORMAT,
        "resource": [pair for pair in _attribute_list_json(resource_attributes) if pair[0] in RESOURCE_KEYS],
        "scope": [str(scope.get("name", "")), str(scope.get("version", ""))],
        "traceId": _hex_id(span.get("traceId")),
        "spanId": _hex_id(span.get("spanId")),
        "parentSpanId": _hex_id(span.get("parentSpanId")),
        "name": str(span.get("name", "")),
        "kind": int(span.get("kind", 0) or 0),
        "start": str(int(span.get("startTimeUnixNano", 0) or 0)),
        "end": str(int(span.get("endTimeUnixNano", 0) or 0)),
        "attributes": _attribute_list_json(span.get("attributes")),
        "events": [
            [str(e.get("name", "")), str(int(e.get("timeUnixNano", 0) or 0)), _attribute_list_json(e.get("attributes"))]
            for e in span.get("events") or ()
        ],
        "links": [
            [_hex_id(link.get("traceId")), _hex_id(link.get("spanId")), _attribute_list_json(link.get("attributes"))]
            for link in span.get("links") or ()
        ],
        "status": [int(status.get("code", 0) or 0), str(status.get("message", "") or "")],
    }


def otlp_body(
    span: Mapping[str, Any], resource_attributes: Iterable[Mapping[str, Any]] | None, scope: Mapping[str, Any] | None
) -> bytes:
    """The canonical bytes of one OTLP/JSON span."""
    return encode(otlp_document(span, resource_attributes, scope))


# Back to OTLP/JSON ----------------------------------------------------------------------------


def _any_value(typed: Sequence[Any]) -> dict[str, Any]:
    tag, value = typed[0], typed[1]
    if tag == "s":
        return {"stringValue": value}
    if tag == "b":
        return {"boolValue": value}
    if tag == "i":
        return {"intValue": value}
    if tag == "d":
        number = float(value)
        # proto3's JSON mapping writes NaN and the infinities as strings; a bare NaN is not JSON.
        return {"doubleValue": number if math.isfinite(number) else _NON_FINITE[value]}
    if tag == "x":
        return {"bytesValue": value}
    if tag == "a":
        return {"arrayValue": {"values": [_any_value(item) for item in value]}}
    if tag == "k":
        return {"kvlistValue": {"values": otlp_attributes(value)}}
    return {}


def otlp_attributes(pairs: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """Canonical ``[key, typed]`` pairs as an OTLP/JSON attribute list."""
    return [{"key": key, "value": _any_value(typed)} for key, typed in pairs]


def python_value(typed: Sequence[Any]) -> Any:
    """A canonical typed value as the Python value an SDK attribute would hold."""
    tag, value = typed[0], typed[1]
    if tag == "i":
        return int(value)
    if tag == "x":
        return base64.b64decode(value)
    if tag == "d":
        return float(value)
    if tag == "a":
        return tuple(python_value(item) for item in value)
    if tag == "k":
        return {key: python_value(item) for key, item in value}
    return value


def otlp_span(document: Mapping[str, Any], extra_attributes: Iterable[Sequence[Any]] = ()) -> dict[str, Any]:
    """A canonical document back as an OTLP/JSON span, with ``extra_attributes`` (the seal) appended."""
    span: dict[str, Any] = {
        "traceId": document["traceId"],
        "spanId": document["spanId"],
        "name": document["name"],
        "kind": document["kind"],
        "startTimeUnixNano": document["start"],
        "endTimeUnixNano": document["end"],
        "attributes": otlp_attributes([*document["attributes"], *extra_attributes]),
        "status": {},
    }
    if document["parentSpanId"]:
        span["parentSpanId"] = document["parentSpanId"]
    if document["events"]:
        span["events"] = [
            {"name": name, "timeUnixNano": time, "attributes": otlp_attributes(attrs)}
            for name, time, attrs in document["events"]
        ]
    if document["links"]:
        span["links"] = [
            {"traceId": trace_id, "spanId": span_id, "attributes": otlp_attributes(attrs)}
            for trace_id, span_id, attrs in document["links"]
        ]
    code, message = document["status"]
    if code:
        span["status"]["code"] = code
    if message:
        span["status"]["message"] = message
    return span
