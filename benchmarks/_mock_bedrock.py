"""Canned Bedrock Runtime traffic for the instruction-count benchmark: no network, no server.

A real ``boto3`` client (``bedrock-runtime``, explicit credentials and region) runs its whole
stack per call: parameter validation, the REST-JSON serializer, endpoint resolution, SigV4
signing, the retry handler, then the response parser and, for ConverseStream, the event-stream
decoder (prelude and message CRC32s, headers, JSON payloads). Only the socket is replaced: a
``before-send`` handler returns an ``AWSResponse`` over pre-encoded bytes, so
``Endpoint._send`` (urllib3) never runs. The event-stream frames are encoded once at import by
the demo server's encoder (``otel_llm_audit.demo.fake_server._converse_frame``), one read per
frame, as a live stream arrives. Prompts, answer and markers are ``_mock``'s.

Scenarios (a ``Converse`` model id; system + user message; answer of ~600 characters):

* ``converse``: ``client.converse(...)``, one JSON answer with usage and metrics;
* ``stream``: ``client.converse_stream(...)``, consumed to the end: ``messageStart``,
  20 ``contentBlockDelta`` text deltas, ``contentBlockStop``, ``messageStop``, ``metadata``
  (usage, metrics); the caller iterates 24 events.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from _mock import ANSWER_TEXT, SYSTEM_PROMPT, USER_PROMPT
from _mock_anthropic import _split

MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
REGION = "us-east-1"

#: Text deltas in the stream.
STREAM_TEXT_DELTAS = 20
#: Events the caller iterates: messageStart, the deltas, contentBlockStop, messageStop, metadata.
STREAM_TOTAL_CHUNKS = STREAM_TEXT_DELTAS + 4

MARKERS: dict[str, tuple[str, ...]] = {
    "converse": ("QX7-PELICAN", "zebra-quartz"),
    "stream": ("QX7-PELICAN", "zebra-quartz"),
}
SCENARIOS = ("converse", "stream")
STREAMING = {"stream"}

USAGE = {"inputTokens": 142, "outputTokens": 131, "totalTokens": 273}
METRICS = {"latencyMs": 812}

CONVERSE_BODY = json.dumps(
    {
        "output": {"message": {"role": "assistant", "content": [{"text": ANSWER_TEXT}]}},
        "stopReason": "end_turn",
        "usage": USAGE,
        "metrics": METRICS,
    }
).encode()


def _stream_frames() -> list[bytes]:
    from otel_llm_audit.demo.fake_server import _converse_frame

    texts = _split(ANSWER_TEXT, STREAM_TEXT_DELTAS)
    assert len(texts) == STREAM_TEXT_DELTAS, len(texts)
    events: list[dict[str, Any]] = [{"messageStart": {"role": "assistant"}}]
    events += [{"contentBlockDelta": {"delta": {"text": t}, "contentBlockIndex": 0}} for t in texts]
    events += [
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {"messageStop": {"stopReason": "end_turn"}},
        {"metadata": {"usage": USAGE, "metrics": METRICS}},
    ]
    return [_converse_frame(event) for event in events]


STREAM_FRAMES = _stream_frames()

_JSON_HEADERS = {"content-type": "application/json", "x-amzn-requestid": "req-bench-0001"}
_STREAM_HEADERS = {"content-type": "application/vnd.amazon.eventstream", "x-amzn-requestid": "req-bench-0002"}


class _Raw:
    """What ``AWSResponse.raw`` needs to be: ``stream()`` (the body's reads) and ``close()``."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        return iter(self._pieces)

    def close(self) -> None:
        return None


def make_client(scenario: str) -> Any:
    """A real ``boto3`` Bedrock Runtime client whose sends are answered with the scenario's bytes."""
    import boto3
    from botocore.awsrequest import AWSResponse

    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")  # never look for credentials on the network
    client = boto3.client(
        "bedrock-runtime",
        region_name=REGION,
        aws_access_key_id="AKIABENCHNOTAREALKEY",
        aws_secret_access_key="bench-not-a-real-secret-key",
    )
    streaming = scenario in STREAMING
    pieces = STREAM_FRAMES if streaming else [CONVERSE_BODY]
    headers = _STREAM_HEADERS if streaming else _JSON_HEADERS

    def send(request: Any, **kwargs: Any) -> Any:
        return AWSResponse(request.url, 200, headers, _Raw(pieces))

    client.meta.events.register("before-send.bedrock-runtime", send)
    return client


def make_call(scenario: str) -> Callable[[], int]:
    """One complete call the way an application makes it; returns the events / messages the caller saw."""
    client = make_client(scenario)
    system = [{"text": SYSTEM_PROMPT}]
    messages = [{"role": "user", "content": [{"text": USER_PROMPT}]}]
    inference = {"maxTokens": 300, "temperature": 0.5}

    if scenario == "converse":
        converse = client.converse

        def call() -> int:
            result = converse(modelId=MODEL, system=system, messages=messages, inferenceConfig=inference)
            if "zebra-quartz" not in result["output"]["message"]["content"][0]["text"]:
                raise AssertionError("no answer text")
            return 1

    elif scenario == "stream":
        converse_stream = client.converse_stream

        def call() -> int:
            result = converse_stream(modelId=MODEL, system=system, messages=messages, inferenceConfig=inference)
            n = 0
            for _event in result["stream"]:
                n += 1
            return n

    else:
        raise ValueError(f"unknown scenario {scenario!r}")
    return call
