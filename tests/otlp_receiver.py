"""A loopback OTLP/HTTP receiver for the delivery and log-record tests (imported as ``otlp_receiver``).

It stands in for an OpenTelemetry Collector on 127.0.0.1: ``POST /v1/traces`` with
``application/x-protobuf`` bodies (gzip or deflate when the exporter compresses), parsed with
the OTLP protobuf classes. Every span of every accepted request is recorded, so a test can say
exactly which spans arrived and how often. ``POST /v1/logs`` is always accepted, and its log
records are kept as they arrived (:attr:`OtlpReceiver.log_records`).

Each request gets the next scripted :class:`Reply` (accept by default): 429 or 503 with or
without ``Retry-After``, a 200 with ``partial_success``, or an accept whose answer is held
until the test releases it (a receiver that took the batch but had not answered yet when the
sender died). "Down" is :meth:`OtlpReceiver.stop`: the listening socket is closed, so
connections are refused, and open keep-alive connections are cut; :meth:`OtlpReceiver.start`
listens again on the same port.

A request is either recorded *and* answered, or neither: recording and answering happen under
one lock that :meth:`OtlpReceiver.stop` takes too, so going down never creates a duplicate the
sender could not have avoided (except for a held reply, on purpose).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from otel_llm_audit.delivery.otlp_json import otlp_json_line

TRACES_PATH = "/v1/traces"
LOGS_PATH = "/v1/logs"


@dataclass(frozen=True)
class Reply:
    """How the receiver answers one request."""

    status: int = 200
    #: ``Retry-After`` header value (seconds), for 429 and 503.
    retry_after: str | None = None
    #: A 200 with ``partial_success``: this many spans rejected, with this message.
    rejected_spans: int = 0
    error_message: str = ""
    #: Record the spans, then wait for :meth:`OtlpReceiver.release` before answering.
    hold: bool = False


ACCEPT = Reply()


def throttled(retry_after: str | None = None) -> Reply:
    """429 Too Many Requests."""
    return Reply(429, retry_after)


def unavailable(retry_after: str | None = None) -> Reply:
    """503 Service Unavailable."""
    return Reply(503, retry_after)


def partial_success(rejected_spans: int, error_message: str) -> Reply:
    """200 whose body says some spans were rejected (the OTLP specification: do not retry)."""
    return Reply(200, rejected_spans=rejected_spans, error_message=error_message)


HELD = Reply(hold=True)


def any_value(value: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as a Python value (the SDK attribute it came from)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return tuple(any_value(item) for item in value.array_value.values)
    if kind == "kvlist_value":
        return {item.key: any_value(item.value) for item in value.kvlist_value.values}
    return getattr(value, kind)


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the receiver got it, with its resource and scope (for re-encoding)."""

    trace_id: str
    span_id: str
    name: str
    attributes: dict[str, Any]
    request: int  #: index into :attr:`OtlpReceiver.requests`
    span: Any  #: the protobuf ``Span``
    resource: Any  #: the protobuf ``Resource``
    scope: Any  #: the protobuf ``InstrumentationScope``

    @property
    def ids(self) -> tuple[str, str]:
        return self.trace_id, self.span_id

    def otlp_json(self) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
        """The span, its resource's attributes and its scope as OTLP/JSON (hex ids)."""
        span = json.loads(otlp_json_line(self.span))
        resource = json.loads(otlp_json_line(self.resource))
        scope = json.loads(otlp_json_line(self.scope))
        return span, list(resource.get("attributes", [])), scope


@dataclass
class RequestLog:
    """One POST: when, what was answered, and the spans it carried (accepted or not)."""

    time: float
    status: int
    content_encoding: str
    span_ids: list[tuple[str, str]]
    retry_after: str | None = None
    rejected_spans: int = 0


