"""An application process for the store-and-forward fault tests; also the span producer they share.

Run as a script, it configures the audit pipeline the way users do (a store file, the OTLP
exporter from the ``OTEL_EXPORTER_OTLP_*`` environment) and then:

- ``produce STORE``: makes spans until it is killed (the SIGKILL test kills it mid-traffic);
- ``drain STORE``: delivers what the store's outbox holds, shuts down cleanly, prints a JSON
  summary and exits 0 (1 if the outbox did not empty in time).

Imported (as ``store_forward_child``), :func:`produce` makes the same spans in the tests' own process.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from opentelemetry import trace

#: A prompt of about a kilobyte: LLM spans carry content, and a backlog of them is not small.
PROMPT = "Summarise the discharge note for ward 7, bed 12, listing medication changes and follow-ups. " * 11
ANSWER = "Warfarin 5 mg paused; INR check on day 3; follow-up with cardiology in two weeks. " * 6
MODEL = "gpt-4o"
RESPONSE_MODEL = "gpt-4o-2024-08-06"


def produce(emitter: Any, tracer: trace.Tracer, index: int) -> None:
    """One span: even ``index`` an LLM chat call with content and usage, odd a plain application step."""
    from otel_llm_audit.records import LLMCall, Message, Usage

    if index % 2 == 0:
        record = LLMCall(
            operation="chat",
            provider="openai",
            request_model=MODEL,
            server_address="127.0.0.1",
            server_port=8000,
            # The same text object each time, as a resent conversation history is: the emitter
            # remembers the JSON of message texts by identity (a bounded cache of 4 M characters
            # that is not the subject here), so fresh texts would grow memory for a reason of its own.
            input_messages=[Message("user", [{"type": "text", "content": PROMPT}])],
        )
        call = emitter.start_llm_call(record)
        record.response_id = f"chatcmpl-{index}"
        record.response_model = RESPONSE_MODEL
        record.finish_reasons = ["stop"]
        record.output_messages = [Message("assistant", [{"type": "text", "content": ANSWER}], finish_reason="stop")]
        record.usage = Usage(input_tokens=210, output_tokens=48)
        if call is not None:
            call.end()
        return
    with tracer.start_as_current_span("app.step", attributes={"app.step.index": index, "app.ward": 7}):
        pass


def _pipeline(store: str) -> Any:
    import otel_llm_audit

    return otel_llm_audit.configure(
        store=store, instrument=False, set_global=False, metric_readers=[], content="raw", checkpoint_interval=3600
    )


def _emitter(pipeline: Any) -> Any:
    from otel_llm_audit.emitter.spans import Emitter

    return Emitter("otel_llm_audit.test", pipeline.tracer_provider)


def run_producer(store: str) -> None:
    """About 500 spans a second, until killed."""
    pipeline = _pipeline(store)
    emitter = _emitter(pipeline)
    tracer = pipeline.tracer_provider.get_tracer("app")
    index = 0
    print("ready", flush=True)
    while True:
        for _ in range(25):
            produce(emitter, tracer, index)
            index += 1
        time.sleep(0.05)


def run_drain(store: str, timeout_s: float = 60.0) -> int:
    """Deliver the outbox left by an earlier run, then shut down cleanly."""
    pipeline = _pipeline(store)
    audit_store = pipeline.store.store
    deadline = time.monotonic() + timeout_s
    while audit_store.pending() and time.monotonic() < deadline:
        pipeline.force_flush(5_000)
    left_before_shutdown = audit_store.pending()
    pipeline.shutdown()
    summary = {"pending_before_shutdown": left_before_shutdown, "pending_after_shutdown": audit_store.pending()}
    print(json.dumps(summary), flush=True)
    return 0 if summary["pending_after_shutdown"] == 0 else 1


if __name__ == "__main__":
    mode, store_path = sys.argv[1], sys.argv[2]
    if mode == "produce":
        run_producer(store_path)
    elif mode == "drain":
        sys.exit(run_drain(store_path))
    else:
        sys.exit(f"unknown mode {mode!r}")
