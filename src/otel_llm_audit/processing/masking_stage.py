"""The masking stage of the audit pipeline: presidio on its own thread, with a time limit.

The audit processor's worker hands each batch of finished spans to :meth:`MaskingStage.process`
and gets the masked copies back. Detection runs on a thread of its own so that a value that
sends a pattern into catastrophic backtracking cannot stall the pipeline: when no span of a
batch finishes masking within ``timeout`` seconds, the rest of the batch is withheld (fail
closed, ``llm_audit.redaction.failure=timeout``), and while that detection is still stuck
later batches are withheld at once rather than queued behind it.

presidio is imported and warmed up on that thread as well (a second or two), so
``configure()`` and the application's start-up do not wait for it; spans that end meanwhile
wait in the queue. The policy itself is loaded and validated before, on the caller's thread,
so a broken policy is still a start-up error.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics
from opentelemetry.sdk.trace import ReadableSpan

from otel_llm_audit import _guard, semconv
from otel_llm_audit._version import __version__
from otel_llm_audit.config import Settings
from otel_llm_audit.processing.redaction import SpanRedactor

if TYPE_CHECKING:
    from otel_llm_audit.processing.masking import Masker, MaskingPolicy

logger = logging.getLogger("otel_llm_audit")

_FAILURE = semconv.LlmAuditRedactionFailureValues
#: How long the first batch may wait for presidio to start before it is withheld.
_BUILD_WAIT_S = 120.0
_LOG_INTERVAL_S = 10.0


class _Job:
    """One batch on its way through the masking thread."""

    __slots__ = ("cancelled", "finished", "results", "spans")

    def __init__(self, spans: Sequence[ReadableSpan]) -> None:
        self.spans = spans
        self.results: list[ReadableSpan] = []
        self.cancelled = False
        self.finished = threading.Event()

    def run(self, redactor: SpanRedactor) -> None:
        try:
            for span in self.spans:
                if self.cancelled:
                    return
                try:
                    masked = redactor.redact(span)
                except Exception as err:  # a bug of ours: withhold, never export unmasked
                    _guard.report_internal_error("masking.redact", err)
                    masked = redactor.withhold(span, _FAILURE.ERROR)
                self.results.append(masked)
        finally:
            self.finished.set()


class MaskingStage:
    """Masks batches of spans on a dedicated thread; withholds what it cannot mask in time."""

    def __init__(
        self,
        fallback: SpanRedactor,
        build: Callable[[], SpanRedactor],
        *,
        timeout: float = 2.0,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        #: Withholds without detection: while presidio starts, if it fails, when the queue is full.
        self.fallback = fallback
        self._build = build
        self._redactor: SpanRedactor | None = None
        self._ready = threading.Event()
        self._timeout = timeout
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._current: _Job | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._failures: Counter[str] = Counter()
        self._last_log = 0.0
        self._metrics = _StageMetrics(self, meter_provider)
        self._start()

    @classmethod
    def from_settings(cls, settings: Settings, meter_provider: metrics.MeterProvider | None = None) -> MaskingStage:
        """The stage ``settings`` ask for; a policy it cannot honour raises :class:`MaskingConfigError`.

        Loading and validating the policy (and the pseudonym key) happens here, on the
        caller's thread; presidio starts on the stage's own thread.
        """
        from otel_llm_audit.processing.masking import Masker, MaskingPolicy

        policy = MaskingPolicy.load(settings.masking_policy or None)
        key = Masker.pseudonym_key(policy)  # a missing or short key is a start-up error
        # Import presidio (and spaCy, pydantic.v1, tldextract, ...) here, on the caller's thread,
        # before the stage's thread starts: on Python 3.11 and older, two threads importing the
        # same modules at once can fail with KeyError (CPython bpo-38884), and the application
        # (or opentelemetry-instrument loading other instrumentors) imports some of them too.
        # About a second, once, at start-up; building and warming the analyzer stays off-thread.
        from otel_llm_audit.processing.masking import recognizers  # noqa: F401

        def build() -> SpanRedactor:
            return SpanRedactor(policy, shared_masker(policy, key))

        return cls(SpanRedactor(policy), build, timeout=settings.masking_timeout, meter_provider=meter_provider)

    @property
    def policy_version(self) -> str:
        return self.fallback.policy_version

    @property
    def redactor(self) -> SpanRedactor | None:
        """The working redactor, once presidio is up (``None`` before, or if it failed)."""
        return self._redactor

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until presidio has started (or failed to); True if masking is available."""
        self._ready.wait(timeout)
        return self._redactor is not None

    @property
    def failure_counts(self) -> dict[str, int]:
        """Spans withheld so far, by reason."""
        return dict(self._failures)

    # -------------------------------------------------------------------------------------

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="otel-llm-audit-masking", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if not self._ready.is_set():
            try:
                self._redactor = self._build()
            except Exception as err:
                logger.error(
                    "otel-llm-audit: the masker could not start (%s: %s); every span's content is withheld "
                    "(llm_audit.redaction.status=failed) until this is fixed",
                    type(err).__name__,
                    err,
                )
            finally:
                self._ready.set()
        while True:
            job = self._jobs.get()
            if job is None:
                return
            job.run(self._redactor or self.fallback)

    def _alive(self) -> bool:
        thread = self._thread
        if thread is None or not thread.is_alive():  # after fork() the thread is gone in the child
            if self._stopped:
                return False
            self._current = None  # a batch the parent was masking will never finish here
            self._start()
        return True

    # -------------------------------------------------------------------------------------

    def process(self, spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
        """The masked copies of ``spans``, in order; called from the pipeline's worker."""
        if not spans:
            return []
        if not self._ready.wait(_BUILD_WAIT_S) or self._redactor is None:
            return self._withhold_all(spans, _FAILURE.UNAVAILABLE)
        if not self._alive():
            return self._withhold_all(spans, _FAILURE.UNAVAILABLE)
        current = self._current
        if current is not None and not current.finished.is_set():
            return self._withhold_all(spans, _FAILURE.TIMEOUT)  # still stuck in an earlier batch
        job = _Job(spans)
        self._current = job
        self._jobs.put(job)
        done = 0
        while not job.finished.wait(self._timeout):
            progress = len(job.results)
            if progress == done:  # not one span finished within the timeout
                job.cancelled = True
                break
            done = progress
        results = list(job.results)
        self._metrics.count(results)
        if len(results) < len(spans):
            results += self._withhold_all(spans[len(results) :], _FAILURE.TIMEOUT)
        return results

    def withhold(self, span: ReadableSpan, failure: str) -> ReadableSpan:
        """``span`` with its content withheld (no detection): safe on any thread."""
        result = self.fallback.withhold(span, failure)
        self._note_failure(failure, 1)
        self._metrics.count((result,))
        return result

    def _withhold_all(self, spans: Sequence[ReadableSpan], failure: str) -> list[ReadableSpan]:
        results = [self.fallback.withhold(span, failure) for span in spans]
        self._note_failure(failure, len(spans))
        self._metrics.count(results)
        return results

    def _note_failure(self, failure: str, n: int) -> None:
        self._failures[failure] += n
        now = time.monotonic()
        if now - self._last_log >= _LOG_INTERVAL_S:
            self._last_log = now
            logger.warning(
                "otel-llm-audit: masking withheld the content of %d span(s) (%s); totals so far: %s",
                n,
                failure,
                dict(self._failures),
            )

    def shutdown(self) -> None:
        """Stop the masking thread (a stuck detection is left to die with the process)."""
        self._stopped = True
        self._jobs.put(None)
        thread = self._thread
        if thread is not None and self._ready.is_set():
            thread.join(timeout=1)


class _StageMetrics:
    """``llm_audit.redaction.spans`` by outcome; cache hits and misses read when collected."""

    def __init__(self, stage: MaskingStage, meter_provider: metrics.MeterProvider | None) -> None:
        meter = metrics.get_meter("otel_llm_audit", __version__, meter_provider, schema_url=semconv.SCHEMA_URL)
        self._spans = meter.create_counter(
            semconv.METRIC_LLM_AUDIT_REDACTION_SPANS,
            unit=semconv.METRIC_LLM_AUDIT_REDACTION_SPANS_UNIT,
            description=semconv.METRIC_LLM_AUDIT_REDACTION_SPANS_DESCRIPTION,
        )
        self._stage = stage
        meter.create_observable_counter(
            semconv.METRIC_LLM_AUDIT_REDACTION_CACHE_LOOKUPS,
            callbacks=[self._cache_lookups],
            unit=semconv.METRIC_LLM_AUDIT_REDACTION_CACHE_LOOKUPS_UNIT,
            description=semconv.METRIC_LLM_AUDIT_REDACTION_CACHE_LOOKUPS_DESCRIPTION,
        )

    def count(self, spans: Sequence[ReadableSpan]) -> None:
        try:
            for span in spans:
                attrs = span.attributes or {}
                status = attrs.get(semconv.LLM_AUDIT_REDACTION_STATUS)
                if status is None:
                    continue
                dims: dict[str, Any] = {semconv.LLM_AUDIT_REDACTION_STATUS: status}
                failure = attrs.get(semconv.LLM_AUDIT_REDACTION_FAILURE)
                if failure is not None:
                    dims[semconv.LLM_AUDIT_REDACTION_FAILURE] = failure
                self._spans.add(1, dims)
        except Exception as err:
            _guard.report_internal_error("masking.metrics", err)

    def _cache_lookups(self, options: Any) -> list[metrics.Observation]:
        redactor = self._stage.redactor
        masker = redactor.masker if redactor is not None else None
        if masker is None:
            return []
        result = semconv.LLM_AUDIT_REDACTION_CACHE_RESULT
        values = semconv.LlmAuditRedactionCacheResultValues
        return [
            metrics.Observation(masker.cache_hits, {result: values.HIT}),
            metrics.Observation(masker.cache_misses, {result: values.MISS}),
        ]


_maskers: dict[tuple[str, bytes | None], Masker] = {}
_maskers_lock = threading.Lock()


def shared_masker(policy: MaskingPolicy, key: bytes | None) -> Masker:
    """One :class:`Masker` per policy version and key, shared by every pipeline of the process.

    Building one costs a second or two (presidio, warm-up); tests and applications that
    configure more than one pipeline should not pay it, nor keep two caches, twice.
    """
    from otel_llm_audit.processing.masking import Masker

    cache_key = (policy.version, key)
    with _maskers_lock:
        masker = _maskers.get(cache_key)
        if masker is None:
            masker = Masker(policy, pseudonym_key=key)
            _maskers[cache_key] = masker
    return masker
