"""``otel-llm-audit demo``: a scripted app, through the real ``openai`` SDK, against a fake model.

No network and no API key: a loopback server speaks the OpenAI and Anthropic wire formats.
The app runs a chat that triggers a tool call, sends the tool result back for a streamed
answer, embeds a note, and has an Anthropic model summarise it, all inside one
``audit_context``. Then, when LangGraph is installed, a small agent workflow runs
(:mod:`otel_llm_audit.demo.ward_workflow`): a supervisor delegates to a pharmacist sub-agent
that retrieves leaflets and calls a tool, and the workflow pauses for a physician whose
later request resumes it. The prompt carries made-up personal data (a record number, a phone
number, an e-mail address), so the default content mode shows what masking leaves of it.

Everything is written where a real deployment writes it: sealed (with a demo HMAC key) into a
local audit store, and forwarded from there to an OTLP JSON file, as it would be to a
collector. Its policy and human-review events are also written as log records to a file beside
it. With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set (the ``docker compose`` stack sets it to the
collector), spans, metrics and log records also go there over OTLP. The demo then prints the
traces as trees and the workflow as numbered steps, and
ends by running, on what it recorded, the commands an incident responder would type:
``find``, ``cost``, ``show`` and a ``verify`` of both the store and the forwarded copy.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
from pathlib import Path
from typing import Any

from rich.console import Console

import otel_llm_audit
from otel_llm_audit import semconv
from otel_llm_audit.bootstrap import log_exporters_from_env, metric_readers_from_env, span_exporters_from_env
from otel_llm_audit.cli.sources import CHECKPOINT_SPAN_NAME, open_source
from otel_llm_audit.cli.steps import render_steps
from otel_llm_audit.cli.tree import render_traces
from otel_llm_audit.config import Settings
from otel_llm_audit.delivery.otlp_json import OtlpJsonFileLogExporter, OtlpJsonFileSpanExporter
from otel_llm_audit.demo.fake_server import FakeModelServer
from otel_llm_audit.processing.budget_config import Budget, PolicyConfig

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def demo_store_for(output: str) -> tuple[str, str]:
    """The demo's audit store and seal key, beside its OTLP JSON file."""
    directory = os.path.dirname(output) or "."
    return os.path.join(directory, "demo-audit.db"), os.path.join(directory, "demo-seal.key")


#: The demo's budget: a tiny daily limit for the clinical team, so that its thresholds fire
#: during the demo (50 % at the second chat call, 80 % and 100 % at the Anthropic call).
DEMO_BUDGET = Budget(name="clinical-ai-daily", scope={"team": "clinical-ai"}, period="day", limit_usd=0.00005)


def demo_logs_for(output: str) -> str:
    """The demo's audit log records (OTLP JSON lines), beside its OTLP JSON file."""
    return os.path.join(os.path.dirname(output) or ".", "demo-logs.jsonl")


