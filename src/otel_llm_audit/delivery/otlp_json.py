"""Exporters that write OTLP JSON lines, the format of the collector's file exporter.

The embedded default when no exporter is configured: nothing needs a server to get started,
and the file can later be replayed into a collector (``otlpjsonfile`` receiver) or read by
``otel-llm-audit show``. Encoding uses the OTLP exporters' own protobuf encoders, then the
OTLP/JSON rules: camelCase keys, enums as integers, trace and span ids as hex (not base64).
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Sequence
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

try:  # renamed in SDK 1.39 (the old names warn there)
    from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
except ImportError:  # SDK 1.30
    from opentelemetry.sdk._logs.export import LogExporter as LogRecordExporter  # type: ignore[attr-defined,no-redef,unused-ignore]
    from opentelemetry.sdk._logs.export import LogExportResult as LogRecordExportResult  # type: ignore[assignment,attr-defined,no-redef,unused-ignore]
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = [
    "LogRecordExporter",
    "OtlpJsonFileLogExporter",
    "OtlpJsonFileMetricExporter",
    "OtlpJsonFileSpanExporter",
    "otlp_json_line",
]

_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId"})


def otlp_json_line(message: Any) -> str:
    """One OTLP protobuf message as a single line of OTLP JSON."""
    as_dict = MessageToDict(message, use_integers_for_enums=True)
    _hex_ids(as_dict)
    return json.dumps(as_dict, separators=(",", ":"), ensure_ascii=False)


def _hex_ids(node: Any) -> None:
    """OTLP/JSON writes ids as hex strings where protobuf JSON would write base64."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids(item)


class _JsonLinesFile:
    """An append-only file shared by exporter calls from several threads."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        self._lock = threading.Lock()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the exporter's life

    def write(self, line: str) -> None:
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()


class OtlpJsonFileSpanExporter(SpanExporter):
    """Writes each batch of spans as one ``ExportTraceServiceRequest`` JSON line."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._out = _JsonLinesFile(path)

    @property
    def path(self) -> str:
        return self._out.path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        try:
            self._out.write(otlp_json_line(encode_spans(spans)))
        except Exception:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._out.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class OtlpJsonFileMetricExporter(MetricExporter):
    """Writes each metrics collection as one ``ExportMetricsServiceRequest`` JSON line."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self._out = _JsonLinesFile(path)

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        try:
            self._out.write(otlp_json_line(encode_metrics(metrics_data)))
        except Exception:
            return MetricExportResult.FAILURE
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._out.close()


class OtlpJsonFileLogExporter(LogRecordExporter):
    """Writes each batch of log records as one ``ExportLogsServiceRequest`` JSON line."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._out = _JsonLinesFile(path)

    @property
    def path(self) -> str:
        return self._out.path

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        if not batch:
            return LogRecordExportResult.SUCCESS
        try:
            self._out.write(otlp_json_line(encode_logs(batch)))
        except Exception:
            return LogRecordExportResult.FAILURE
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        self._out.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