@dataclass
class _State:
    script: list[Reply] = field(default_factory=list)
    requests: list[RequestLog] = field(default_factory=list)
    spans: list[ReceivedSpan] = field(default_factory=list)
    #: (resource, scope, log record) protobuf messages, in arrival order.
    log_records: list[tuple[Any, Any, Any]] = field(default_factory=list)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], receiver: OtlpReceiver) -> None:
        self.receiver = receiver
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        with self.connections_lock:
            for connection in list(self.connections):
                with contextlib.suppress(OSError):  # already closed by the peer
                    connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a collector does: going down cuts live connections
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.path not in (TRACES_PATH, LOGS_PATH):
            self._answer(404, b"", "text/plain")
            return
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        if self.path == LOGS_PATH:
            self.server.receiver._handle_logs(ExportLogsServiceRequest.FromString(body))
            self._answer(200, ExportLogsServiceResponse().SerializeToString(), "application/x-protobuf")
            return
        request = ExportTraceServiceRequest.FromString(body)
        self.server.receiver._handle(self, request, encoding)

    def _answer(self, status: int, body: bytes, content_type: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()


class OtlpReceiver:
    """The loopback receiver. ``with OtlpReceiver() as receiver:`` starts and finally stops it."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._state = _State()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._up = False
        self._release = threading.Event()
        self.holding = threading.Event()  #: set while a held request waits for :meth:`release`

    # Life ---------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The base URL for ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OtlpReceiver:
        """Listen (again) on :attr:`port`; port 0 picks a free one the first time."""
        server = _Server(("127.0.0.1", self.port), self)
        self.port = server.server_address[1]
        with self._lock:
            self._server = server
            self._up = True
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Go down: refuse new connections and cut the open ones (no half-answered request)."""
        server = self._server
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            self._up = False
            self._server = None
            server.cut_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.stop()

    # Script -------------------------------------------------------------------------------

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies``, in order; then accept."""
        with self._lock:
            self._state.script.extend(replies)

    def release(self) -> None:
        """Let a held request answer (200)."""
        self._release.set()

    # What arrived -------------------------------------------------------------------------

    @property
    def spans(self) -> list[ReceivedSpan]:
        """Every span of every accepted request (200, partial success included), in arrival order."""
        with self._lock:
            return list(self._state.spans)

    @property
    def requests(self) -> list[RequestLog]:
        with self._lock:
            return list(self._state.requests)

    def ids(self) -> list[tuple[str, str]]:
        """``(trace_id, span_id)`` of every accepted span, repeats included."""
        return [span.ids for span in self.spans]

    def duplicates(self) -> Counter[tuple[str, str]]:
        """Ids accepted more than once, with how many times."""
        return Counter({ids: n for ids, n in Counter(self.ids()).items() if n > 1})

    def wait_for(self, ids: Iterable[tuple[str, str]], timeout_s: float) -> bool:
        """Wait until every id in ``ids`` was accepted at least once (False on timeout)."""
        wanted = set(ids)
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not wanted <= {span.ids for span in self._state.spans}:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.1))
        return True

    def wait_requests(self, count: int, timeout_s: float) -> bool:
        """Wait until ``count`` requests were answered or held (False on timeout)."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self._state.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.1))
        return True

    @property
    def log_records(self) -> list[tuple[Any, Any, Any]]:
        """Every log record received: (resource, scope, record) protobuf messages."""
        with self._changed:
            return list(self._state.log_records)

    def wait_log_records(self, count: int, timeout_s: float) -> bool:
        """Wait until at least ``count`` log records have arrived."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self._state.log_records) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.1))
        return True

    # The handler's side -------------------------------------------------------------------

    def _handle_logs(self, request: ExportLogsServiceRequest) -> None:
        with self._changed:
            self._state.log_records.extend(
                (resource_logs.resource, scope_logs.scope, record)
                for resource_logs in request.resource_logs
                for scope_logs in resource_logs.scope_logs
                for record in scope_logs.log_records
            )
            self._changed.notify_all()

    def _handle(self, handler: _Handler, request: ExportTraceServiceRequest, encoding: str) -> None:
        received = [
            (resource_spans.resource, scope_spans.scope, span)
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        ids = [(span.trace_id.hex(), span.span_id.hex()) for _, _, span in received]
        with self._changed:
            if not self._up:  # went down while this request was read: no answer, nothing recorded
                handler.close_connection = True
                return
            reply = self._state.script.pop(0) if self._state.script else ACCEPT
            index = len(self._state.requests)
            self._state.requests.append(
                RequestLog(time.monotonic(), reply.status, encoding, ids, reply.retry_after, reply.rejected_spans)
            )
            if reply.status == 200:
                self._state.spans.extend(
                    ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        name=span.name,
                        attributes={item.key: any_value(item.value) for item in span.attributes},
                        request=index,
                        span=span,
                        resource=resource,
                        scope=scope,
                    )
                    for resource, scope, span in received
                )
            self._changed.notify_all()
            if not reply.hold:
                self._respond(handler, reply)
                return
        # Held: the spans are recorded, the answer waits (outside the lock, so others proceed).
        self.holding.set()
        self._release.wait(timeout=60)
        try:
            self._respond(handler, ACCEPT)
        except OSError:  # the sender is gone (killed while waiting for this answer)
            handler.close_connection = True

    @staticmethod
    def _respond(handler: _Handler, reply: Reply) -> None:
        if reply.status != 200:
            headers = [("Retry-After", reply.retry_after)] if reply.retry_after is not None else []
            handler._answer(reply.status, b"", "application/x-protobuf", headers)
            return
        response = ExportTraceServiceResponse()
        if reply.rejected_spans:
            response.partial_success.CopyFrom(
                ExportTracePartialSuccess(rejected_spans=reply.rejected_spans, error_message=reply.error_message)
            )
        handler._answer(200, response.SerializeToString(), "application/x-protobuf")
