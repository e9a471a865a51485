"""Leak test: seeded personal data and secrets, real ``openai`` SDK, real OTLP/HTTP exporter, loopback receiver.

A seeded set of fake values (e-mails, phone numbers in several formats, Luhn-valid cards, SSNs,
IBANs, IPv4/IPv6, OpenAI/Anthropic/AWS/GitHub keys, a JWT, a bearer token, medical record
numbers) is put where LLM traffic carries it: the system prompt, a multi-turn history, tool
definitions, tool call arguments, tool results, a streamed call, an embeddings call, and two
calls that fail with an HTTP error (one whose error message echoes values from the URL).
Everything goes through the real ``openai`` SDK against the loopback
:class:`~otel_llm_audit.demo.fake_server.FakeModelServer`, through ``configure(content="masked")``
and the real ``OTLPSpanExporter`` (protobuf over HTTP) to a receiver in this module, which keeps
the exact bytes it was sent.

The main test asserts that no seeded value (nor its JSON-escaped, URL-encoded, compact or
partial forms) is in those bytes, and that what is there is exactly what the masking promises:
``<ENTITY>`` placeholders in the same JSON shape, counts of what was masked, and an
``llm_audit.policy`` event. The same scenario with ``content="raw"`` must let every recorded
value through, which proves that the leak assertions can fail. A third test pins a leak found
here and fixed: an e-mail address right after ``word/`` (a URL or file path) was not masked.

Spans seen: one LLM span per call (scope ``otel_llm_audit.instrumentation.openai``) and one HTTP
client span (scope ``opentelemetry.instrumentation.httpx``) per request of the main client, which
is instrumented with ``instrument_client`` so its spans nest under the LLM spans. The client
whose base URL carries values is deliberately not HTTP-instrumented: the HTTP span's
``url.full`` is not content, and the masking policy does not claim to mask it.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import random
import re
import sys
import tempfile
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import openai
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation import httpx as httpx_instrumentation
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.trace import TracerProvider

import otel_llm_audit
from otel_llm_audit import semconv
from otel_llm_audit.bootstrap import AuditPipeline
from otel_llm_audit.config import set_settings
from otel_llm_audit.delivery.store_writer import CHECKPOINT_SCOPE
from otel_llm_audit.demo.fake_server import HELLO_ANSWER, TOOL_CALL_ID, WEATHER_ANSWER, FakeModelServer
from otel_llm_audit.instrumentation.openai import OpenAIInstrumentor

#: The HTTP library this openai is built on: httpx2 for 3.x, httpx before.
HTTP_INSTRUMENTOR = (
    httpx_instrumentation.HTTPX2ClientInstrumentor
    if hasattr(openai._base_client, "httpx2")
    else httpx_instrumentation.HTTPXClientInstrumentor
)

SEED = 20260101
LLM_SCOPE = "otel_llm_audit.instrumentation.openai"
HTTP_SCOPE_PREFIX = "opentelemetry.instrumentation.httpx"
STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR
CORPUS_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "masking" / "corpus.py"


# ------------------------------------------------------------------------------------------
# Seeded values, and texts that know where they are


@dataclass(frozen=True)
class Seeded:
    """One fake value of an entity type the default policy lists (default_policy.yaml)."""

    entity: str
    value: str


class Txt:
    """A text made of plain strings and seeded values: as sent, and as the masking must export it."""

    def __init__(self, *pieces: str | Seeded) -> None:
        self.pieces = pieces
        self.raw = "".join(p.value if isinstance(p, Seeded) else p for p in pieces)
        self.masked = "".join(f"<{p.entity}>" if isinstance(p, Seeded) else p for p in pieces)
        self.counts = Counter(p.entity for p in pieces if isinstance(p, Seeded))
        self.seeded = [p for p in pieces if isinstance(p, Seeded)]


@dataclass(frozen=True)
class Num:
    """A seeded number sent as a JSON integer (``{"mrn": 99232964}``): exported as the masked string."""

    seeded: Seeded


def render(node: Any, masked: bool) -> Any:
    """The template with each text as sent (``masked=False``) or as it must be exported."""
    if isinstance(node, Txt):
        return node.masked if masked else node.raw
    if isinstance(node, Num):
        return f"<{node.seeded.entity}>" if masked else int(node.seeded.value)
    if isinstance(node, dict):
        return {k: render(v, masked) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [render(v, masked) for v in node]
    return node


def count(node: Any) -> Counter[str]:
    """Seeded values per entity type in a template."""
    if isinstance(node, Txt):
        return Counter(node.counts)
    if isinstance(node, Num):
        return Counter([node.seeded.entity])
    total: Counter[str] = Counter()
    children = node.values() if isinstance(node, dict) else node if isinstance(node, (list, tuple)) else ()
    for child in children:
        total.update(count(child))
    return total


def seeded_in(node: Any) -> list[Seeded]:
    if isinstance(node, Txt):
        return list(node.seeded)
    if isinstance(node, Num):
        return [node.seeded]
    children = node.values() if isinstance(node, dict) else node if isinstance(node, (list, tuple)) else ()
    return [s for child in children for s in seeded_in(child)]


def _load_corpus() -> ModuleType:
    """benchmarks/masking/corpus.py: generators of realistic fake values (Luhn-valid cards, valid IBANs...)."""
    name = "_llm_audit_leak_corpus"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, CORPUS_PATH)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
    return module


_PHONE_STYLES = {
    "us_paren": re.compile(r"\(\d{3}\) \d{3}-\d{4}"),
    "us_dot": re.compile(r"\d{3}\.\d{3}\.\d{4}"),
    "us_dash": re.compile(r"\d{3}-\d{3}-\d{4}"),
    "us_intl": re.compile(r"\+1 \d{3} \d{3} \d{4}"),
    "uk": re.compile(r"020 7\d{3} \d{4}"),
    "uk_intl": re.compile(r"\+44 20 7\d{3} \d{4}"),
    "de_intl": re.compile(r"\+49 30 \d{7,8}"),
    "us_bare": re.compile(r"\d{10}"),
}


def _valid_nhs_number(value: str) -> bool:
    """Whether the digits pass the UK NHS mod-11 check: one US number in eleven does, and is then,
    rightly, as much an NHS number as a phone number (masked either way, labelled either way)."""
    digits = re.sub(r"\D", "", value)
    if len(digits) != 10:
        return False
    check = 11 - sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True)) % 11
    return (0 if check == 11 else check) == int(digits[9])


@dataclass
class Values:
    """The seeded values of one scenario, drawn from the corpus generators with a fixed seed."""

    email: list[Seeded]
    phone: dict[str, Seeded]
    card: list[Seeded]
    ssn: list[Seeded]
    ssn_bare: Seeded
    iban: list[Seeded]
    ipv4: list[Seeded]
    ipv6: Seeded
    openai_key: Seeded
    client_api_key: str
    anthropic_key: Seeded
    aws_key: list[Seeded]
    github_token: Seeded
    jwt: Seeded
    bearer: Seeded
    mrn: list[Seeded]


def make_values(seed: int = SEED) -> Values:
    corpus = _load_corpus()
    rng = random.Random(seed)
    seen: set[str] = set()

    def draw(entity: str, make: Callable[[], str], accept: Callable[[str], object] = bool) -> Seeded:
        for _ in range(10_000):
            value = make()
            if value not in seen and accept(value):
                seen.add(value)
                return Seeded(entity, value)
        raise AssertionError(f"the corpus generator gave no acceptable {entity}")

    first_last = [
        ("maria", "gonzalez"),
        ("kenji", "tanaka"),
        ("amara", "okafor"),
        ("lukas", "novak"),
        ("priya", "patel"),
    ]
    emails = [draw("EMAIL_ADDRESS", lambda f=f, la=la: corpus.email(rng, f, la)) for f, la in first_last]
    phones = {
        style: draw(
            "PHONE_NUMBER",
            lambda: corpus.phone(rng)[0],
            lambda v, pattern=pattern: pattern.fullmatch(v) and not _valid_nhs_number(v),
        )
        for style, pattern in _PHONE_STYLES.items()
    }
    cards = [
        draw("CREDIT_CARD", lambda: corpus.card(rng), re.compile(r"4\d{3}( \d{4}){3}").fullmatch),
        draw("CREDIT_CARD", lambda: corpus.card(rng), re.compile(r"5\d{3}(-\d{4}){3}").fullmatch),
        draw("CREDIT_CARD", lambda: corpus.card(rng), re.compile(r"\d{16}").fullmatch),
        draw("CREDIT_CARD", lambda: corpus.card(rng), re.compile(r"3[47]\d{2} \d{6} \d{5}").fullmatch),
    ]
    return Values(
        email=emails,
        phone=phones,
        card=cards,
        ssn=[draw("US_SSN", lambda: corpus.ssn(rng)) for _ in range(3)],
        ssn_bare=draw("US_SSN", lambda: corpus.ssn(rng, sep="")),
        iban=[
            draw("IBAN_CODE", lambda: corpus.iban(rng), lambda v: v.startswith("DE") and " " in v),
            draw("IBAN_CODE", lambda: corpus.iban(rng), lambda v: v.startswith("GB") and " " not in v),
            draw("IBAN_CODE", lambda: corpus.iban(rng), lambda v: v.startswith("FR")),
        ],
        ipv4=[draw("IP_ADDRESS", lambda: corpus.ipv4(rng)) for _ in range(4)],
        ipv6=draw("IP_ADDRESS", lambda: corpus.ipv6(rng)),
        openai_key=draw("OPENAI_API_KEY", lambda: corpus.openai_key(rng), lambda v: v.startswith("sk-proj-")),
        client_api_key=draw("OPENAI_API_KEY", lambda: corpus.openai_key(rng), lambda v: v.startswith("sk-proj-")).value,
        anthropic_key=draw("ANTHROPIC_API_KEY", lambda: corpus.anthropic_key(rng)),
        aws_key=[
            draw("AWS_ACCESS_KEY_ID", lambda: corpus.aws_key(rng), lambda v: v.startswith("AKIA")) for _ in range(2)
        ],
        github_token=draw("GITHUB_TOKEN", lambda: corpus.github_token(rng), lambda v: v.startswith("ghp_")),
        jwt=draw("JWT", lambda: corpus.jwt(rng, "Maria")),
        bearer=draw("BEARER_TOKEN", lambda: corpus.bearer(rng)),
        # 8+ digits: a shorter digit run could turn up by chance in the binary parts of the protobuf.
        mrn=[
            draw("MEDICAL_RECORD_NUMBER", lambda: corpus.mrn(rng), lambda v: len(v) >= 8 and v[0] != "0")
            for _ in range(5)
        ],
    )


def needles(value: str) -> list[str]:
    """The value and the forms it could take on the wire: JSON-escaped, ``\\/``-escaped, URL-encoded, compact,
    and, for long values, every 12-character window (a masked prefix must not leave the tail in clear)."""
    forms = {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        value.replace("/", "\\/"),
        quote(value, safe=""),
        quote(value),
    }
    compact = re.sub(r"[^0-9A-Za-z]", "", value)
    if len(compact) >= 9:
        forms.add(compact)
    if len(value) > 20 and re.fullmatch(r"[A-Za-z0-9_.\-]+", value):  # keys, tokens, JWTs
        forms.update(value[i : i + 12] for i in range(len(value) - 11))
    return sorted(forms)


# ------------------------------------------------------------------------------------------
# The loopback OTLP/HTTP receiver


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        encoding = (self.headers.get("content-encoding") or "").lower()
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        server = self.server
        assert isinstance(server, _ReceiverServer)
        with server.lock:
            server.posts.append((self.path, body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


class _ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Receiver)
        self.posts: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()


@pytest.fixture
def receiver() -> Iterator[_ReceiverServer]:
    server = _ReceiverServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No setting, policy, compression or header from the environment changes what is tested."""
    for name in list(os.environ):
        if name.startswith(("OTEL_LLM_AUDIT_", "OTEL_EXPORTER_OTLP_", "OTEL_INSTRUMENTATION_GENAI_", "OPENAI_")):
            monkeypatch.delenv(name)
    yield
    set_settings(None)


