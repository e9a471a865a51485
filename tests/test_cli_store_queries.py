"""``show``, ``find``, ``cost`` and ``export`` over a real audit store, and over its OTLP JSON export.

The store is recorded the way an application records it: ``configure(store=...)`` with masking
on, the real ``openai`` SDK against the loopback fake model, identity from ``audit_context``.
Three requests: a nurse's discharge question (two chat calls with a tool call between, a
memory read, a delegation, a human review and a policy event; masking also records a policy
event on each call whose prompt held a phone number), an analyst's invoice run (a priced call
and a call that fails with HTTP 500), and an auditor's nightly review at a fixed time in January 2021.
Every query is asked of the store (SQL) and of the exported file (a scan), with the same answer.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from rich.console import Console

import otel_llm_audit
from otel_llm_audit import semconv
from otel_llm_audit.cli import main
from otel_llm_audit.cli.file_source import FileSource
from otel_llm_audit.cli.layout import share
from otel_llm_audit.cli.otlp_reader import read_spans
from otel_llm_audit.cli.sources import TraceSummary, facts_of
from otel_llm_audit.cli.store_source import TRACES_WITH_PREFIX, StoreSource
from otel_llm_audit.cli.timespec import parse_time, utc_text
from otel_llm_audit.config import set_settings
from otel_llm_audit.delivery.store import INDEX_COLUMNS, AuditStore
from otel_llm_audit.delivery.store_writer import StoreWriter
from otel_llm_audit.demo.fake_server import FakeModelServer
from otel_llm_audit.processing.canonical import otlp_body

openai = pytest.importorskip("openai")

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
NURSE = {
    "user_id": "nurse-4711",
    "session_id": "ward-7-shift-3",
    "actor_type": "human",
    "auth_method": "oauth2",
    "tenant_id": "st-mary",
    "team": "clinical-ai",
    "application": "discharge-assistant",
}
ANALYST = {
    "user_id": "analyst-17",
    "session_id": "audit-2",
    "actor_type": "service",
    "auth_method": "api_key",
    "tenant_id": "st-mary",
    "team": "finance-ai",
    "application": "billing-bot",
}
MINI = "gpt-4o-mini-2026-01-01"  # the fake model answers with a dated snapshot name
FOUR_O = "gpt-4o-2026-01-01"


def _ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()) * 1_000_000_000


@dataclass(frozen=True)
class Recorded:
    store: Path
    file: Path
    nurse_trace: str
    analyst_trace: str
    auditor_trace: str
    #: A moment after the nurse's request and before the analyst's.
    between_ns: int


def _record(store: Path) -> tuple[str, str, str, int]:
    from otel_llm_audit.instrumentation.openai import OpenAIInstrumentor

    pipeline = otel_llm_audit.configure(
        span_exporters=[],
        metric_readers=[],
        tracer_provider=TracerProvider(),
        set_global=False,
        instrument=False,
        store=str(store),
        content="masked",
        checkpoint_interval=3600,
    )
    tracer = pipeline.tracer_provider.get_tracer("clinic_app")
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=pipeline.tracer_provider)
    patch = pytest.MonkeyPatch()
    # the public API's own spans (memory_operation) go to this pipeline, not to the global provider
    patch.setattr("otel_llm_audit.api._tracer", lambda: pipeline.tracer_provider.get_tracer("otel_llm_audit.api"))
    try:
        with FakeModelServer() as server:
            client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
            with otel_llm_audit.audit_context(**NURSE), tracer.start_as_current_span("handle discharge question") as a:
                messages: list[dict[str, Any]] = [
                    {"role": "user", "content": "Warm enough in Paris for the transfer? Call +1 415 555 0143."}
                ]
                first = client.chat.completions.create(
                    model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL], temperature=0.2, max_tokens=300
                )
                call = first.choices[0].message.tool_calls[0]
                messages.append(first.choices[0].message.model_dump(exclude_none=True))
                messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"celsius": 18}'})
                with otel_llm_audit.memory_operation(
                    "search_memory", store_id="patient-notes", query="allergies"
                ) as op:
                    op.records = [{"id": "n1", "content": "penicillin"}]
                otel_llm_audit.record_delegation("triage", "pharmacist", kind="handoff")
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL], temperature=0.2, max_tokens=300
                )
                otel_llm_audit.record_policy_event("guardrail", "allowed", source="app", name="discharge_rules")
                otel_llm_audit.record_human_review("discharge note", "approved", reviewer="dr-4711")
            between = time.time_ns()
            with otel_llm_audit.audit_context(**ANALYST), tracer.start_as_current_span("reconcile invoices") as b:
                client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Sum March."}])
                with pytest.raises(openai.InternalServerError):
                    client.chat.completions.create(model="error-500", messages=[{"role": "user", "content": "again"}])
            client.close()
        with otel_llm_audit.audit_context(user_id="auditor-9", team="compliance", application="nightly-review"):
            root = tracer.start_span("nightly review", start_time=_ns("2021-01-05T10:00:00"))
            with trace.use_span(root):
                tracer.start_span("load cases", start_time=_ns("2021-01-05T10:00:01")).end(
                    end_time=_ns("2021-01-05T10:00:02")
                )
            root.end(end_time=_ns("2021-01-05T10:00:03"))
    finally:
        instrumentor.uninstrument()
        pipeline.shutdown()
        set_settings(None)
        patch.undo()
    ids = [f"{s.get_span_context().trace_id:032x}" for s in (a, b, root)]
    return ids[0], ids[1], ids[2], between


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    folder = tmp_path_factory.mktemp("audit")
    store = folder / "audit.db"
    nurse, analyst, auditor, between = _record(store)
    exported = folder / "export.jsonl"
    assert main(["export", "--source", str(store), "--output", str(exported)]) == 0
    return Recorded(store, exported, nurse, analyst, auditor, between)


@pytest.fixture(params=["store", "file"])
def source(request: pytest.FixtureRequest, recorded: Recorded) -> str:
    """Each query is asked of the store and of its export."""
    return str(recorded.store if request.param == "store" else recorded.file)


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def stored_spans(recorded: Recorded) -> list[Any]:
    source = StoreSource(str(recorded.store))
    try:
        return list(source.all_spans())
    finally:
        source.close()


def _rows(found: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (s["name"], s["user_id"], s["model"], s["input_tokens"], s["output_tokens"], s["policy"], s["error"])
        for s in found["spans"]
    ]


NURSE_ROWS = [
    ("chat gpt-4o-mini", "nurse-4711", MINI, 19, 10, True, False),
    ("search_memory", "nurse-4711", None, None, None, False, False),
    ("chat gpt-4o-mini", "nurse-4711", MINI, 16, 5, True, False),
    ("handle discharge question", "nurse-4711", None, None, None, True, False),
]
ANALYST_ROWS = [
    ("chat error-500", "analyst-17", "error-500", None, None, False, True),
    ("chat gpt-4o", "analyst-17", FOUR_O, 3, 7, False, False),
    ("reconcile invoices", "analyst-17", None, None, None, False, False),
]
AUDITOR_ROWS = [
    ("load cases", "auditor-9", None, None, None, False, False),
    ("nightly review", "auditor-9", None, None, None, False, False),
]


# The store's index and the scan's facts ---------------------------------------------------------


def test_a_span_read_back_has_the_facts_the_store_indexed(recorded: Recorded) -> None:
    store = AuditStore(recorded.store, readonly=True)
    columns = ", ".join(INDEX_COLUMNS)
    indexed = store.connection().execute(f"SELECT {columns} FROM records ORDER BY id").fetchall()
    spans = stored_spans(recorded)
    assert len(spans) == len(indexed) == 10  # 9 spans and the checkpoint written at shutdown
    for span, row in zip(spans, indexed, strict=True):
        facts = facts_of(span)
        expected = dict(zip(INDEX_COLUMNS, row, strict=True))
        expected["parent_span_id"] = expected["parent_span_id"] or None
        expected["policy"], expected["error"] = bool(expected["policy"]), bool(expected["error"])
        assert {**dataclasses.asdict(facts), "parent_span_id": span.parent_span_id} == expected
    store.close()


# find ----------------------------------------------------------------------------------------


def test_find_by_user_newest_first(capsys: pytest.CaptureFixture[str], recorded: Recorded, source: str) -> None:
    found = run_json(capsys, "find", "--user", "nurse-4711", "--source", source)
    assert found["total"] == 4
    assert _rows(found) == NURSE_ROWS
    assert {s["trace_id"] for s in found["spans"]} == {recorded.nurse_trace}
    newest = found["spans"][0]
    assert newest["session_id"] == "ward-7-shift-3" and newest["tenant_id"] == "st-mary"
    assert newest["team"] == "clinical-ai" and newest["application"] == "discharge-assistant"
    assert newest["provider"] == "openai" and newest["operation"] == "chat"
    assert newest["cost_usd"] == 8.85e-06
    assert newest["start"] == utc_text(newest["start_ns"], precise=True)
    starts = [s["start_ns"] for s in found["spans"]]
    assert starts == sorted(starts, reverse=True)


def test_find_by_session_team_tenant_app_and_model(capsys: pytest.CaptureFixture[str], source: str) -> None:
    assert _rows(run_json(capsys, "find", "--session", "audit-2", "--source", source)) == ANALYST_ROWS
    assert _rows(run_json(capsys, "find", "--team", "clinical-ai", "--source", source)) == NURSE_ROWS
    assert _rows(run_json(capsys, "find", "--app", "nightly-review", "--source", source)) == AUDITOR_ROWS
    assert _rows(run_json(capsys, "find", "--tenant", "st-mary", "--source", source)) == ANALYST_ROWS + NURSE_ROWS
    by_model = run_json(capsys, "find", "--model", MINI, "--source", source)
    assert _rows(by_model) == [NURSE_ROWS[0], NURSE_ROWS[2]]
    # a wildcard for every snapshot of a model; the request's model where no response named one
    assert _rows(run_json(capsys, "find", "--model", "gpt-4o*", "--source", source)) == [
        ANALYST_ROWS[1],
        NURSE_ROWS[0],
        NURSE_ROWS[2],
    ]
    assert _rows(run_json(capsys, "find", "--model", "error-500", "--source", source)) == [ANALYST_ROWS[0]]
    # conditions combine
    combined = run_json(capsys, "find", "--team", "clinical-ai", "--model", "gpt-4o-mini*", "--source", source)
    assert _rows(combined) == [NURSE_ROWS[0], NURSE_ROWS[2]]


def test_find_by_time_range(capsys: pytest.CaptureFixture[str], recorded: Recorded, source: str) -> None:
    january = run_json(capsys, "find", "--since", "2021-01-05", "--until", "2021-01-06", "--source", source)
    assert _rows(january) == AUDITOR_ROWS
    within = run_json(
        capsys, "find", "--since", "2021-01-05T10:00:01", "--until", "2021-01-05T10:00:02Z", "--source", source
    )
    assert _rows(within) == AUDITOR_ROWS[:1]
    boundary = utc_text(recorded.between_ns, precise=True)
    assert _rows(run_json(capsys, "find", "--since", boundary, "--source", source)) == ANALYST_ROWS
    before = run_json(capsys, "find", "--until", boundary, "--since", "2021-01-06", "--source", source)
    assert _rows(before) == NURSE_ROWS
    # relative: the last day holds today's two requests, not January's review
    assert run_json(capsys, "find", "--since", "24h", "--source", source)["total"] == 7
    code, _, err = run(capsys, "find", "--user", "nurse-4711", "--since", boundary, "--source", source)
    assert (code, err) == (1, "otel-llm-audit: no matching spans\n")


def test_find_policy_events_and_errors_only(capsys: pytest.CaptureFixture[str], source: str) -> None:
    # the app's own guardrail record, and masking's record on each call whose prompt held a phone number
    assert _rows(run_json(capsys, "find", "--policy", "--source", source)) == [
        NURSE_ROWS[0],
        NURSE_ROWS[2],
        NURSE_ROWS[3],
    ]
    assert _rows(run_json(capsys, "find", "--errors", "--source", source)) == [ANALYST_ROWS[0]]
    assert run(capsys, "find", "--errors", "--user", "nurse-4711", "--source", source)[0] == 1


def test_find_limit_keeps_the_newest_and_counts_all(capsys: pytest.CaptureFixture[str], source: str) -> None:
    found = run_json(capsys, "find", "--limit", "2", "--source", source)
    assert found["total"] == 9  # every span but the store's checkpoints
    assert _rows(found) == ANALYST_ROWS[:2]


def test_find_prints_a_table_and_the_count(capsys: pytest.CaptureFixture[str], recorded: Recorded, source: str) -> None:
    starts = [
        utc_text(s["start_ns"]) for s in run_json(capsys, "find", "--session", "audit-2", "--source", source)["spans"]
    ]
    code, out, _ = run(capsys, "find", "--session", "audit-2", "--limit", "2", "--source", source)
    assert code == 0
    trace_id = recorded.analyst_trace
    # 250 columns: the whole row fits, so whole ids and times with the year
    assert [line.rstrip() for line in out.splitlines()] == [
        "start (UTC)          trace id                          span            user        model"
        "              tokens in/out    cost USD  flags",
        "─" * 134,
        f"{starts[0]}  {trace_id}  chat error-500  analyst-17  error-500                                     error",
        f"{starts[1]}  {trace_id}  chat gpt-4o     analyst-17  {FOUR_O}            3/7  0.00007750",
        "3 matching spans (the newest 2; --limit to see more)",
    ]


def run_at(width: int, monkeypatch: pytest.MonkeyPatch, *argv: str) -> tuple[int, list[str]]:
    """The command's terminal output in a console ``width`` columns wide (trailing spaces dropped)."""
    console = Console(width=width, record=True, file=io.StringIO())
    monkeypatch.setattr("otel_llm_audit.cli.Console", lambda: console)
    code = main(list(argv))
    return code, [line.rstrip() for line in console.export_text().splitlines()]


