"""The wrapper around botocore's ``BaseClient._make_api_call`` for the Bedrock Runtime.

Every botocore operation goes through ``_make_api_call(operation_name, api_params)``, looked
up on the client at call time, so clients created before ``instrument()`` are audited too.
Only four operations of the ``bedrock-runtime`` service are model calls (``Converse``,
``ConverseStream``, ``InvokeModel``, ``InvokeModelWithResponseStream``); every other call of
every other AWS service passes through after one dictionary lookup.

Results reach the caller as botocore returns them, with two transparent substitutions: a
response stream behind a proxy that ends the span exactly once, and an ``InvokeModel``
body, read here, handed back as a fresh ``StreamingBody`` over the same bytes.

``traceparent`` (and baggage, per the configured propagators) goes out with the model call,
added by a ``before-send`` handler, that is after botocore has signed the request: the header
is not part of the SigV4 signature, so an HTTP instrumentation that rewrites it later cannot
break the signature, and AWS ignores headers that are not signed.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import propagate
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from otel_llm_audit import _guard
from otel_llm_audit.emitter.spans import Emitter, LLMCallSpan
from otel_llm_audit.errors import BudgetExceededError
from otel_llm_audit.instrumentation.bedrock import _capture
from otel_llm_audit.instrumentation.call_scope import CallScope
from otel_llm_audit.instrumentation.streams import IterableStreamProxy
from otel_llm_audit.records import LLMCall

_SERVICE = "bedrock-runtime"
#: operation -> (streams?, resolver)
_OPERATIONS: dict[str, tuple[bool, Callable[[LLMCall, _capture.BedrockCallState], None]]] = {
    "Converse": (False, _capture.resolve_converse),
    "ConverseStream": (True, _capture.resolve_converse),
    "InvokeModel": (False, _capture.resolve_invoke),
    "InvokeModelWithResponseStream": (True, _capture.resolve_invoke),
}


class _Active:
    emitter: Emitter | None = None


ACTIVE = _Active()

_servers: weakref.WeakKeyDictionary[Any, tuple[str | None, int | None]] = weakref.WeakKeyDictionary()

#: The context of the audited model call being sent on this thread or task, for the
#: ``before-send`` handler; unset for every other AWS call.
_SENDING: contextvars.ContextVar[Any] = contextvars.ContextVar("otel_llm_audit_bedrock_sending", default=None)
_HANDLER_ID = "otel-llm-audit-traceparent"
_with_handler: weakref.WeakSet[Any] = weakref.WeakSet()


def _inject_trace_headers(request: Any = None, **_: Any) -> None:
    """botocore ``before-send``: the audited call's ``traceparent``, after signing (see module doc)."""
    ctx = _SENDING.get()
    if ctx is None or request is None:
        return
    try:
        propagate.inject(request.headers, context=ctx)
    except Exception as err:
        _guard.report_internal_error("bedrock.propagate", err)


def _ensure_handler(client: Any) -> None:
    try:
        if client in _with_handler:
            return
        client.meta.events.register("before-send.bedrock-runtime", _inject_trace_headers, unique_id=_HANDLER_ID)
        _with_handler.add(client)
    except Exception as err:  # no traceparent for this client; the call is still recorded
        _guard.report_internal_error("bedrock.propagate", err)


def _server_of(client: Any) -> tuple[str | None, int | None]:
    try:
        cached = _servers.get(client)
    except TypeError:
        cached = None
    if cached is not None:
        return cached
    url = urlsplit(str(getattr(getattr(client, "meta", None), "endpoint_url", "") or ""))
    host = url.hostname
    port = url.port or (443 if url.scheme == "https" else 80 if url.scheme == "http" else None)
    found = (host, port)
    with contextlib.suppress(TypeError):
        _servers[client] = found
    return found


def _service_of(client: Any) -> str | None:
    model = getattr(getattr(client, "meta", None), "service_model", None)
    return getattr(model, "service_name", None)


def _start(emitter: Emitter, client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCallSpan | None:
    operation = args[0] if args else kwargs.get("operation_name")
    if not isinstance(operation, str):
        return None
    found = _OPERATIONS.get(operation)
    if found is None or _service_of(client) != _SERVICE or not is_instrumentation_enabled():
        return None
    streams, resolver = found
    params = _capture.snapshot_params(args[1] if len(args) > 1 else kwargs.get("api_params"))
    body = _capture.parse_body(params.get("body")) if operation.startswith("Invoke") else None
    state = _capture.BedrockCallState(operation, params, body)
    host, port = _server_of(client)
    model = params.get("modelId")
    record = LLMCall(
        operation="chat",
        provider="aws.bedrock",
        request_model=model if isinstance(model, str) else None,
        server_address=host,
        server_port=port,
        stream=streams,
    )
    guardrail = params.get("guardrailConfig")
    guardrail_id = (
        guardrail.get("guardrailIdentifier") if isinstance(guardrail, dict) else params.get("guardrailIdentifier")
    )
    record.guardrail_id = guardrail_id if isinstance(guardrail_id, str) else None
    record.resolver = lambda rec: resolver(rec, state)
    call = emitter.start_llm_call(record, enforce=True)
    if call is not None:
        call.state = state
    return call


def _finish(call: LLMCallSpan, result: Any) -> Any:
    state: _capture.BedrockCallState = call.state
    try:
        if not isinstance(result, dict):
            state.response = result
            call.end()
            return result
        metadata = result.get("ResponseMetadata")
        if state.operation == "ConverseStream" and result.get("stream") is not None:
            call.record.provider_request_id = _capture._request_id(result)
            result["stream"] = IterableStreamProxy(result["stream"], call, state.chunks.append)
            return result
        if state.operation == "InvokeModelWithResponseStream" and result.get("body") is not None:
            call.record.provider_request_id = _capture._request_id(result)
            result["body"] = IterableStreamProxy(result["body"], call, state.chunks.append)
            return result
        if state.operation == "InvokeModel":
            body = result.get("body")
            if body is not None and hasattr(body, "read"):
                data = body.read()  # the caller's own read would do this; they get the same bytes
                result["body"] = _streaming_body(data)
                state.response = {"_llm_audit_body": data, "ResponseMetadata": metadata}
                call.end()
                return result
        state.response = result
        call.end()
    except Exception as err:
        _guard.report_internal_error("bedrock.finish", err)
        call.end()
    return result


def _streaming_body(data: bytes) -> Any:
    from botocore.response import StreamingBody

    return StreamingBody(io.BytesIO(data), len(data))


def make_wrapper() -> Callable[..., Any]:
    """A wrapt wrapper for ``botocore.client.BaseClient._make_api_call``."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        emitter = ACTIVE.emitter
        if emitter is None or (args and args[0] not in _OPERATIONS):
            return wrapped(*args, **kwargs)
        try:
            call = _start(emitter, instance, args, kwargs)
        except BudgetExceededError:
            raise  # a budget that enforces refused the call: the application is told, on purpose
        except Exception as err:
            _guard.report_internal_error("bedrock.start", err)
            call = None
        if call is None:
            return wrapped(*args, **kwargs)
        _ensure_handler(instance)
        with CallScope(call, _SENDING):
            result = wrapped(*args, **kwargs)
        return _finish(call, result)

    return wrapper