# ------------------------------------------------------------------------------------------
# Decoding what was received


def _any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


@dataclass
class ReceivedSpan:
    scope: str
    name: str
    span_id: bytes
    parent_span_id: bytes
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    status_code: int
    status_message: str

    def strings(self) -> Iterator[tuple[str, str]]:
        """Every text of the span, with where it is: attributes, event attributes, status."""
        yield "name", self.name
        for key, value in self.attributes.items():
            for text in value if isinstance(value, list) else [value]:
                if isinstance(text, str):
                    yield f"attribute {key}", text
        for index, (name, attrs) in enumerate(self.events):
            yield f"event[{index}] name", name
            for key, value in attrs.items():
                for text in value if isinstance(value, list) else [value]:
                    if isinstance(text, str):
                        yield f"event[{index}] {name} {key}", text
        yield "status.message", self.status_message


def decode(posts: list[tuple[str, bytes]]) -> list[ReceivedSpan]:
    spans = []
    for path, body in posts:
        assert path == "/v1/traces", path
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                if scope_spans.scope.name == CHECKPOINT_SCOPE:
                    continue  # the store's signed checkpoints: no content (their bytes are still searched)
                for span in scope_spans.spans:
                    spans.append(
                        ReceivedSpan(
                            scope=scope_spans.scope.name,
                            name=span.name,
                            span_id=span.span_id,
                            parent_span_id=span.parent_span_id,
                            attributes={kv.key: _any_value(kv.value) for kv in span.attributes},
                            events=[
                                (e.name, {kv.key: _any_value(kv.value) for kv in e.attributes}) for e in span.events
                            ],
                            status_code=span.status.code,
                            status_message=span.status.message,
                        )
                    )
    return spans