def test_find_in_80_columns_shortens_ids_and_folds_text(
    capsys: pytest.CaptureFixture[str], recorded: Recorded, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = run_json(capsys, "find", "--session", "audit-2", "--source", source)["spans"]
    days, times = zip(*(utc_text(s["start_ns"], year=False).split(" ") for s in found), strict=True)
    code, lines = run_at(80, monkeypatch, "find", "--session", "audit-2", "--limit", "2", "--source", source)
    assert code == 0
    short = recorded.analyst_trace[:12]
    # the 12-digit prefix, the date over the time, the user whole, span and model folded (never squeezed to nothing)
    assert lines == [
        "start                                                  tokens        cost",
        "(UTC)     trace id      span     user        model     in/out         USD  flags",
        "─" * 80,
        f"{days[0]}     {short}  chat     analyst-17  error-50                      error",
        f"{times[0]}                error-5              0",
        "                        00",
        f"{days[1]}     {short}  chat     analyst-17  gpt-4o-2     3/7  0.00007750",
        f"{times[1]}                gpt-4o               026-01-0",
        "                                             1",
        "3 matching spans (the newest 2; --limit to see more)",
    ]
    # short values keep one line and the time its date when there is room
    code, lines = run_at(80, monkeypatch, "find", "--user", "auditor-9", "--source", source)
    auditor = recorded.auditor_trace[:12]
    assert lines == [
        "                                                             tokens  cost",
        "start (UTC)     trace id      span         user       model  in/out   USD  flags",
        "─" * 80,
        f"01-05 10:00:01  {auditor}  load cases   auditor-9",
        f"01-05 10:00:00  {auditor}  nightly      auditor-9",
        "                              review",
        "2 matching spans",
    ]
    # the prefix is what `show` takes
    code, lines = run_at(200, monkeypatch, "show", short, "--source", source)
    assert code == 0 and lines[0].startswith(f"trace {recorded.analyst_trace} ")


def test_narrow_columns_share_the_room_short_values_first() -> None:
    assert share(60, [14, 10, 17], 7) == [14, 10, 17]  # room for all
    assert share(24, [14, 10, 17], 7) == [7, 10, 7]  # the user id whole, the others folded at the floor
    assert share(23, [14, 10, 17], 7) == [8, 7, 8]  # no room to keep it whole: equal parts
    assert share(30, [4, 4, 30], 7) == [4, 4, 22]  # narrow columns take only what they want
    assert share(12, [14, 10, 17], 7) == [4, 4, 4]  # too little room for the floor: equal parts of it
    assert sum(share(33, [20, 20, 20], 7)) == 33


def test_find_on_a_wide_terminal_shows_whole_ids_and_json_always_does(
    capsys: pytest.CaptureFixture[str], recorded: Recorded, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, lines = run_at(200, monkeypatch, "find", "--user", "auditor-9", "--source", source)
    assert code == 0
    assert lines == [
        "start (UTC)          trace id                          span            user       model"
        "  tokens in/out  cost USD  flags",
        "─" * 119,
        f"2021-01-05 10:00:01  {recorded.auditor_trace}  load cases      auditor-9",
        f"2021-01-05 10:00:00  {recorded.auditor_trace}  nightly review  auditor-9",
        "2 matching spans",
    ]
    code, _ = run_at(80, monkeypatch, "find", "--user", "auditor-9", "--source", source, "--json")
    found = json.loads(capsys.readouterr().out)
    assert [s["trace_id"] for s in found["spans"]] == [recorded.auditor_trace] * 2


def test_find_with_no_match_exits_1(capsys: pytest.CaptureFixture[str], source: str) -> None:
    code, out, err = run(capsys, "find", "--user", "nobody", "--source", source)
    assert (code, out, err) == (1, "", "otel-llm-audit: no matching spans\n")


# cost ----------------------------------------------------------------------------------------


def _costs_by(recorded: Recorded, attribute: str) -> dict[str, float]:
    """Sum of ``llm_audit.cost.usd`` per value of ``attribute``, from the spans themselves."""
    sums: dict[str, list[float]] = {}
    for span in stored_spans(recorded):
        if semconv.LLM_AUDIT_COST_USD in span.attributes:
            sums.setdefault(span.attributes[attribute], []).append(span.attributes[semconv.LLM_AUDIT_COST_USD])
    return {key: round(math.fsum(values), 9) for key, values in sums.items()}


def test_cost_by_team_model_and_user(capsys: pytest.CaptureFixture[str], recorded: Recorded, source: str) -> None:
    by_team = run_json(capsys, "cost", "--by", "team", "--source", source)
    team_costs = _costs_by(recorded, semconv.LLM_AUDIT_TEAM)
    assert team_costs == {"finance-ai": 7.75e-05, "clinical-ai": 1.425e-05}
    assert by_team == {
        "by": ["team"],
        "groups": [
            {
                "team": "finance-ai",
                "calls": 1,
                "input_tokens": 3,
                "output_tokens": 7,
                "cost_usd": team_costs["finance-ai"],
                "unpriced": 0,
            },
            {
                "team": "clinical-ai",
                "calls": 2,
                "input_tokens": 35,
                "output_tokens": 15,
                "cost_usd": team_costs["clinical-ai"],
                "unpriced": 0,
            },
        ],
        "total": {"calls": 3, "input_tokens": 38, "output_tokens": 22, "cost_usd": 9.175e-05, "unpriced": 0},
    }
    by_model = run_json(capsys, "cost", "--by", "model", "--source", source)
    model_costs = _costs_by(recorded, semconv.GEN_AI_RESPONSE_MODEL)
    assert [(g["model"], g["calls"], g["cost_usd"]) for g in by_model["groups"]] == [
        (FOUR_O, 1, model_costs[FOUR_O]),
        (MINI, 2, model_costs[MINI]),
    ]
    by_user = run_json(capsys, "cost", "--by", "user", "--source", source)
    user_costs = _costs_by(recorded, semconv.USER_ID)
    assert [(g["user"], g["cost_usd"]) for g in by_user["groups"]] == [
        ("analyst-17", user_costs["analyst-17"]),
        ("nurse-4711", user_costs["nurse-4711"]),
    ]
    # the failed call carries no usage: it is not a call that cost anything
    assert by_user["total"]["calls"] == 3


def test_cost_two_levels_time_range_and_table(
    capsys: pytest.CaptureFixture[str], recorded: Recorded, source: str
) -> None:
    two = run_json(capsys, "cost", "--by", "tenant", "--by", "application", "--source", source)
    assert [(g["tenant"], g["application"], g["calls"]) for g in two["groups"]] == [
        ("st-mary", "billing-bot", 1),
        ("st-mary", "discharge-assistant", 2),
    ]
    since = utc_text(recorded.between_ns, precise=True)
    later = run_json(capsys, "cost", "--by", "model", "--since", since, "--source", source)
    assert [g["model"] for g in later["groups"]] == [FOUR_O]
    code, _, err = run(capsys, "cost", "--until", "2021-01-06", "--source", source)
    assert (code, err) == (1, "otel-llm-audit: no matching spans\n")
    code, out, _ = run(capsys, "cost", "--source", source)
    assert [line.rstrip() for line in out.splitlines()] == [
        "team         calls  input tokens  output tokens    cost USD",
        "─" * 59,
        "finance-ai       1             3              7  0.00007750",
        "clinical-ai      2            35             15  0.00001425",
        "─" * 59,
        "total            3            38             22  0.00009175",
    ]


def test_cost_in_a_narrow_terminal_folds_names_and_keeps_figures_whole(
    source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, lines = run_at(60, monkeypatch, "cost", "--by", "team", "--by", "model", "--source", source)
    assert code == 0
    assert lines == [
        "                                   input  output        cost",
        "team         model         calls  tokens  tokens         USD",
        "─" * 60,
        "finance-ai   gpt-4o-2026-      1       3       7  0.00007750",
        "             01-01",
        "clinical-ai  gpt-4o-mini-      2      35      15  0.00001425",
        "             2026-01-01",
        "─" * 60,
        "total                          3      38      22  0.00009175",
    ]


# show ----------------------------------------------------------------------------------------


def _tree_lines(out: str) -> list[str]:
    return [line.strip(" │├└─") for line in out.splitlines()]


def test_show_trace_id_from_the_store_prints_the_audit_facts(
    capsys: pytest.CaptureFixture[str], recorded: Recorded, source: str
) -> None:
    code, out, err = run(capsys, "show", recorded.nurse_trace, "--source", source)
    assert (code, err) == (0, "")
    lines = _tree_lines(out)
    assert lines[0].startswith(f"trace {recorded.nurse_trace} ") and lines[0].endswith(" · 4 spans")
    assert lines[1].startswith("handle discharge question ") and lines[1].endswith(" ms · clinic_app")
    who = (
        "who user.id=nurse-4711  session.id=ward-7-shift-3  llm_audit.actor.type=human  llm_audit.auth.method=oauth2"
        "  llm_audit.tenant.id=st-mary  llm_audit.team=clinical-ai  llm_audit.application=discharge-assistant"
    )
    assert lines.count(who) == 4
    for line in (
        "delegation triage -> pharmacist (handoff)",
        "policy guardrail allowed by app (discharge_rules)",
        "human review approved by dr-4711: discharge note",
        "call provider=openai  request.model=gpt-4o-mini  response.model=gpt-4o-mini-2026-01-01  "
        'response.id=chatcmpl-fake-1  finish_reasons=["tool_calls"]  server=127.0.0.1',
        "parameters temperature=0.2  max_tokens=300",
        "usage input_tokens=16  output_tokens=5  cache_read.input_tokens=0  reasoning.output_tokens=0  "
        "cost_usd=5.4e-06",
        "gen_ai.input.messages user: Warm enough in Paris for the transfer? Call <PHONE_NUMBER>.",
        'gen_ai.output.messages assistant: tool_call get_weather({"city": "Paris"})',
        "gen_ai.output.messages assistant: The weather in Paris is 18°C and sunny.",
        "gen_ai.tool.definitions tool get_weather",
        'masking status=masked  found={"PHONE_NUMBER":1}  policy=' + _policy_version(recorded),
        "policy pii masked by otel_llm_audit.masking (pii_masking)",
        "step memory.store.id=patient-notes  memory.record.count=1",
        "gen_ai.memory.query.text allergies",
        'gen_ai.memory.records [{"id":"n1","content":"penicillin"}]',
    ):
        assert line in lines, line
    assert sum(line.startswith("seal stream=") for line in lines) == 4
    assert "555 0143" not in out


def _policy_version(recorded: Recorded) -> str:
    (span,) = [s for s in stored_spans(recorded) if s.name == "search_memory"]
    return str(span.attributes[semconv.LLM_AUDIT_REDACTION_POLICY_VERSION])


def test_show_marks_the_failed_call(capsys: pytest.CaptureFixture[str], recorded: Recorded, source: str) -> None:
    code, out, _ = run(capsys, "show", recorded.analyst_trace, "--source", source)
    assert code == 0
    lines = _tree_lines(out)
    (label,) = [line for line in lines if line.startswith("chat error-500 ")]
    assert label.endswith("· otel_llm_audit.instrumentation.openai ERROR")
    assert "call provider=openai  request.model=error-500  server=127.0.0.1" in lines
    (failure,) = [line for line in lines if line.startswith("error ")]
    # the status message is the SDK's exception text (its wording differs between openai releases)
    assert failure.startswith("error error.type=openai.InternalServerError  Error code: 500 - ")
    assert "Fake error 500 scripted by model 'error-500'." in failure


def test_show_json_has_every_span_with_full_content(
    capsys: pytest.CaptureFixture[str], recorded: Recorded, source: str
) -> None:
    spans = run_json(capsys, "show", recorded.nurse_trace, "--source", source)
    assert [s["name"] for s in spans] == [
        "handle discharge question",
        "chat gpt-4o-mini",
        "search_memory",
        "chat gpt-4o-mini",
    ]  # in the order they started
    stored = {s.span_id: s for s in stored_spans(recorded)}
    for span in spans:
        original = stored[span["spanId"]]
        assert span["traceId"] == recorded.nurse_trace
        assert span["attributes"] == original.attributes
        assert span["startTimeUnixNano"] == str(original.start_ns)
        assert span["resource"]["service.name"] == original.resource["service.name"]
    root = spans[0]
    assert root["parentSpanId"] == "" and root["scope"] == "clinic_app"
    assert root["attributes"][semconv.USER_ID] == "nurse-4711"
    assert [e["name"] for e in root["events"]] == [
        "llm_audit.delegation",
        "llm_audit.policy",
        "llm_audit.human_review",
    ]
    assert root["events"][1]["attributes"] == {
        "llm_audit.policy.action": "allowed",
        "llm_audit.policy.category": "guardrail",
        "llm_audit.policy.name": "discharge_rules",
        "llm_audit.policy.source": "app",
        "llm_audit.policy.actor": "nurse-4711",
    }
    second = spans[3]
    messages = json.loads(second["attributes"][semconv.GEN_AI_INPUT_MESSAGES])
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[2]["parts"][0]["response"] == '{"celsius": 18}'  # in full, where the tree shortens
    assert second["attributes"][semconv.LLM_AUDIT_INTEGRITY_SEQUENCE] >= 0
    assert second["status"] == {"code": 0, "message": ""}


def test_show_steps_from_the_store(capsys: pytest.CaptureFixture[str], recorded: Recorded, source: str) -> None:
    steps = run_json(capsys, "show", recorded.nurse_trace, "--steps", "--source", source)
    assert [step["text"] for step in steps[0]["steps"]] == [
        "chat openai/gpt-4o-mini-2026-01-01 16->5 tokens",
        "policy pii masked by otel_llm_audit.masking (pii_masking)",
        "search_memory store=patient-notes records=1",
        "delegation triage -> pharmacist (handoff)",
        "chat openai/gpt-4o-mini-2026-01-01 19->10 tokens",
        "policy pii masked by otel_llm_audit.masking (pii_masking)",
        "policy guardrail allowed by app (discharge_rules)",
        "human review approved by dr-4711: discharge note",
    ]
    code, out, _ = run(capsys, "show", recorded.nurse_trace, "--steps", "--source", source)
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in out.splitlines() if line.startswith("│")]
    assert code == 0 and rows[0] == ["1", "", "chat openai/gpt-4o-mini-2026-01-01 16->5 tokens"]
    assert rows[-1] == ["8", "", "human review approved by dr-4711: discharge note"]


def test_show_unknown_trace_exits_1(capsys: pytest.CaptureFixture[str], source: str) -> None:
    code, out, err = run(capsys, "show", "0" * 31 + "1", "--source", source)
    assert (code, out, err) == (1, "", "otel-llm-audit: no matching spans\n")


def test_show_file_positional_still_reads_the_file(capsys: pytest.CaptureFixture[str], recorded: Recorded) -> None:
    code, out, _ = run(capsys, "show", str(recorded.file), "--trace", recorded.auditor_trace.upper())
    assert code == 0
    lines = _tree_lines(out)
    assert lines[0].startswith(f"trace {recorded.auditor_trace} 2021-01-05 10:00:00 UTC · 3000.0 ms · 2 spans")
    # a store named positionally is a source too; without a trace id it asks for one
    code, _, err = run(capsys, "show", str(recorded.store))
    assert (code, err) == (2, f"otel-llm-audit: name a trace: otel-llm-audit show TRACE_ID --source {recorded.store}\n")


# show by a prefix of the trace id ---------------------------------------------------------------

TRIAGE = "abcdef01" + "1" * 24
BILLING = "abcdef01" + "2" * 24
REVIEW = "abcdef02" + "f" * 24
#: Eleven traces sharing 8 digits: more than an ambiguous prefix lists.
CROWD = [f"12345678{i:024x}" for i in range(11)]


class _TraceIds(IdGenerator):
    """Hands out the given trace ids in turn (span ids at random): traces that share a prefix."""

    def __init__(self, trace_ids: list[str]) -> None:
        self._trace_ids = iter(trace_ids)
        self._random = RandomIdGenerator()

    def generate_trace_id(self) -> int:
        return int(next(self._trace_ids), 16)

    def generate_span_id(self) -> int:
        return self._random.generate_span_id()


@dataclass(frozen=True)
class Prefixed:
    store: Path
    file: Path


@pytest.fixture(scope="module")
def prefixed(tmp_path_factory: pytest.TempPathFactory) -> Prefixed:
    """A store (and its export) whose traces share id prefixes.

    ``triage``'s child is stored first and starts with it (the root is the span without a parent);
    ``billing``'s child starts a second before it (the trace starts with its earliest span).
    """
    folder = tmp_path_factory.mktemp("prefixes")
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=_TraceIds([TRIAGE, BILLING, REVIEW, *CROWD]))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("app")
    for name, child, at, child_at in (
        ("triage", "chat", "2021-01-05T10:00:00", "2021-01-05T10:00:00"),
        ("billing", "chat", "2021-01-05T11:00:00", "2021-01-05T10:59:59"),
        ("review", None, "2021-01-05T12:00:00", None),
        *((f"crowd {i}", None, f"2021-01-06T10:00:{i:02d}", None) for i in range(len(CROWD))),
    ):
        root = tracer.start_span(name, start_time=_ns(at))
        if child is not None and child_at is not None:
            with trace.use_span(root):
                tracer.start_span(child, start_time=_ns(child_at)).end(end_time=_ns(at) + 1000)
        root.end(end_time=_ns(at) + 2000)
    store = AuditStore(folder / "audit.db")
    writer = StoreWriter(store, resource=Resource.create({"service.name": "prefixes"}), checkpoint_interval=0)
    writer.export(exporter.get_finished_spans())
    writer.shutdown()
    store.close()
    provider.shutdown()
    exported = folder / "export.jsonl"
    assert main(["export", "--source", str(folder / "audit.db"), "--output", str(exported)]) == 0
    return Prefixed(folder / "audit.db", exported)


@pytest.fixture(params=["store", "file"])
def prefixed_source(request: pytest.FixtureRequest, prefixed: Prefixed) -> str:
    return str(prefixed.store if request.param == "store" else prefixed.file)


def test_show_takes_a_unique_prefix_of_the_trace_id(capsys: pytest.CaptureFixture[str], prefixed_source: str) -> None:
    review = run_json(capsys, "show", "abcdef02", "--source", prefixed_source)
    assert [(s["traceId"], s["name"]) for s in review] == [(REVIEW, "review")]
    # any case, any length from 8 digits on; the whole id too
    for given in ("ABCDEF011", TRIAGE[:20], TRIAGE, TRIAGE.upper()):
        triage = run_json(capsys, "show", given, "--source", prefixed_source)
        assert sorted(s["name"] for s in triage) == ["chat", "triage"], given
        assert {s["traceId"] for s in triage} == {TRIAGE}
    # the tree is headed by the whole id; --trace takes a prefix as well
    code, out, err = run(capsys, "show", "--trace", "abcdef012", "--source", prefixed_source)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == f"trace {BILLING} 2021-01-05 10:59:59 UTC · 1000.0 ms · 2 spans"
    # a prefix no trace has is "no match", as a whole unknown id is
    code, out, err = run(capsys, "show", "abcdef03", "--source", prefixed_source)
    assert (code, out, err) == (1, "", "otel-llm-audit: no matching spans\n")


def test_show_an_ambiguous_prefix_lists_the_traces_it_matches(
    capsys: pytest.CaptureFixture[str], prefixed_source: str
) -> None:
    code, out, err = run(capsys, "show", "abcdef01", "--source", prefixed_source)
    assert (code, out) == (2, "")
    assert err == (
        "otel-llm-audit: trace id abcdef01 is ambiguous: 2 traces start with it (give more digits):\n"
        f"  {TRIAGE}  2021-01-05 10:00:00  triage\n"
        f"  {BILLING}  2021-01-05 10:59:59  billing\n"
    )
    code, out, err = run(capsys, "show", "12345678", "--steps", "--source", prefixed_source)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "otel-llm-audit: trace id 12345678 is ambiguous: more than 10 traces start with it (give more digits); "
        "the first 10:",
        *(f"  {CROWD[i]}  2021-01-06 10:00:{i:02d}  crowd {i}" for i in range(10)),
    ]


