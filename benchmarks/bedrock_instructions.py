"""Instructions each OpenTelemetry instrumentation adds to a Bedrock Runtime (botocore) call, counted by callgrind.

    python benchmarks/bedrock_instructions.py                    # all configurations, ~7 minutes on 2 cores
    python benchmarks/bedrock_instructions.py --quick            # smoke run, ~3 minutes, writes nothing
    python benchmarks/bedrock_instructions.py --configs llm_audit --scenarios converse

The method and the code are ``openai_instructions.py``'s (``_instructions.main`` with the
provider below). What differs:

* the calls: ``_mock_bedrock`` (``converse`` / ``converse_stream`` of a real ``boto3``
  ``bedrock-runtime`` client; a ``before-send`` handler answers with pre-encoded bytes, so
  serializer, SigV4 signing, parser and event-stream decoder all run; the stream has 20 text
  deltas, 24 events iterated by the caller);
* the configurations: ``_bedrock_worker`` (``none``, ``llm_audit``, ``llm_audit_masked`` in the
  llm_audit venv; ``otel_botocore``, ``openllmetry_bedrock``, ``openinference_bedrock`` in their
  own venvs: ``bash benchmarks/setup_envs.sh llm_audit otel_botocore openllmetry_bedrock
  openinference_bedrock``).

Per streamed event = (stream overhead - converse overhead) / 24 events.

Results: ``benchmarks/results/bedrock_instructions.{json,md}``.
"""

from __future__ import annotations

import sys

import _bedrock_worker
import _mock_bedrock
from _instructions import Provider, main

PROVIDER = Provider(
    name="bedrock",
    script="benchmarks/bedrock_instructions.py",
    call="Bedrock Runtime call through botocore",
    sdk_dist="botocore",
    mock=_mock_bedrock,
    worker=_bedrock_worker.SPEC,
    peer_labels={
        "otel_botocore": "official botocore 0.66b1",
        "openllmetry_bedrock": "OpenLLMetry bedrock 0.62.4",
        "openinference_bedrock": "OpenInference bedrock 0.1.61",
    },
    scenario_labels={
        "converse": "Converse, text answer",
        "stream": (
            f"ConverseStream, {_mock_bedrock.STREAM_TEXT_DELTAS} text deltas "
            f"({_mock_bedrock.STREAM_TOTAL_CHUNKS} events)"
        ),
    },
    chunk_base="converse",
    chunk_word="event",
    core_dists=("boto3", "botocore", "opentelemetry-sdk", "wrapt"),
    peer_dists=("opentelemetry-instrumentation-b", "openinference-instrumentation"),
    env_prefixes=("AWS_",),
    default_repeat="llm_audit:converse,llm_audit:stream",
    notes=(
        "The official botocore instrumentation writes the captured content (with "
        "`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`) as GenAI log records, not on the span, "
        "so that configuration also has a LoggerProvider with a batch processor and a counting exporter; "
        "its log records are counted above and its cost includes them. It also traces every other AWS "
        "call, which the others do not.",
    ),
)

if __name__ == "__main__":
    sys.exit(main(PROVIDER))