# ------------------------------------------------------------------------------------------
# The scenario


@dataclass
class Call:
    """One SDK call of the scenario: what it sent, and what its span must say."""

    model: str
    #: Templates of the ``gen_ai.input.messages`` (conventions shape) and ``gen_ai.tool.definitions``.
    input_messages: Any = None
    tool_definitions: Any = None
    #: Exact ``gen_ai.output.messages`` (no seeded values: the fake model does not echo).
    output_messages: Any = None
    #: Values sent but not recorded on the LLM span by design (embeddings input).
    unrecorded: list[Seeded] = field(default_factory=list)
    #: Values the HTTP error message echoes (in exception.message, exception.stacktrace, status).
    echoed_in_error: list[Seeded] = field(default_factory=list)
    error_type: str | None = None
    error_message: str | None = None  # str() of the exception the SDK raised, unmasked
    http_span: bool = True

    @property
    def sent_counts(self) -> Counter[str]:
        return count(self.input_messages) + count(self.tool_definitions)

    @property
    def all_counts(self) -> Counter[str]:
        # The error text is in three places: exception.message, exception.stacktrace, status.
        echoed = Counter(s.entity for s in self.echoed_in_error)
        return self.sent_counts + echoed + echoed + echoed

    @property
    def seeded(self) -> list[Seeded]:
        return seeded_in(self.input_messages) + seeded_in(self.tool_definitions) + self.echoed_in_error


