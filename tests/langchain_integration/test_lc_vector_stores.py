"""Vector stores searched directly (no callbacks in LangChain) as retrieval spans, one per search."""

from __future__ import annotations

import json
from typing import Any, TypedDict

import pytest
from langchain_core.embeddings.fake import DeterministicFakeEmbedding
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore
from langgraph.graph import END, START, StateGraph
from wrapt import FunctionWrapper

from otel_llm_audit import _guard, semconv
from otel_llm_audit.instrumentation.langchain import LangChainInstrumentor, _vectorstores

LEAFLETS = ["Warfarin: avoid ibuprofen.", "Paracetamol: up to 1 g.", "Ibuprofen: an NSAID."]


def _store() -> InMemoryVectorStore:
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=8))
    store.add_texts(LEAFLETS, ids=["warfarin", "paracetamol", "ibuprofen"])
    return store


class _State(TypedDict, total=False):
    question: str
    found: list[str]


def _retrievals(lc: Any) -> list[Any]:
    return [s for s in lc.spans() if s.attributes.get(semconv.GEN_AI_OPERATION_NAME) == "retrieval"]


def test_a_search_in_a_node_is_a_retrieval_span_under_the_node(lc: Any) -> None:
    store = _store()
    expected = store.similarity_search("warfarin and ibuprofen?", k=2)  # what the app gets
    lc.clear()

    def research(state: _State) -> _State:
        return {"found": [d.page_content for d in store.similarity_search(state["question"], k=2)]}

    graph = StateGraph(_State)
    graph.add_node("research", research)
    graph.add_edge(START, "research")
    graph.add_edge("research", END)
    result = graph.compile().invoke({"question": "warfarin and ibuprofen?"})
    assert result["found"] == [d.page_content for d in expected]
    (span,) = _retrievals(lc)
    by_id = {s.context.span_id: s for s in lc.spans()}
    assert span.name == "retrieval InMemoryVectorStore"
    assert by_id[span.parent.span_id].name == "step research"
    assert span.attributes[semconv.GEN_AI_DATA_SOURCE_ID] == "InMemoryVectorStore"
    assert span.attributes[semconv.GEN_AI_RETRIEVAL_TOP_K] == 2
    assert span.attributes[semconv.GEN_AI_RETRIEVAL_QUERY_TEXT] == "warfarin and ibuprofen?"
    documents = json.loads(span.attributes[semconv.GEN_AI_RETRIEVAL_DOCUMENTS])
    assert [(d["id"], d["content"]) for d in documents] == [(d.id, d.page_content) for d in expected]


def test_scores_are_kept_and_nested_searches_give_one_span(lc: Any) -> None:
    store = _store()
    lc.clear()
    scored = store.similarity_search_with_score("paracetamol dose", k=1)  # calls other search methods
    (span,) = _retrievals(lc)
    (document,) = json.loads(span.attributes[semconv.GEN_AI_RETRIEVAL_DOCUMENTS])
    assert document == {"id": scored[0][0].id, "content": scored[0][0].page_content, "score": scored[0][1]}


async def test_async_search_gives_one_span(lc: Any) -> None:
    store = _store()
    lc.clear()
    found = await store.asimilarity_search("ibuprofen", k=3)
    (span,) = _retrievals(lc)
    assert len(json.loads(span.attributes[semconv.GEN_AI_RETRIEVAL_DOCUMENTS])) == len(found) == 3


def test_a_retriever_over_the_store_is_one_span_the_retrievers(lc: Any) -> None:
    retriever = _store().as_retriever(search_kwargs={"k": 1})
    lc.clear()
    retriever.invoke("warfarin")
    (span,) = _retrievals(lc)
    assert span.name == "retrieval VectorStoreRetriever"  # from its callbacks, not a second one from the store


def test_a_store_class_defined_after_instrumenting_is_covered_and_uninstrument_restores(lc: Any) -> None:
    assert isinstance(InMemoryVectorStore.__dict__["similarity_search"], FunctionWrapper)

    class WardStore(InMemoryVectorStore):
        def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> Any:
            return super().similarity_search(query, k=k, **kwargs)[:1]

    store = WardStore(DeterministicFakeEmbedding(size=8))
    store.add_texts(LEAFLETS)
    lc.clear()
    assert len(store.similarity_search("warfarin", k=3)) == 1
    (span,) = _retrievals(lc)
    assert span.attributes[semconv.GEN_AI_DATA_SOURCE_ID] == "WardStore"
    assert len(json.loads(span.attributes[semconv.GEN_AI_RETRIEVAL_DOCUMENTS])) == 1

    LangChainInstrumentor().uninstrument()
    for cls in (InMemoryVectorStore, WardStore, VectorStore):
        assert not any(isinstance(v, FunctionWrapper) for v in vars(cls).values()), cls
    assert "__init_subclass__" not in vars(VectorStore)

    class LaterStore(InMemoryVectorStore):  # defined after uninstrument: not wrapped
        def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> Any:
            return []

    assert not isinstance(vars(LaterStore)["similarity_search"], FunctionWrapper)


def test_a_failure_of_ours_leaves_the_search_untouched(lc: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store()
    expected = store.similarity_search("warfarin", k=2)
    lc.clear()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("mapping changed")

    monkeypatch.setattr(_vectorstores, "_documents", broken)
    assert store.similarity_search("warfarin", k=2) == expected
    (span,) = _retrievals(lc)
    assert semconv.GEN_AI_RETRIEVAL_DOCUMENTS not in span.attributes
    assert _guard.internal_error_counts().get("langchain.vectorstore_end") == 1

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("the store's own error")

    monkeypatch.setattr(InMemoryVectorStore, "similarity_search_with_score", failing)
    with pytest.raises(ValueError, match="the store's own error"):
        store.similarity_search_with_score("warfarin")
