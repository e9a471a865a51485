"""Instructions each OpenTelemetry instrumentation adds to an Anthropic Messages call, counted by callgrind.

    python benchmarks/anthropic_instructions.py                  # all configurations, ~25 minutes on 2 cores
    python benchmarks/anthropic_instructions.py --configs llm_audit --scenarios messages_text --repeat ''
    python benchmarks/anthropic_instructions.py --quick         # smoke run, ~12 minutes (2 with --configs llm_audit)

The Anthropic counterpart of ``openai_instructions.py``, with the same method and the same code
(``_instructions.main`` with the provider below; see ``_instructions.py``). What differs:

* the calls: ``_mock_anthropic`` (``messages.create`` of the real ``anthropic`` 2.x SDK over an
  ``httpx2.MockTransport``: a text answer, two ``tool_use`` blocks, a stream of 23 text deltas,
  28 events iterated by the caller);
* the configurations and their verification: ``_anthropic_worker`` (``none``, ``none_sdk_off``,
  ``llm_audit``, ``llm_audit_masked``, ``anthropic_sdk``, and the peers
  ``openllmetry_anthropic`` / ``openinference_anthropic``, each also as ``<peer>_sdk_off``, in
  their own venvs made by ``bash benchmarks/setup_envs.sh openllmetry_anthropic openinference_anthropic``).

Per streamed chunk = (stream overhead - text overhead) / 28 events. Spans per call, by scope, are
reported for every configuration: the SDK traces itself when a tracer provider is set, so the
peers export two spans per call (theirs and the SDK's), ours one.

Results: ``benchmarks/results/anthropic_instructions.{json,md}``.
"""

from __future__ import annotations

import sys

import _anthropic_worker
import _mock_anthropic
from _instructions import Provider, main

PROVIDER = Provider(
    name="anthropic",
    script="benchmarks/anthropic_instructions.py",
    call="Anthropic Messages call",
    sdk_dist="anthropic",
    mock=_mock_anthropic,
    worker=_anthropic_worker.SPEC,
    peer_labels={
        "none_sdk_off": "uninstrumented, ANTHROPIC_OPEN_TELEMETRY=false",
        "anthropic_sdk": "anthropic SDK's own span (content mode)",
        "openllmetry_anthropic": "OpenLLMetry anthropic 0.62.4",
        "openllmetry_anthropic_sdk_off": "OpenLLMetry anthropic 0.62.4, SDK span off",
        "openinference_anthropic": "OpenInference anthropic 3.1.0",
        "openinference_anthropic_sdk_off": "OpenInference anthropic 3.1.0, SDK span off",
    },
    scenario_labels={
        "messages_text": "messages, text answer",
        "messages_tools": "messages, 2 tool_use blocks",
        "stream": (
            f"stream, {_mock_anthropic.STREAM_TEXT_DELTAS} text deltas ({_mock_anthropic.STREAM_TOTAL_CHUNKS} events)"
        ),
    },
    chunk_base="messages_text",
    chunk_word="event",
    core_dists=("anthropic", "httpx2", "pydantic", "pydantic-core", "opentelemetry-sdk", "wrapt"),
    peer_dists=("opentelemetry-instrumentation-anthropic", "openinference-instrumentation"),
    env_prefixes=("ANTHROPIC_",),
    default_repeat="llm_audit:messages_text,llm_audit:stream",
)

if __name__ == "__main__":
    sys.exit(main(PROVIDER))
