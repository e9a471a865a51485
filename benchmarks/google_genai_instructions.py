"""Instructions each OpenTelemetry instrumentation adds to a Google Gen AI (google-genai) call, counted by callgrind.

    python benchmarks/google_genai_instructions.py               # all configurations, ~14 minutes on 2 cores
    python benchmarks/google_genai_instructions.py --quick       # smoke run, ~6 minutes, writes nothing
    python benchmarks/google_genai_instructions.py --configs llm_audit --scenarios generate

The method and the code are ``openai_instructions.py``'s (``_instructions.main`` with the
provider below). What differs:

* the calls: ``_mock_google_genai`` (``models.generate_content`` / ``generate_content_stream`` of
  the real ``google-genai`` 3.x SDK, Gemini API, over an ``httpx.MockTransport``; the stream has
  20 SSE chunks, each a response the caller iterates);
* the configurations: ``_google_genai_worker`` (``none``, ``llm_audit``, ``llm_audit_masked`` in
  the llm_audit venv; ``otel_google_genai``, ``openllmetry_google_genai``,
  ``openinference_google_genai`` in their own venvs: ``bash benchmarks/setup_envs.sh llm_audit
  otel_google_genai openllmetry_google_genai openinference_google_genai``).

Per streamed chunk = (stream overhead - generate overhead) / 20 chunks.

Results: ``benchmarks/results/google_genai_instructions.{json,md}``.
"""

from __future__ import annotations

import sys

import _google_genai_worker
import _mock_google_genai
from _instructions import Provider, main

PROVIDER = Provider(
    name="google_genai",
    script="benchmarks/google_genai_instructions.py",
    call="Google Gen AI call (Gemini API)",
    sdk_dist="google-genai",
    mock=_mock_google_genai,
    worker=_google_genai_worker.SPEC,
    peer_labels={
        "otel_google_genai": "official google-genai 1.3b0",
        "openllmetry_google_genai": "OpenLLMetry google-generativeai 0.62.4",
        "openinference_google_genai": "OpenInference google-genai 1.4.14",
    },
    scenario_labels={
        "generate": "generate_content, text answer",
        "stream": f"generate_content_stream, {_mock_google_genai.STREAM_TOTAL_CHUNKS} chunks",
    },
    chunk_base="generate",
    chunk_word="chunk",
    core_dists=("google-genai", "httpx", "pydantic", "pydantic-core", "opentelemetry-sdk", "wrapt"),
    peer_dists=("opentelemetry-instrumentation-google", "opentelemetry-util-genai", "openinference-instrumentation"),
    env_prefixes=("GOOGLE_", "GEMINI_"),
    default_repeat="llm_audit:generate,llm_audit:stream",
    notes=(
        "The official google-genai instrumentation 1.3b0 declares `google-genai>=1.32.0,<3`; it is "
        "instrumented here with `skip_dep_check=True` against google-genai 3.6.1 and verified like the others. "
        "OpenLLMetry's `opentelemetry-instrumentation-google-generativeai` instruments `google-genai` "
        "(`Models.generate_content[_stream]`), not the retired `google-generativeai` SDK.",
    ),
)

if __name__ == "__main__":
    sys.exit(main(PROVIDER))