def test_show_a_prefix_too_short_or_not_an_id_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], prefixed_source: str
) -> None:
    for argv, message in (
        (["abcdef0", "--source", prefixed_source], "a trace id prefix needs at least 8 hex digits: abcdef0"),
        ([prefixed_source, "--trace", "abc"], "a trace id prefix needs at least 8 hex digits: abc"),
        (["a" * 33, "--source", prefixed_source], f"not a trace id (8 to 32 hex digits): {'a' * 33}"),
        (["--trace", "abcdef0z", "--source", prefixed_source], "not a trace id (8 to 32 hex digits): abcdef0z"),
    ):
        code, out, err = run(capsys, "show", *argv)
        assert (code, out, err) == (2, "", f"otel-llm-audit: {message}\n"), argv


def test_the_store_answers_a_prefix_with_a_range_of_the_trace_index(prefixed: Prefixed) -> None:
    store = AuditStore(prefixed.store, readonly=True)
    try:
        rows = store.connection().execute("EXPLAIN QUERY PLAN " + TRACES_WITH_PREFIX, ("abcdef01", "abcdef01g", 11))
        plan = [row[3] for row in rows]
    finally:
        store.close()
    assert plan[0] == "SEARCH records USING INDEX records_trace (trace_id>? AND trace_id<?)"
    assert "SEARCH root USING INDEX records_trace (trace_id=?)" in plan
    assert not [step for step in plan if step.startswith("SCAN")]
    source = StoreSource(str(prefixed.store))
    try:
        assert source.traces_with_prefix("abcdef01", 1) == [TraceSummary(TRIAGE, _ns("2021-01-05T10:00:00"), "triage")]
    finally:
        source.close()


