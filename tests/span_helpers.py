"""Assertion helpers shared by the provider tests (imported as ``span_helpers``: ``tests/`` is on the path)."""

from __future__ import annotations

import json
from typing import Any

from otel_llm_audit import semconv


def policy_events(span: Any) -> list[dict[str, Any]]:
    """The span's ``llm_audit.policy`` events as plain dicts, details parsed."""
    out = []
    for event in span.events:
        if event.name != semconv.EVENT_LLM_AUDIT_POLICY:
            continue
        attrs = dict(event.attributes)
        if semconv.LLM_AUDIT_POLICY_DETAILS in attrs:
            attrs[semconv.LLM_AUDIT_POLICY_DETAILS] = json.loads(attrs[semconv.LLM_AUDIT_POLICY_DETAILS])
        out.append(attrs)
    return out