def _text(role: str, body: Txt) -> tuple[dict[str, Any], dict[str, Any]]:
    """A chat message: (request, conventions template)."""
    return {"role": role, "content": body}, {"role": role, "parts": [{"type": "text", "content": body}]}


def _tool_call(call_id: str, name: str, arguments: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    request = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}],
    }
    convention = {
        "role": "assistant",
        "parts": [{"type": "tool_call", "id": call_id, "name": name, "arguments": arguments}],
    }
    return request, convention


def _tool_result(call_id: str, body: Txt, as_parts: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    content: Any = [{"type": "text", "text": body}] if as_parts else body
    request = {"role": "tool", "tool_call_id": call_id, "content": content}
    return request, {"role": "tool", "parts": [{"type": "tool_call_response", "id": call_id, "response": body}]}


def _request_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages as the SDK gets them: texts as sent, tool call arguments as JSON text."""
    out = []
    for message in render(messages, masked=False):
        for call in message.get("tool_calls") or ():
            call["function"]["arguments"] = json.dumps(call["function"]["arguments"])
        out.append(message)
    return out


def _tool_definitions(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conventions' ``gen_ai.tool.definitions`` template of Chat Completions ``tools``."""
    return [{"type": "function", **tool["function"]} for tool in tools]


@dataclass
class Outcome:
    posts: list[tuple[str, bytes]]
    spans: list[ReceivedSpan]
    calls: list[Call]
    values: Values
    policy_version: str | None
    #: The local audit store's files (database and write-ahead log) as written to disk.
    stored: bytes = b""

    @property
    def raw_bytes(self) -> list[bytes]:
        return [body for _, body in self.posts]


@contextmanager
def audited(content: str, receiver: _ReceiverServer) -> Iterator[AuditPipeline]:
    """``configure(content=...)`` in front of the real OTLP/HTTP exporter, and the real SDK instrumented.

    Flushed on leaving the block, then shut down and uninstrumented.
    """
    exporter = OTLPSpanExporter(
        endpoint=f"http://127.0.0.1:{receiver.server_address[1]}/v1/traces",
        compression=Compression.NoCompression,  # the bytes checked are the bytes sent
        timeout=10,
    )
    # The default delivery: the local audit store in front of the exporter (store-and-forward).
    store = Path(tempfile.mkdtemp(prefix="leak-store-")) / "audit.db"
    pipeline = otel_llm_audit.configure(
        span_exporters=[exporter],
        metric_readers=[],
        store=str(store),
        checkpoint_interval=3600,
        tracer_provider=TracerProvider(),
        set_global=False,
        instrument=False,
        http_spans=False,  # no effect with instrument=False; HTTP spans come from instrument_client below
        content=content,
        masking_policy="",
    )
    instrumentor = OpenAIInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    try:
        instrumentor.instrument(tracer_provider=pipeline.tracer_provider)
        if content == "masked":
            assert pipeline.masking is not None and pipeline.masking.wait_ready(60), "the masker did not start"
        yield pipeline
        assert pipeline.force_flush(10_000), "the audit pipeline did not flush in time"
    finally:
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
        pipeline.shutdown()


def run_scenario(content: str, fake_server: FakeModelServer, receiver: _ReceiverServer) -> Outcome:
    """Every call of the scenario under ``configure(content=...)``, exported to ``receiver``."""
    v = make_values()
    calls: list[Call] = []
    with ExitStack() as stack:  # unwinds: clients closed, HTTP uninstrumented, pipeline flushed and shut down
        pipeline = stack.enter_context(audited(content, receiver))
        http_client = stack.enter_context(openai.DefaultHttpxClient())
        HTTP_INSTRUMENTOR.instrument_client(http_client, tracer_provider=pipeline.tracer_provider)
        stack.callback(HTTP_INSTRUMENTOR.uninstrument_client, http_client)
        client = stack.enter_context(
            openai.OpenAI(
                base_url=fake_server.base_url, api_key=v.client_api_key, max_retries=0, http_client=http_client
            )
        )
        # Values in the URL path: the fake server's 404 message echoes the path, as real APIs echo input.
        tenant_key, tenant_ip = v.aws_key[1], v.ipv4[2]
        echo_client = stack.enter_context(
            openai.OpenAI(
                base_url=f"{fake_server.base_url}/tenants/{tenant_key.value}/hosts/{tenant_ip.value}",
                api_key=v.client_api_key,
                max_retries=0,
            )
        )
        policy_version = pipeline.masking.policy_version if pipeline.masking is not None else None
        e, p = v.email, v.phone

        # -- A: system prompt, multi-turn history with a tool call and its result, tool definitions
        system = _text(
            "system",
            Txt(
                "You are the billing and care assistant of ACME Health. Escalate to ",
                e[0],
                " or by phone on ",
                p["us_paren"],
                ". Internal config: OPENAI_API_KEY=",
                v.openai_key,
                " and AWS access key id ",
                v.aws_key[0],
                ". Never reveal them.",
            ),
        )
        user_1 = _text(
            "user",
            Txt(
                "Hi, my card ",
                v.card[0],
                " was charged twice. My SSN is ",
                v.ssn[0],
                ", email me at ",
                e[1],
                " or call me on ",
                p["uk_intl"],
                ".",
            ),
        )
        history_call = _tool_call("call_hist_1", "lookup_patient", {"mrn": Num(v.mrn[0]), "ssn": Txt(v.ssn_bare)})
        history_result = _tool_result(
            "call_hist_1",
            Txt(
                '{"patient": "found", "email": "',
                e[2],
                '", "phone": "',
                p["us_bare"],
                '", "iban": "',
                v.iban[1],
                '", "last_login_ip": "',
                v.ipv4[0],
                '", "chart": "MRN: ',
                v.mrn[1],
                '"}',
            ),
        )
        assistant_1 = _text(
            "assistant",
            Txt(
                "I found the record. The refund goes to IBAN ",
                v.iban[0],
                "; the last login came from ",
                v.ipv6,
                ".",
            ),
        )
        user_2 = _text(
            "user",
            Txt(
                "Thanks. Our portal sent Authorization: Bearer ",
                v.bearer,
                " and the session cookie was ",
                v.jwt,
                ". These also leaked in a ticket: ",
                v.anthropic_key,
                " and ",
                v.github_token,
                ". The card ",
                v.card[1],
                " and SSN ",
                v.ssn[1],
                " are my husband's; his cell is ",
                p["us_dot"],
                ".",
            ),
        )
        tools = [
            {
                "type": "function",
                "function": {
                    "name": "lookup_patient",
                    "description": Txt(
                        "Look up a patient by medical record number (for example MRN: ",
                        v.mrn[2],
                        ") and SSN. On failure e-mail ",
                        e[0],
                        " or call ",
                        p["de_intl"],
                        ".",
                    ),
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "mrn": {"type": "string", "description": "Medical record number"},
                            "ssn": {
                                "type": "string",
                                "description": "Social security number",
                                "examples": [Txt(v.ssn[2])],
                            },
                        },
                        "required": ["mrn"],
                    },
                },
            },
            {
                "type": "function",
                "function": {
                    "name": "refund_card",
                    "description": Txt("Refund a charge to a card such as ", v.card[3], " or to IBAN ", v.iban[2], "."),
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "card": {"type": "string", "default": Txt(v.card[2])},
                            "notify": {"type": "string", "description": Txt("Who to notify, e.g. phone ", p["uk"])},
                            "source_ip": {"type": "string", "enum": [Txt(v.ipv4[1])]},
                        },
                    },
                },
            },
        ]
        conversation = [system, user_1, history_call, history_result, assistant_1, user_2]
        a_messages = [request for request, _ in conversation]
        completion = client.chat.completions.create(
            model="gpt-4o-mini", messages=_request_messages(a_messages), tools=render(tools, masked=False)
        )
        assert completion.choices[0].message.tool_calls[0].function.name == "lookup_patient"
        calls.append(
            Call(
                model="gpt-4o-mini",
                input_messages=[convention for _, convention in conversation],
                tool_definitions=_tool_definitions(tools),
                output_messages=[
                    {
                        "role": "assistant",
                        "parts": [
                            {
                                "type": "tool_call",
                                "id": TOOL_CALL_ID,
                                "name": "lookup_patient",
                                "arguments": {"city": "Paris"},
                            }
                        ],
                        "finish_reason": "tool_call",
                    }
                ],
            )
        )

        # -- B: the model's tool call answered by a tool result given as content parts
        model_call = _tool_call(TOOL_CALL_ID, "lookup_patient", {"city": "Paris"})
        tool_answer = _tool_result(
            TOOL_CALL_ID, Txt("Record sent to ", e[3], "; callback requested on ", p["us_intl"], "."), as_parts=True
        )
        b_conversation = [*conversation, model_call, tool_answer]
        completion = client.chat.completions.create(
            model="gpt-4o",
            messages=_request_messages([request for request, _ in b_conversation]),
            tools=render(tools, masked=False),
        )
        assert completion.choices[0].message.content == WEATHER_ANSWER
        calls.append(
            Call(
                model="gpt-4o",
                input_messages=[convention for _, convention in b_conversation],
                tool_definitions=_tool_definitions(tools),
                output_messages=[
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": WEATHER_ANSWER}],
                        "finish_reason": "stop",
                    }
                ],
            )
        )

        # -- C: a streamed call
        c_conversation = [
            system,
            _text("user", Txt("Summarise the chart of MRN: ", v.mrn[3], " for ", e[1], ", phone ", p["us_dash"], ".")),
        ]
        stream = client.chat.completions.create(
            model="gpt-4.1-mini", messages=_request_messages([r for r, _ in c_conversation]), stream=True
        )
        streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert streamed == HELLO_ANSWER
        calls.append(
            Call(
                model="gpt-4.1-mini",
                input_messages=[convention for _, convention in c_conversation],
                output_messages=[
                    {"role": "assistant", "parts": [{"type": "text", "content": HELLO_ANSWER}], "finish_reason": "stop"}
                ],
            )
        )

        # -- D: embeddings (the conventions record no input content for embeddings)
        embed_inputs = [
            Txt("Customer ", e[4], " disputes a charge made from ", v.ipv4[3], "."),
            Txt("Discharge summary for MRN: ", v.mrn[4]),
        ]
        embedding = client.embeddings.create(model="text-embedding-3-small", input=render(embed_inputs, masked=False))
        assert len(embedding.data) == 2
        calls.append(Call(model="text-embedding-3-small", unrecorded=seeded_in(embed_inputs)))

        # -- E: an HTTP error scripted by the model name (its message echoes only the model name)
        e_conversation = [_text("user", Txt("Update my phone to ", p["uk"], " and my e-mail to ", e[0], "."))]
        with pytest.raises(openai.BadRequestError) as bad_request:
            client.chat.completions.create(
                model="error-400", messages=_request_messages([r for r, _ in e_conversation])
            )
        calls.append(
            Call(
                model="error-400",
                input_messages=[convention for _, convention in e_conversation],
                error_type="openai.BadRequestError",
                error_message=str(bad_request.value),
            )
        )

        # -- F: an HTTP error whose message echoes values (404 for a URL path that carries them)
        f_conversation = [_text("user", Txt("Hello, this is tenant admin ", e[3], "."))]
        with pytest.raises(openai.NotFoundError) as not_found:
            echo_client.chat.completions.create(
                model="gpt-4.1", messages=_request_messages([r for r, _ in f_conversation])
            )
        calls.append(
            Call(
                model="gpt-4.1",
                input_messages=[convention for _, convention in f_conversation],
                echoed_in_error=[tenant_key, tenant_ip],
                error_type="openai.NotFoundError",
                error_message=str(not_found.value),
                http_span=False,
            )
        )
    with receiver.lock:
        posts = list(receiver.posts)
    assert pipeline.store is not None
    stored = b"".join(
        Path(pipeline.store.store.path + suffix).read_bytes()
        for suffix in ("", "-wal")
        if Path(pipeline.store.store.path + suffix).exists()
    )
    return Outcome(posts, decode(posts), calls, v, policy_version, stored)