def _otlp_endpoint_set() -> bool:
    return any(os.environ.get(name) for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def run_demo(output: str, content: str, console: Console) -> int:
    """Run the scripted app into a fresh store (forwarded to ``output``), print it, query and verify it."""
    try:
        import openai
    except ImportError:
        console.print("[red]The demo drives the real openai SDK: pip install 'otel-llm-audit[openai]'[/red]")
        return 2
    store, key = demo_store_for(output)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    logs = demo_logs_for(output)
    ledger = os.path.join(os.path.dirname(output) or ".", "demo-budgets.db")
    for stale in (output, logs, store, store + "-wal", store + "-shm", ledger, ledger + "-wal", ledger + "-shm"):
        if os.path.exists(stale):
            os.remove(stale)
    if not os.path.exists(key):  # a demo secret: in production the key lives outside the application's reach
        with open(key, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
    span_exporters: list[Any] = [OtlpJsonFileSpanExporter(output)]
    log_exporters: list[Any] = [OtlpJsonFileLogExporter(logs)]
    metric_readers: list[Any] = []
    if _otlp_endpoint_set():  # e.g. the compose stack's collector: the standard variables say where
        env_settings = Settings.from_env()
        span_exporters += span_exporters_from_env(env_settings)
        log_exporters += log_exporters_from_env(env_settings)
        metric_readers = metric_readers_from_env(env_settings)
        where = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "the configured endpoints"
        console.print(f"Also sending over OTLP to {where}.")
    pipeline = otel_llm_audit.configure(
        span_exporters=span_exporters,
        metric_readers=metric_readers,
        log_exporters=log_exporters,
        content=content,
        store=store,
        seal_key_file=key,
        policy=PolicyConfig(budgets=(DEMO_BUDGET,)),
        budget_ledger=ledger,
    )
    tracer = pipeline.tracer_provider.get_tracer("discharge_assistant")
    with FakeModelServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-demo-not-a-real-key", max_retries=0)
        with (
            otel_llm_audit.audit_context(
                user_id="nurse-4711",
                session_id="ward-7-shift-3",
                actor_type="human",
                auth_method="oauth2",
                tenant_id="st-mary-hospital",
                team="clinical-ai",
                application="discharge-assistant",
            ),
            tracer.start_as_current_span("handle discharge question"),
        ):
            _scripted_app(client, console, server.anthropic_base_url)
        workflow_ran = _agent_workflow(client, console)
    pipeline.force_flush()
    pipeline.shutdown()
    source = open_source(store, progress=False)
    try:
        spans = [s for s in source.all_spans() if s.name != CHECKPOINT_SPAN_NAME]
    finally:
        source.close()
    console.print()
    render_traces(spans, console)
    if workflow_ran:
        console.print("\nThe agent workflow, step by step (`otel-llm-audit show TRACE_ID --steps`):")
        workflow = [s for s in spans if s.attributes.get(semconv.GEN_AI_WORKFLOW_NAME) == "ward_assistant"]
        if workflow:
            render_steps(spans, console, trace_id=min(workflow, key=lambda s: s.start_ns).trace_id)
    console.print(
        f"\n{len(spans)} spans sealed into the audit store [bold]{store}[/bold] (key {key}) and forwarded to "
        f"[bold]{output}[/bold] (OTLP JSON; content mode {content}); policy and review events also "
        f"as log records in [bold]{logs}[/bold]."
    )
    root = min((s for s in spans if s.parent_span_id is None), key=lambda s: s.start_ns)
    return _responder_commands(console, store, key, output, root.trace_id)


def _responder_commands(console: Console, store: str, key: str, output: str, trace_id: str) -> int:
    """What an incident responder would type next, run on what the demo recorded."""
    from otel_llm_audit.cli import main

    console.rule("Reconstructing it from the command line")
    commands = [
        ["find", "--source", store, "--user", "nurse-4711"],
        ["cost", "--source", store, "--by", "team", "--by", "model"],
        ["show", trace_id, "--source", store],
        ["verify", store, "--key", key],
        ["verify", output, "--key", key],
    ]
    failed = 0
    for argv in commands:
        console.print(f"\n[bold]$ otel-llm-audit {shlex.join(argv)}[/bold]")
        status = main(argv)
        if argv[0] == "verify" and status != 0:
            failed += 1
    return 1 if failed else 0


def _scripted_app(client: Any, console: Console, anthropic_base_url: str) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You help ward staff prepare discharge notes."},
        {
            "role": "user",
            "content": "Is it warm enough in Paris for the transfer of patient MRN: 40417733 tomorrow? "
            "Her daughter asks to be called on +1 415 555 0143 or mailed at claire.martin@example.org.",
        },
    ]
    first = client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL], temperature=0.2, seed=7
    )
    call = first.choices[0].message.tool_calls[0]
    console.print(f"model asked for tool [bold]{call.function.name}[/bold]({call.function.arguments})")
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    weather = {"city": json.loads(call.function.arguments)["city"], "celsius": 18, "sky": "sunny"}
    messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(weather)})
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    answer = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    console.print(f"streamed answer: [bold]{answer}[/bold]")
    client.embeddings.create(model="text-embedding-3-small", input=answer)
    _anthropic_summary(anthropic_base_url, answer, console)


def _agent_workflow(client: Any, console: Console) -> bool:
    """The LangGraph part: a supervisor, a sub-agent, a tool, a retrieval, a pause for a physician."""
    try:
        import langgraph  # noqa: F401

        from otel_llm_audit.demo.ward_workflow import run_ward_workflow
    except ImportError:
        console.print("[dim](langgraph not installed: the demo's agent workflow is skipped)[/dim]")
        return False
    run_ward_workflow(client, lambda line: console.print(line, markup=False))
    return True


def _anthropic_summary(base_url: str, answer: str, console: Console) -> None:
    """A second provider in the same trace: the note summarised by an Anthropic model."""
    try:
        import anthropic
    except ImportError:
        console.print("[dim](anthropic not installed: the demo's second provider is skipped)[/dim]")
        return
    with anthropic.Anthropic(base_url=base_url, api_key="sk-ant-demo-not-a-real-key", max_retries=0) as claude:
        note = claude.messages.create(
            model="claude-haiku-4-5",
            max_tokens=200,
            system="You write one-line discharge notes.",
            messages=[{"role": "user", "content": f"Summarise for the discharge note: {answer}"}],
        )
    summary = "".join(getattr(block, "text", "") for block in note.content)
    console.print(f"anthropic summary: [bold]{summary}[/bold]")
