"""Stream proxies that end the call's span exactly once, whatever the caller does.

The caller gets the SDK's own stream object behind a transparent proxy (``isinstance``,
helper methods and attributes all work). The span ends when the stream is exhausted, raises,
is closed, leaves its ``with`` block, or is garbage collected without any of these: the
peers' classic bug is ending it only on ``StopIteration``, which leaks spans on ``break``.

Per chunk the proxy does O(1) work: count it, timestamp the first one, and keep a reference
for the capture module to assemble later, off the caller's thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from otel_llm_audit.emitter.spans import LLMCallSpan
from otel_llm_audit.instrumentation._proxy import ObjectProxy

ChunkSink = Callable[[Any], None]


class _StreamState:
    """Shared by the sync and async proxies: the call, and the list the chunks go to."""

    __slots__ = ("call", "complete", "sink", "waiting_first")

    def __init__(self, call: LLMCallSpan, sink: ChunkSink) -> None:
        self.call = call
        self.sink = sink  # a list's append: cannot fail, costs ~50 ns
        self.complete = False
        self.waiting_first = True

    def first_chunk(self) -> None:
        self.waiting_first = False
        self.call.record.first_chunk_ns = time.time_ns()

    def finish(self, exc: BaseException | None = None, *, complete: bool = False) -> None:
        if complete:
            self.complete = True
        if not self.call.ended and not self.complete and exc is None:
            self.call.record.notes.append("stream closed before its end")
        self.call.end(exc)


class SyncStreamProxy(ObjectProxy):
    """Wraps a synchronous SDK stream (an iterator of chunks)."""

    def __init__(self, wrapped: Any, call: LLMCallSpan, sink: ChunkSink) -> None:
        super().__init__(wrapped)
        self._self_state = _StreamState(call, sink)

    def __iter__(self) -> SyncStreamProxy:
        return self

    def __next__(self) -> Any:
        state = self._self_state
        try:
            chunk = self.__wrapped__.__next__()
        except StopIteration:
            state.finish(complete=True)
            raise
        except BaseException as exc:
            state.finish(exc)
            raise
        if state.waiting_first:
            state.first_chunk()
        state.sink(chunk)
        return chunk

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_state.finish()

    @property
    def response(self) -> Any:
        return _closing_response(self.__wrapped__, self._self_state)

    def __enter__(self) -> SyncStreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        # An exception raised by the application inside the block is not the model call's
        # failure; one raised by the stream itself already ended the span in __next__.
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_state.finish()

    def __del__(self) -> None:
        _finish_abandoned(self)


class AsyncStreamProxy(ObjectProxy):
    """Wraps an asynchronous SDK stream (an async iterator of chunks)."""

    def __init__(self, wrapped: Any, call: LLMCallSpan, sink: ChunkSink) -> None:
        super().__init__(wrapped)
        self._self_state = _StreamState(call, sink)

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        state = self._self_state
        try:
            chunk = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            state.finish(complete=True)
            raise
        except BaseException as exc:
            state.finish(exc)
            raise
        if state.waiting_first:
            state.first_chunk()
        state.sink(chunk)
        return chunk

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            self._self_state.finish()

    async def aclose(self) -> Any:
        inner = getattr(self.__wrapped__, "aclose", None) or self.__wrapped__.close
        try:
            return await inner()
        finally:
            self._self_state.finish()

    @property
    def response(self) -> Any:
        return _closing_response(self.__wrapped__, self._self_state)

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_state.finish()

    def __del__(self) -> None:
        _finish_abandoned(self)


class _ClosingResponse(ObjectProxy):
    """The stream's HTTP response: closing it ends the stream, so it ends the span too.

    The SDK's helpers (``chat.completions.stream()``, ``responses.stream()``) keep
    ``stream.response`` and close *it* when their ``with`` block exits, never the stream.
    """

    def __init__(self, wrapped: Any, state: _StreamState) -> None:
        super().__init__(wrapped)
        self._self_state = state

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_state.finish()

    async def aclose(self) -> Any:
        try:
            return await self.__wrapped__.aclose()
        finally:
            self._self_state.finish()


def _closing_response(stream: Any, state: _StreamState) -> Any:
    response = stream.response
    return response if response is None else _ClosingResponse(response, state)


def _finish_abandoned(proxy: Any) -> None:
    """Garbage collection of a stream nobody finished: end its span with what arrived."""
    try:
        state = proxy._self_state
    except Exception:
        return
    try:
        if not state.call.ended:
            state.call.record.notes.append("stream garbage-collected before its end")
            state.call.end(None)
    except Exception:  # interpreter shutdown and the like
        pass


class IterableStreamProxy(ObjectProxy):
    """Wraps a stream that is iterable but not an iterator (botocore's ``EventStream``).

    Each ``iter()`` of the stream reads on from where the body is; the span ends when one
    iteration runs out or raises, when the stream is closed, or when it is garbage collected.
    """

    def __init__(self, wrapped: Any, call: LLMCallSpan, sink: ChunkSink) -> None:
        super().__init__(wrapped)
        self._self_state = _StreamState(call, sink)

    def __iter__(self) -> Any:
        state = self._self_state
        iterator = iter(self.__wrapped__)
        try:
            while True:
                try:
                    event = next(iterator)
                except StopIteration:
                    state.finish(complete=True)
                    return
                except BaseException as exc:
                    state.finish(exc)
                    raise
                if state.waiting_first:
                    state.first_chunk()
                state.sink(event)
                yield event
        finally:  # the caller broke out of its loop: the generator is closed
            if not state.call.ended:
                state.finish()

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_state.finish()

    def __del__(self) -> None:
        _finish_abandoned(self)