def find_leaks(posts: list[tuple[str, bytes]], spans: list[ReceivedSpan], values: list[Seeded]) -> list[str]:
    """Where any form of any value is, in the bytes received and in the decoded spans."""
    leaks = []
    for seeded in values:
        for needle in needles(seeded.value):
            for index, (_, body) in enumerate(posts):
                if needle.encode() in body:
                    leaks.append(f"{seeded.entity} {seeded.value!r}: {needle!r} in the bytes of POST #{index}")
            for span in spans:
                for where, text in span.strings():
                    if needle in text:
                        leaks.append(
                            f"{seeded.entity} {seeded.value!r}: {needle!r} in span {span.name!r} {where}: {text!r}"
                        )
    return leaks


def every_seeded(values: Values) -> list[Seeded]:
    out: list[Seeded] = []
    for item in vars(values).values():
        if isinstance(item, Seeded):
            out.append(item)
        elif isinstance(item, list):
            out.extend(item)
        elif isinstance(item, dict):
            out.extend(item.values())
    return out


def llm_spans_by_model(outcome: Outcome) -> dict[str, ReceivedSpan]:
    llm = [s for s in outcome.spans if s.scope == LLM_SCOPE]
    models = [s.attributes[semconv.GEN_AI_REQUEST_MODEL] for s in llm]
    assert sorted(models) == sorted(call.model for call in outcome.calls), models  # one span per call
    return {s.attributes[semconv.GEN_AI_REQUEST_MODEL]: s for s in llm}