def test_a_file_answers_a_unique_prefix_in_one_scan(prefixed: Prefixed, monkeypatch: pytest.MonkeyPatch) -> None:
    scans: list[str] = []
    scan = FileSource.all_spans

    def counted(self: FileSource) -> Iterator[Any]:
        scans.append(self.path)
        return scan(self)

    monkeypatch.setattr(FileSource, "all_spans", counted)
    source = FileSource(str(prefixed.file), progress=False)
    assert source.traces_with_prefix("abcdef02", 11) == [TraceSummary(REVIEW, _ns("2021-01-05T12:00:00"), "review")]
    assert [span.name for span in source.trace(REVIEW)] == ["review"]
    assert len(scans) == 1
    # an ambiguous prefix keeps no spans: the trace is read again
    assert [m.trace_id for m in source.traces_with_prefix("abcdef01", 11)] == [TRIAGE, BILLING]
    assert sorted(span.name for span in source.trace(TRIAGE)) == ["chat", "triage"]
    assert len(scans) == 3


# export --------------------------------------------------------------------------------------


def test_export_round_trips_every_record_and_its_seal(recorded: Recorded) -> None:
    spans, bad = read_spans(recorded.file)
    assert bad == 0
    store = AuditStore(recorded.store, readonly=True)
    records = list(store.iter_records())
    assert len(spans) == len(records) == 10
    lines = [json.loads(line) for line in recorded.file.read_text(encoding="utf-8").splitlines()]
    exported = [
        (span, resource_spans["resource"].get("attributes"), scope_spans["scope"])
        for request in lines
        for resource_spans in request["resourceSpans"]
        for scope_spans in resource_spans["scopeSpans"]
        for span in scope_spans["spans"]
    ]
    by_id = {(span["traceId"], span["spanId"]): (span, resource, scope) for span, resource, scope in exported}
    for record in records:
        document = json.loads(record.body)
        span, resource, scope = by_id[(document["traceId"], document["spanId"])]
        assert otlp_body(span, resource, scope) == record.body
        seal = {a["key"]: a["value"] for a in span["attributes"] if a["key"].startswith("llm_audit.integrity.")}
        assert seal[semconv.LLM_AUDIT_INTEGRITY_HASH] == {"stringValue": record.hash}
        assert seal[semconv.LLM_AUDIT_INTEGRITY_SEQUENCE] == {"intValue": str(record.seq)}
    store.close()


