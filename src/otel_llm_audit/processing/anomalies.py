"""Anomalies within one agent run: runaway loops, tool storms, overlong and token-hungry runs.

An agent that loops costs money and may be the visible end of a prompt injection; an auditor
needs to see it on the span where it happened, not in next month's invoice. This rule counts,
per run, what the spans of our instrumentation say, and adds one ``llm_audit.policy`` event
(category ``anomaly``, action ``flagged``) to the first span that goes past a limit
(:class:`~otel_llm_audit.processing.budget_config.AnomalyLimits`; 0 turns a rule off):

``model_calls``
    more than ``max_model_calls`` model calls: the event is on the (N+1)-th.
``tool_calls``
    more than ``max_tool_calls`` tool calls: the event is on the (N+1)-th.
``repeated_tool_call``
    the same tool with the same arguments ``repeated_tool_call`` (K) times in a row: the event
    is on the K-th. "In a row" counts tool calls only, in the order they end: the model calls
    between them (the loop's other half) do not break the streak, any other tool call does.
``run_tokens``
    more than ``max_run_tokens`` input plus output tokens: the event is on the call whose tokens
    took the sum past the limit.
``run_duration``
    a span of the run ending more than ``max_run_seconds`` after the earliest start seen in the
    run (span timestamps, not the clock of this process).

Each rule fires at most once per run: a loop that goes on is one finding, not one per call.
The event says what was counted when it fired (``llm_audit.anomaly.observed``), the limit and
the rule; the tool rules add ``gen_ai.tool.name``.

**A run is one trace.** Agent frameworks give a run no id that every span carries, but every
span of one invocation shares its trace. The consequence: a workflow resumed in a new trace
(LangGraph after an interrupt, on the next request; an OpenAI Agents run continued later) is
counted afresh, and a single trace that holds several agent runs (a batch job under one root
span) is counted as one.

**What is counted.** Only spans of this package's instrumentation (instrumentation scope
``otel_llm_audit...``): other instrumentations' spans reach this stage only in some set-ups
(with the masking stage or the store), and a second instrumentation of the same provider would
count each call twice. Our instrumentation itself records each model call once: a framework's
LLM span (LangChain, the OpenAI Agents SDK) is only made when no provider span covers the call.

* A *model call* is a generation: ``gen_ai.operation.name`` ``chat``, ``text_completion`` or
  ``generate_content``, whatever its outcome (a failing call that is retried in a loop is the
  runaway this is about). Embeddings are not: a retrieval step embeds a query, an ingestion job
  thousands of chunks, neither is a turn of an agent's loop. Fetching a stored response
  (``fetch_response``) is not a call to the model either.
* The *tokens* of a run are ``gen_ai.usage.input_tokens`` plus ``gen_ai.usage.output_tokens``
  over its model calls and its embeddings (they are spent too), and over no other span: usage
  on an agent or workflow span would be a sum of its calls, counted once already.
* A *tool call* is an ``execute_tool`` span that is not the server side of an MCP
  ``tools/call`` (kind ``SERVER``): that is the handling of a call the client's run already
  counted, and a server does not judge its clients' runs. A client ``tools/call`` inside a
  framework's tool step is folded into that step's span, so it is one call, not two.

**Same arguments.** This stage runs before masking, so in content modes ``raw`` and ``masked``
the span carries ``gen_ai.tool.call.arguments`` as the JSON text it recorded: compared as
canonical JSON (keys sorted), so a model that reorders keys repeats itself all the same; text
cut at ``max_content_chars`` is compared as it is. In mode ``hash`` the span carries the
canonical SHA-256 of the arguments in ``llm_audit.content.hashes``, which is compared. In mode
``none`` (and on a span whose content was withheld, or a framework that does not report
arguments) the arguments are unknown: such a call breaks the streak and never completes one.
Comparing the tool name alone would flag a normal agent that asks for the weather in three
cities at once, and the event would claim a repetition nobody saw; runaway loops still meet
``max_tool_calls``. Only a 16-byte digest of the tool name and arguments is kept per run.

**Bounded memory.** At most ``max_runs`` runs (10,000) are tracked, the least recently active
forgotten first, and a run with no span for ``idle_seconds`` (an hour) is forgotten: a run
that comes back after that is counted afresh (and may be flagged again).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanKind

from otel_llm_audit import semconv
from otel_llm_audit.emitter.handoff import SCOPE_PREFIX
from otel_llm_audit.emitter.operations import policy_event_attributes
from otel_llm_audit.processing.budget_config import AnomalyLimits
from otel_llm_audit.records import PolicyEvent

#: ``llm_audit.policy.category`` of every event of this rule.
CATEGORY = "anomaly"
#: ``llm_audit.policy.source``: the component that made the decision.
SOURCE = "otel_llm_audit.anomalies"

_OPS = semconv.GenAiOperationNameValues
#: Operations that are a model call (a generation).
MODEL_OPERATIONS = frozenset({_OPS.CHAT, _OPS.TEXT_COMPLETION, _OPS.GENERATE_CONTENT})
#: Operations whose tokens count towards the run's tokens.
TOKEN_OPERATIONS = MODEL_OPERATIONS | {_OPS.EMBEDDINGS}

_RULES = semconv.LlmAuditAnomalyRuleValues
#: Bits of ``_Run.fired``, in the order events are added when several fire on one span.
_ORDER = (_RULES.MODEL_CALLS, _RULES.TOOL_CALLS, _RULES.REPEATED_TOOL_CALL, _RULES.RUN_TOKENS, _RULES.RUN_DURATION)
_BIT = {rule: 1 << index for index, rule in enumerate(_ORDER)}

DEFAULT_MAX_RUNS = 10_000
DEFAULT_IDLE_SECONDS = 3600.0


class _Run:
    """What one run (trace) has done so far."""

    __slots__ = ("fired", "last_tool", "model_calls", "seen", "start_ns", "streak", "tokens", "tool_calls")

    def __init__(self) -> None:
        self.model_calls = 0
        self.tool_calls = 0
        self.tokens = 0
        self.start_ns: int | None = None
        #: Digest of the last tool call's name and arguments (``None``: arguments unknown).
        self.last_tool: bytes | None = None
        self.streak = 0
        #: Bits of the rules that already fired in this run.
        self.fired = 0
        #: The rule's clock when a span of the run was last seen.
        self.seen = 0.0


class AnomalyRule:
    """Counts model calls, tool calls, repeated tool calls, tokens and time per run (trace).

    ``clock`` (monotonic seconds) only decides when an idle run is forgotten; ``max_runs`` and
    ``idle_seconds`` bound the memory (see the module docstring).
    """

    name = "anomalies"

    def __init__(
        self,
        limits: AnomalyLimits,
        *,
        max_runs: int = DEFAULT_MAX_RUNS,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self._max_runs = max(1, max_runs)
        self._idle = idle_seconds
        self._clock = clock
        self._runs: OrderedDict[int, _Run] = OrderedDict()
        self._lock = threading.Lock()
        if hasattr(os, "register_at_fork"):  # a lock held by the parent's worker at fork time
            os.register_at_fork(after_in_child=self._after_fork)
        self._active = any(
            getattr(limits, f)
            for f in ("max_model_calls", "max_tool_calls", "repeated_tool_call", "max_run_tokens", "max_run_seconds")
        )

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    @property
    def tracked_runs(self) -> int:
        """Runs currently remembered."""
        return len(self._runs)

    def observe(self, span: ReadableSpan) -> Sequence[Event]:
        if not self._active or not _ours(span):
            return ()
        context = span.context
        if context is None or not context.trace_id:
            return ()
        attrs: Mapping[str, Any] = span.attributes or {}
        operation = attrs.get(semconv.GEN_AI_OPERATION_NAME)
        is_model = operation in MODEL_OPERATIONS
        tokens = _tokens(attrs) if operation in TOKEN_OPERATIONS else 0
        is_tool = operation == _OPS.EXECUTE_TOOL and span.kind is not SpanKind.SERVER
        tool_name = attrs.get(semconv.GEN_AI_TOOL_NAME) if is_tool else None
        tool_name = tool_name if isinstance(tool_name, str) else None
        tool_key = _tool_key(tool_name, attrs) if is_tool and self.limits.repeated_tool_call else None
        start, end = _int_or_none(span.start_time), _int_or_none(span.end_time)

        limits = self.limits
        found: list[tuple[str, float, float]] = []
        with self._lock:
            run = self._run(context.trace_id)
            if is_model:
                run.model_calls += 1
                if limits.max_model_calls and run.model_calls > limits.max_model_calls:
                    found.append((_RULES.MODEL_CALLS, run.model_calls, limits.max_model_calls))
            if is_tool:
                run.tool_calls += 1
                if limits.max_tool_calls and run.tool_calls > limits.max_tool_calls:
                    found.append((_RULES.TOOL_CALLS, run.tool_calls, limits.max_tool_calls))
                if tool_key is not None and tool_key == run.last_tool:
                    run.streak += 1
                else:
                    run.streak = 1 if tool_key is not None else 0
                run.last_tool = tool_key
                if limits.repeated_tool_call and run.streak >= limits.repeated_tool_call:
                    found.append((_RULES.REPEATED_TOOL_CALL, run.streak, limits.repeated_tool_call))
            if tokens:
                run.tokens += tokens
                if limits.max_run_tokens and run.tokens > limits.max_run_tokens:
                    found.append((_RULES.RUN_TOKENS, run.tokens, limits.max_run_tokens))
            if start is not None and (run.start_ns is None or start < run.start_ns):
                run.start_ns = start
            if limits.max_run_seconds and end is not None and run.start_ns is not None:
                seconds = (end - run.start_ns) / 1e9
                if seconds > limits.max_run_seconds:
                    found.append((_RULES.RUN_DURATION, seconds, limits.max_run_seconds))
            found = [item for item in found if not run.fired & _BIT[item[0]]]
            for rule, _, _ in found:
                run.fired |= _BIT[rule]
        tool_rules = (_RULES.TOOL_CALLS, _RULES.REPEATED_TOOL_CALL)
        return [
            _event(rule, observed, limit, end, tool_name if rule in tool_rules else None)
            for rule, observed, limit in found
        ]

    def shutdown(self) -> None:
        with self._lock:
            self._runs.clear()

    def _run(self, trace_id: int) -> _Run:
        """The run's state, made most recent; idle and surplus runs are forgotten (lock held)."""
        runs = self._runs
        now = self._clock()
        while runs:  # least recently active first: stop at the first one still active
            oldest = next(iter(runs.values()))
            if now - oldest.seen <= self._idle:
                break
            runs.popitem(last=False)
        run = runs.get(trace_id)
        if run is None:
            run = runs[trace_id] = _Run()
            while len(runs) > self._max_runs:
                runs.popitem(last=False)
        else:
            runs.move_to_end(trace_id)
        run.seen = now
        return run