def _counts_json(counts: Counter[str]) -> str:
    return json.dumps(dict(sorted(counts.items())), separators=(",", ":"))


# ------------------------------------------------------------------------------------------
# Tests


def test_no_seeded_value_reaches_the_otlp_receiver(fake_server: FakeModelServer, receiver: _ReceiverServer) -> None:
    outcome = run_scenario("masked", fake_server, receiver)
    values = every_seeded(outcome.values)
    assert len({s.value for s in values}) == len(values) == 41

    # (1) Not in the bytes that left the process, in no encoding, and not in any decoded text.
    assert outcome.posts, "nothing reached the receiver"
    client_key = Seeded("OPENAI_API_KEY", outcome.values.client_api_key)  # sent as a header, never recorded
    assert find_leaks(outcome.posts, outcome.spans, [*values, client_key]) == []
    # (1b) Not on disk either: the local audit store holds only what was masked.
    assert outcome.stored, "nothing was written to the audit store"
    assert find_leaks([("store", outcome.stored)], [], [*values, client_key]) == []

    # The spans received: one LLM span per call, and the HTTP span of each main-client request under it.
    by_model = llm_spans_by_model(outcome)
    http = [s for s in outcome.spans if s.scope.startswith(HTTP_SCOPE_PREFIX)]
    assert len(outcome.spans) == len(by_model) + len(http)
    assert sorted(s.parent_span_id for s in http) == sorted(
        by_model[call.model].span_id for call in outcome.calls if call.http_span
    )
    assert {s.name for s in http} == {"POST"}

    for call in outcome.calls:
        span = by_model[call.model]
        attrs = span.attributes
        assert attrs[semconv.LLM_AUDIT_CONTENT_MODE] == "masked"
        assert attrs[semconv.LLM_AUDIT_REDACTION_POLICY_VERSION] == outcome.policy_version
        assert semconv.LLM_AUDIT_REDACTION_FAILURE not in attrs, (
            call.model,
            attrs[semconv.LLM_AUDIT_REDACTION_FAILURE],
        )
        policy_events = [attrs_ for name, attrs_ in span.events if name == semconv.EVENT_LLM_AUDIT_POLICY]

        if not call.seeded:  # embeddings: nothing of the input is recorded, so nothing to mask
            assert call.unrecorded
            assert attrs[semconv.LLM_AUDIT_REDACTION_STATUS] == "clean"
            assert semconv.LLM_AUDIT_REDACTION_ENTITIES not in attrs
            assert semconv.GEN_AI_INPUT_MESSAGES not in attrs
            assert policy_events == []
            continue

        # (2) Masked, with the exact count of what was masked, per type.
        assert attrs[semconv.LLM_AUDIT_REDACTION_STATUS] == "masked", call.model
        entities = json.loads(attrs[semconv.LLM_AUDIT_REDACTION_ENTITIES])
        assert entities == dict(sorted(call.all_counts.items())), call.model
        assert attrs[semconv.LLM_AUDIT_REDACTION_ENTITIES] == _counts_json(call.all_counts)

        # (3) The same messages, roles and parts as sent, with placeholders where the values were.
        sent = json.loads(attrs[semconv.GEN_AI_INPUT_MESSAGES])
        expected = render(call.input_messages, masked=True)
        assert [m["role"] for m in sent] == [m["role"] for m in expected]
        assert [len(m["parts"]) for m in sent] == [len(m["parts"]) for m in expected]
        assert sent == expected, call.model
        if call.tool_definitions is not None:
            assert json.loads(attrs[semconv.GEN_AI_TOOL_DEFINITIONS]) == render(call.tool_definitions, masked=True)
        else:
            assert semconv.GEN_AI_TOOL_DEFINITIONS not in attrs
        if call.output_messages is not None:
            assert json.loads(attrs[semconv.GEN_AI_OUTPUT_MESSAGES]) == call.output_messages
        else:
            assert semconv.GEN_AI_OUTPUT_MESSAGES not in attrs

        # (4) One policy event saying what was masked in what was sent to the model.
        assert attrs[semconv.LLM_AUDIT_AUDIT_RECORD] is True
        assert policy_events == [
            {
                semconv.LLM_AUDIT_POLICY_CATEGORY: "pii",
                semconv.LLM_AUDIT_POLICY_ACTION: "masked",
                semconv.LLM_AUDIT_POLICY_SOURCE: "otel_llm_audit.masking",
                semconv.LLM_AUDIT_POLICY_NAME: "pii_masking",
                semconv.LLM_AUDIT_POLICY_DETAILS: json.dumps(
                    {"entities": dict(sorted(call.sent_counts.items())), "policy_version": outcome.policy_version},
                    sort_keys=True,
                    separators=(",", ":"),
                ),
            }
        ]

        # Failed calls: the exception event and the status description, masked.
        if call.error_type is None:
            assert [name for name, _ in span.events] == [semconv.EVENT_LLM_AUDIT_POLICY]
            assert span.status_code == 0 and span.status_message == ""
            continue
        assert call.error_message is not None
        masked_error = call.error_message
        for seeded in call.echoed_in_error:
            masked_error = masked_error.replace(seeded.value, f"<{seeded.entity}>")
        assert [name for name, _ in span.events] == ["exception", semconv.EVENT_LLM_AUDIT_POLICY]
        exception = span.events[0][1]
        assert exception[semconv.EXCEPTION_TYPE] == call.error_type
        assert exception[semconv.EXCEPTION_MESSAGE] == masked_error
        assert exception[semconv.EXCEPTION_STACKTRACE].endswith(f"{call.error_type}: {masked_error}\n")
        assert attrs[semconv.ERROR_TYPE] == call.error_type
        assert (span.status_code, span.status_message) == (STATUS_ERROR, masked_error)

    # The echoing error really echoed (else F would prove nothing about events and status).
    echo = outcome.calls[-1]
    assert echo.error_message is not None and "<" not in echo.error_message
    assert all(s.value in echo.error_message for s in echo.echoed_in_error)