def test_export_to_stdout_with_a_time_range(capsysbinary: pytest.CaptureFixture[bytes], recorded: Recorded) -> None:
    code = main(["export", "--source", str(recorded.store), "--since", "2021-01-05", "--until", "2021-01-06"])
    captured = capsysbinary.readouterr()
    assert code == 0
    assert captured.err == b"otel-llm-audit: exported 2 spans (1 request) to standard output\n"
    (line,) = captured.out.decode("utf-8").splitlines()
    names = [s["name"] for rs in json.loads(line)["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert names == ["load cases", "nightly review"]


def test_export_nothing_or_from_a_file(capsys: pytest.CaptureFixture[str], recorded: Recorded, tmp_path: Path) -> None:
    output = tmp_path / "none.jsonl"
    code, _, err = run(capsys, "export", "--source", str(recorded.store), "--until", "2020-01-01", "-o", str(output))
    assert (code, err, output.exists()) == (1, "otel-llm-audit: no matching spans\n", False)
    code, _, err = run(capsys, "export", "--source", str(recorded.file))
    assert (code, err) == (
        2,
        f"otel-llm-audit: export reads an audit store; {recorded.file} is OTLP JSON lines already\n",
    )


# the same answers from the store and from its export -----------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        ["find", "--user", "nurse-4711"],
        ["find", "--team", "finance-ai", "--errors"],
        ["find", "--policy", "--limit", "2"],
        ["find", "--since", "2021-01-01", "--until", "2021-02-01"],
        ["cost", "--by", "team", "--by", "model"],
        ["cost", "--by", "user"],
        ["cost", "--by", "application", "--since", "7d"],
    ],
)
def test_store_and_export_answer_alike(
    capsys: pytest.CaptureFixture[str], recorded: Recorded, query: list[str]
) -> None:
    from_store = run_json(capsys, *query, "--source", str(recorded.store))
    from_file = run_json(capsys, *query, "--source", str(recorded.file))
    assert from_store == from_file