def _ours(span: ReadableSpan) -> bool:
    scope = span.instrumentation_scope
    return scope is not None and isinstance(scope.name, str) and scope.name.startswith(SCOPE_PREFIX)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _count(value: Any) -> int:
    """A token count as recorded; anything odd (text, negative, NaN) counts as none."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and math.isfinite(value):
        return max(int(value), 0)
    return 0


def _tokens(attrs: Mapping[str, Any]) -> int:
    return _count(attrs.get(semconv.GEN_AI_USAGE_INPUT_TOKENS)) + _count(attrs.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS))


def _tool_key(tool_name: str | None, attrs: Mapping[str, Any]) -> bytes | None:
    """A digest of the tool's name and arguments; ``None`` when the arguments are unknown."""
    arguments = _arguments(attrs)
    if arguments is None:
        return None
    digest = hashlib.blake2b(digest_size=16)
    digest.update((tool_name or "").encode("utf-8", "surrogatepass"))
    digest.update(b"\x00")
    digest.update(arguments.encode("utf-8", "surrogatepass"))
    return digest.digest()


def _arguments(attrs: Mapping[str, Any]) -> str | None:
    """The arguments as canonical JSON (raw, masked), or their recorded hashes (hash mode)."""
    text = attrs.get(semconv.GEN_AI_TOOL_CALL_ARGUMENTS)
    if isinstance(text, str):
        try:
            value = json.loads(text)
        except ValueError:  # cut at max_content_chars (or not JSON): the text as it is
            return "t:" + text
        return "j:" + json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    hashes = attrs.get(semconv.LLM_AUDIT_CONTENT_HASHES)
    if isinstance(hashes, str):
        try:
            recorded = json.loads(hashes)
        except ValueError:
            return None
        found = recorded.get(semconv.GEN_AI_TOOL_CALL_ARGUMENTS) if isinstance(recorded, dict) else None
        if found is not None:
            return "h:" + json.dumps(found, sort_keys=True, separators=(",", ":"))
    return None


def _event(rule: str, observed: float, limit: float, timestamp: int | None, tool_name: str | None) -> Event:
    attrs = policy_event_attributes(
        PolicyEvent(category=CATEGORY, action=semconv.LlmAuditPolicyActionValues.FLAGGED, source=SOURCE, name=rule)
    )
    attrs[semconv.LLM_AUDIT_ANOMALY_RULE] = rule
    attrs[semconv.LLM_AUDIT_ANOMALY_OBSERVED] = float(observed)
    attrs[semconv.LLM_AUDIT_ANOMALY_LIMIT] = float(limit)
    if tool_name is not None:
        attrs[semconv.GEN_AI_TOOL_NAME] = tool_name
    return Event(semconv.EVENT_LLM_AUDIT_POLICY, attrs, timestamp)