def test_raw_content_lets_the_values_through(fake_server: FakeModelServer, receiver: _ReceiverServer) -> None:
    """The same scenario unmasked: every recorded value is in the bytes, so the leak test can fail."""
    outcome = run_scenario("raw", fake_server, receiver)
    recorded = [s for call in outcome.calls for s in call.seeded]
    unrecorded = [s for call in outcome.calls for s in call.unrecorded]
    assert {s.value for s in recorded} | {s.value for s in unrecorded} == {
        s.value for s in every_seeded(outcome.values)
    }
    body = b"".join(outcome.raw_bytes)
    assert [s.value for s in recorded if s.value.encode() not in body] == []
    # The detector of the masked test finds each of them, in the bytes and in the decoded spans.
    found = {s.value: find_leaks(outcome.posts, outcome.spans, [s]) for s in recorded}
    assert [value for value, leaks in found.items() if not any("in the bytes of POST" in x for x in leaks)] == []
    assert [value for value, leaks in found.items() if not any(" in span " in x for x in leaks)] == []

    by_model = llm_spans_by_model(outcome)
    for call in outcome.calls:
        attrs = by_model[call.model].attributes
        assert attrs[semconv.LLM_AUDIT_CONTENT_MODE] == "raw"
        assert semconv.LLM_AUDIT_REDACTION_STATUS not in attrs
        assert [name for name, _ in by_model[call.model].events] == (["exception"] if call.error_type else [])
        if call.input_messages is not None:
            assert json.loads(attrs[semconv.GEN_AI_INPUT_MESSAGES]) == render(call.input_messages, masked=False)
        if call.tool_definitions is not None:
            assert json.loads(attrs[semconv.GEN_AI_TOOL_DEFINITIONS]) == render(call.tool_definitions, masked=False)
        if call.error_message is not None:
            assert by_model[call.model].status_message == call.error_message
    # Values that are never recorded, in any mode: the embeddings input and the client's API key.
    assert {s.value for s in unrecorded}.isdisjoint({s.value for s in recorded})
    assert [s.value for s in unrecorded if s.value.encode() in body] == []
    assert outcome.values.client_api_key.encode() not in body


def test_email_in_a_url_path_is_masked(fake_server: FakeModelServer, receiver: _ReceiverServer) -> None:
    """An e-mail address in a URL path: in a prompt, and echoed by an HTTP error (exception event, status)."""
    email = make_values().email[3]
    prompt = Txt("Why does GET /api/users/", email, "/orders return 404?")
    client = openai.OpenAI(base_url=f"{fake_server.base_url}/tenants/{email.value}", api_key="sk-test", max_retries=0)
    with audited("masked", receiver), client, pytest.raises(openai.NotFoundError) as not_found:
        client.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": prompt.raw}])
    assert email.value in str(not_found.value)  # the error really echoes it
    with receiver.lock:
        posts = list(receiver.posts)
    spans = decode(posts)
    assert [s.name for s in spans] == ["chat gpt-4.1"]
    assert find_leaks(posts, spans, [email]) == []
    masked_error = str(not_found.value).replace(email.value, "<EMAIL_ADDRESS>")
    assert spans[0].status_message == masked_error
    assert json.loads(spans[0].attributes[semconv.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": prompt.masked}]}
    ]