def test_show_json_alike_from_store_and_export(capsys: pytest.CaptureFixture[str], recorded: Recorded) -> None:
    for trace_id in (recorded.nurse_trace, recorded.analyst_trace, recorded.auditor_trace):
        from_store = run_json(capsys, "show", trace_id, "--source", str(recorded.store))
        from_file = run_json(capsys, "show", trace_id, "--source", str(recorded.file))
        assert from_store == from_file


# the configured store, and errors --------------------------------------------------------------


def test_the_configured_store_is_the_default_source(
    capsys: pytest.CaptureFixture[str], recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_LLM_AUDIT_STORE", str(recorded.store))
    assert _rows(run_json(capsys, "find", "--session", "audit-2")) == ANALYST_ROWS
    code, out, _ = run(capsys, "show", recorded.auditor_trace)
    assert code == 0 and "nightly review" in out
    monkeypatch.setenv("OTEL_LLM_AUDIT_STORE", str(recorded.store.parent / "elsewhere.db"))
    code, _, err = run(capsys, "cost")
    assert (code, err) == (
        2,
        f"otel-llm-audit: no audit store at {recorded.store.parent / 'elsewhere.db'} (OTEL_LLM_AUDIT_STORE): "
        "name one with --source PATH\n",
    )
    monkeypatch.setenv("OTEL_LLM_AUDIT_STORE", "off")
    code, out, err = run(capsys, "find")
    assert (code, out, err) == (
        2,
        "",
        "otel-llm-audit: no audit store is configured (OTEL_LLM_AUDIT_STORE is 'off'): name one with --source PATH\n",
    )


def _not_a_store(tmp_path: Path) -> Path:
    path = tmp_path / "other.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE t (x)")
    connection.commit()
    connection.close()
    return path


