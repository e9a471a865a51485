"""Direct vector-store searches as ``retrieval`` spans.

A LangChain retriever reports its runs through callbacks (the handler records them), but a
vector store searched directly (``store.similarity_search(query, k=4)``, the most common way to
use one) reports nothing: LangChain gives vector stores no callbacks. The documents such a
search hands to a model are as much a part of "what was sent" as a retriever's, so the search
methods of every ``VectorStore`` class are wrapped: those defined when we instrument and those
defined later (``__init_subclass__``), each class's own methods only.

One search gives one span: a search method that calls another (``similarity_search`` calling
``similarity_search_with_score``, the async default running the sync one in an executor) is
recorded once, by the outermost call, and a search made by a ``VectorStoreRetriever`` is left
to the retriever's span. A context variable set and reset within the same call marks "inside
a search"; the span is current for the search itself (an embeddings call it makes nests under
it), attached and detached in the same frame and task.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from typing import Any, cast

from wrapt import FunctionWrapper

from otel_llm_audit import _guard
from otel_llm_audit.emitter.operations import StepSpan
from otel_llm_audit.emitter.spans import Emitter
from otel_llm_audit.instrumentation.langchain import _mapping as mapping
from otel_llm_audit.records import Retrieval

logger = logging.getLogger("otel_llm_audit")

#: Search methods taking the query text first (``similarity_search_by_vector`` & co. take a
#: vector: nothing an auditor can read, and they are called by these in most stores).
SYNC_SEARCHES = (
    "similarity_search",
    "similarity_search_with_score",
    "similarity_search_with_relevance_scores",
    "max_marginal_relevance_search",
    "search",
)
ASYNC_SEARCHES = tuple(f"a{name}" for name in SYNC_SEARCHES)
_RETRIEVER_METHODS = ("_get_relevant_documents", "_aget_relevant_documents")

_searching: contextvars.ContextVar[bool] = contextvars.ContextVar("otel_llm_audit_vector_search", default=False)


class _Patches:
    """What is patched, to undo it exactly."""

    def __init__(self) -> None:
        self.emitter: Emitter | None = None
        self.originals: list[tuple[type, str, Any]] = []
        self.had_init_subclass = False
        self.init_subclass: Any = None
        self.vector_store: type | None = None


_STATE = _Patches()


def install(emitter: Emitter) -> None:
    """Wrap the search methods of every vector store class, now and as they are defined."""
    if _STATE.emitter is not None:
        return
    from langchain_core.vectorstores.base import VectorStore, VectorStoreRetriever

    _STATE.emitter = emitter
    _STATE.vector_store = VectorStore
    for cls in _with_subclasses(VectorStore):
        _patch_class(cls)
    for name in _RETRIEVER_METHODS:
        _patch(VectorStoreRetriever, name, _retriever_guard(name.startswith("_a")))
    _STATE.had_init_subclass = "__init_subclass__" in VectorStore.__dict__
    _STATE.init_subclass = VectorStore.__dict__.get("__init_subclass__")
    cast(Any, VectorStore).__init_subclass__ = classmethod(_on_new_subclass)


def uninstall() -> None:
    """Restore every method and the subclass hook."""
    if _STATE.emitter is None:
        return
    from langchain_core.vectorstores.base import VectorStore

    for cls, name, original in reversed(_STATE.originals):
        setattr(cls, name, original)
    _STATE.originals.clear()
    if _STATE.had_init_subclass:
        cast(Any, VectorStore).__init_subclass__ = _STATE.init_subclass
    else:
        del VectorStore.__init_subclass__
    _STATE.emitter = None


def _on_new_subclass(cls: Any, /, **kwargs: Any) -> None:
    """A vector store class defined after ``install``: wrap its own search methods too."""
    if _STATE.init_subclass is not None:  # VectorStore's own hook, if a release defines one
        _STATE.init_subclass.__get__(None, cls)(**kwargs)
    else:
        base: Any = _STATE.vector_store or object
        super(base, cls).__init_subclass__(**kwargs)
    try:
        if _STATE.emitter is not None:
            _patch_class(cls)
    except Exception as err:
        _guard.report_internal_error("langchain.vectorstore_patch", err)


def _with_subclasses(root: type) -> list[type]:
    found: list[type] = [root]
    for cls in found:
        subclasses: list[type] = cls.__subclasses__()
        found.extend(sub for sub in subclasses if sub not in found)
    return found


def _patch_class(cls: type) -> None:
    for name in SYNC_SEARCHES:
        if name in cls.__dict__:
            _patch(cls, name, _search_wrapper)
    for name in ASYNC_SEARCHES:
        if name in cls.__dict__:
            _patch(cls, name, _async_search_wrapper)


def _patch(cls: type, name: str, wrapper: Callable[..., Any]) -> None:
    original = cls.__dict__[name]
    if isinstance(original, FunctionWrapper):  # ours already, or another tool's: leave it
        return
    setattr(cls, name, FunctionWrapper(original, wrapper))
    _STATE.originals.append((cls, name, original))


def _start(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> StepSpan | None:
    emitter = _STATE.emitter
    if emitter is None or _searching.get():
        return None
    try:
        query = args[0] if args else kwargs.get("query")
        k = kwargs.get("k", args[1] if len(args) > 1 else None)
        record = Retrieval(
            data_source_id=type(instance).__name__,
            query=query if isinstance(query, str) else None,
            top_k=k if isinstance(k, int) and not isinstance(k, bool) else None,
        )
        return emitter.start_step(record)
    except Exception as err:
        _guard.report_internal_error("langchain.vectorstore_start", err)
        return None


def _set_documents(step: StepSpan, result: Any) -> None:
    try:
        record = step.record
        if isinstance(record, Retrieval):
            record.documents = _documents(result)
    except Exception as err:
        _guard.report_internal_error("langchain.vectorstore_end", err)


def _documents(result: Any) -> list[dict[str, Any]]:
    """Documents, or ``(document, score)`` pairs, as ``gen_ai.retrieval.documents`` items."""
    items: list[dict[str, Any]] = []
    for entry in result if isinstance(result, (list, tuple)) else ():  # never consume an iterator of theirs
        if isinstance(entry, tuple) and len(entry) == 2:
            (item,) = mapping.documents_of([entry[0]])
            if isinstance(entry[1], (int, float)):
                item["score"] = float(entry[1])
            items.append(item)
        else:
            items.extend(mapping.documents_of([entry]))
    return items


def _search_wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    step = _start(instance, args, kwargs)
    if step is None:
        return wrapped(*args, **kwargs)
    marker = _searching.set(True)
    try:
        with step:  # current for the search (an embeddings call nests under it); ends it, re-raises
            result = wrapped(*args, **kwargs)
            _set_documents(step, result)
    finally:
        _searching.reset(marker)
    return result


async def _async_search_wrapper(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    step = _start(instance, args, kwargs)
    if step is None:
        return await wrapped(*args, **kwargs)
    marker = _searching.set(True)
    try:
        with step:
            result = await wrapped(*args, **kwargs)
            _set_documents(step, result)
    finally:
        _searching.reset(marker)
    return result


def _retriever_guard(is_async: bool) -> Callable[..., Any]:
    """A retriever's own search is the retriever's span (its callbacks): no second span from the store."""
    if is_async:

        async def guard_async(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
            marker = _searching.set(True)
            try:
                return await wrapped(*args, **kwargs)
            finally:
                _searching.reset(marker)

        return guard_async

    def guard(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        marker = _searching.set(True)
        try:
            return wrapped(*args, **kwargs)
        finally:
            _searching.reset(marker)

    return guard