def test_bad_sources_are_one_line_and_status_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00\x01binary\xff")
    folder = tmp_path / "folder"
    folder.mkdir()
    other = _not_a_store(tmp_path)
    cases = {
        str(tmp_path / "missing.db"): f"no such file: {tmp_path / 'missing.db'}",
        str(garbage): f"{garbage} is neither an audit store nor an OTLP JSON lines file",
        str(folder): f"{folder} is a directory, not an audit store or OTLP JSON lines file",
        str(other): f"'{other}' is not an audit store: no such table: meta",
    }
    for path, message in cases.items():
        for command in (["find"], ["cost"], ["show", "a" * 32], ["export"]):
            code, out, err = run(capsys, *command, "--source", path)
            assert (code, out, err) == (2, "", f"otel-llm-audit: {message}\n"), (command, path)


def test_an_unreadable_file_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import otel_llm_audit.cli.sources as sources

    locked = tmp_path / "locked.jsonl"
    locked.write_text("{}\n")

    def refuse(path: Any, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(sources, "open", refuse, raising=False)  # as if chmod 0 (root reads anything)
    code, out, err = run(capsys, "find", "--source", str(locked))
    assert (code, out, err) == (2, "", f"otel-llm-audit: cannot read {locked}: Permission denied\n")


def test_show_target_that_is_neither_a_file_nor_a_trace_id(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "show", "no-such-thing.jsonl")
    assert (code, err) == (
        2,
        "otel-llm-audit: no-such-thing.jsonl is neither a trace id (8 to 32 hex digits) nor an existing file\n",
    )


def test_a_file_with_unreadable_lines_is_read_around_them(
    capsys: pytest.CaptureFixture[str], recorded: Recorded, tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_bytes(recorded.file.read_bytes() + b"{not json\n")
    code, out, err = run(capsys, "find", "--user", "auditor-9", "--source", str(damaged), "--json")
    assert code == 0 and json.loads(out)["total"] == 2
    assert err == f"otel-llm-audit: 1 unreadable lines skipped in {damaged}\n"


def test_a_long_scan_shows_progress_on_stderr_and_answers_the_same(
    capsys: pytest.CaptureFixture[str], recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from rich.console import Console

    import otel_llm_audit.cli.progress as progress

    terminal = io.StringIO()
    monkeypatch.setattr(progress, "MIN_BYTES", 0)
    monkeypatch.setattr(progress, "stderr_console", lambda: Console(file=terminal, force_terminal=True, width=100))
    found = run_json(capsys, "find", "--user", "nurse-4711", "--source", str(recorded.file))
    assert _rows(found) == NURSE_ROWS
    assert f"reading {recorded.file.name}" in terminal.getvalue()
    # a redirected standard error gets no bar
    monkeypatch.setattr(progress, "stderr_console", lambda: Console(file=io.StringIO(), force_terminal=False))
    code, _, err = run(capsys, "find", "--user", "nurse-4711", "--source", str(recorded.file))
    assert (code, err) == (0, "")


def test_the_store_is_not_written_by_queries(capsys: pytest.CaptureFixture[str], recorded: Recorded) -> None:
    before = recorded.store.read_bytes()
    run_json(capsys, "find", "--source", str(recorded.store))
    run_json(capsys, "cost", "--source", str(recorded.store))
    run_json(capsys, "show", recorded.nurse_trace, "--steps", "--source", str(recorded.store))
    assert recorded.store.read_bytes() == before


# times ---------------------------------------------------------------------------------------


def test_times_iso_and_relative() -> None:
    now = _ns("2026-11-27T12:00:00")
    assert parse_time("2026-11-27", now_ns=now) == _ns("2026-11-27T00:00:00")
    assert parse_time("2026-11-27T10:00", now_ns=now) == _ns("2026-11-27T10:00:00")
    assert parse_time("2026-11-27T10:00:00Z", now_ns=now) == _ns("2026-11-27T10:00:00")
    assert parse_time("2026-11-27T11:00:00+01:00", now_ns=now) == _ns("2026-11-27T10:00:00")
    assert parse_time("2026-11-27T10:00:00.000250", now_ns=now) == _ns("2026-11-27T10:00:00") + 250_000
    assert parse_time("30m", now_ns=now) == _ns("2026-11-27T11:30:00")
    assert parse_time("24h", now_ns=now) == _ns("2026-11-26T12:00:00")
    assert parse_time("7d", now_ns=now) == _ns("2026-11-20T12:00:00")
    assert parse_time("now", now_ns=now) == now
    assert utc_text(_ns("2026-11-27T10:00:00") + 250_000, precise=True) == "2026-11-27T10:00:00.000250Z"
    with pytest.raises(ValueError, match="not a time: 'yesterday'"):
        parse_time("yesterday")


def test_a_bad_time_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["find", "--since", "yesterday"])
    assert exit_info.value.code == 2
    assert "argument --since: not a time: 'yesterday'" in capsys.readouterr().err


@pytest.fixture(autouse=True)
def _no_stray_settings() -> Iterator[None]:
    yield
    set_settings(None)
