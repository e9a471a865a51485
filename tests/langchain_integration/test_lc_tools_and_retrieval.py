"""Tools as ``execute_tool`` spans and retrievers as ``retrieval`` spans, with their content rules.

Real langchain-core tools (``@tool``), LangGraph's ``ToolNode`` running model-requested calls,
and a real retriever: ``InMemoryVectorStore`` over langchain-core's deterministic fake
embedding, ``.as_retriever()``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings.fake import DeterministicFakeEmbedding
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_core.vectorstores import InMemoryVectorStore
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from lc_support import children, is_child, one, ours, render, trace_ids
from opentelemetry.trace import SpanKind, StatusCode

from otel_llm_audit import __version__, semconv
from otel_llm_audit.emitter.content import canonical_hash

CARD = "4111 1111 1111 1111"


@tool
def lookup_bed(ward: int) -> str:
    """Find a free bed on a ward."""
    return f"bed 12 on ward {ward}"


@tool
def order_drug(drug: str) -> str:
    """Order a drug from the pharmacy."""
    raise TimeoutError("pharmacy API did not answer")


@tool
def flag_result(test: str) -> ToolMessage:
    """A tool that reports its own failure in its result."""
    return ToolMessage(content="lab system offline", tool_call_id="call_lab", status="error")


def test_a_tool_called_directly(lc: Any) -> None:
    assert lookup_bed.invoke({"ward": 7}) == "bed 12 on ward 7"
    (span,) = ours(lc.spans())
    assert span.name == "execute_tool lookup_bed"
    assert span.kind is SpanKind.INTERNAL
    assert span.parent is None
    attrs = dict(span.attributes or {})
    assert attrs.pop(semconv.LLM_AUDIT_RUN_ID)
    assert attrs == {
        semconv.GEN_AI_OPERATION_NAME: "execute_tool",
        semconv.GEN_AI_TOOL_NAME: "lookup_bed",
        semconv.GEN_AI_TOOL_TYPE: "function",
        semconv.GEN_AI_TOOL_DESCRIPTION: "Find a free bed on a ward.",
        semconv.LLM_AUDIT_SDK_VERSION: __version__,
        semconv.GEN_AI_TOOL_CALL_ARGUMENTS: '{"ward":7}',
        semconv.GEN_AI_TOOL_CALL_RESULT: '"bed 12 on ward 7"',
        semconv.LLM_AUDIT_CONTENT_MODE: "raw",
    }


def test_a_tool_called_with_a_model_tool_call_records_its_call_id(lc: Any) -> None:
    message = lookup_bed.invoke({"type": "tool_call", "name": "lookup_bed", "args": {"ward": 3}, "id": "call_9"})
    assert message.tool_call_id == "call_9"
    (span,) = ours(lc.spans())
    assert span.attributes[semconv.GEN_AI_TOOL_CALL_ID] == "call_9"
    assert span.attributes[semconv.GEN_AI_TOOL_CALL_RESULT] == '"bed 12 on ward 3"'


def test_a_failing_tool_is_an_error_span_and_the_error_reaches_the_caller(lc: Any) -> None:
    with pytest.raises(TimeoutError, match="pharmacy API"):
        order_drug.invoke({"drug": "amoxicillin"})
    (span,) = ours(lc.spans())
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "TimeoutError"
    assert span.attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS] == '{"drug":"amoxicillin"}'
    assert semconv.GEN_AI_TOOL_CALL_RESULT not in span.attributes


def test_a_tool_reporting_an_error_result(lc: Any) -> None:
    flag_result.invoke({"test": "potassium"})
    (span,) = ours(lc.spans())
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "tool_error"
    assert span.attributes[semconv.GEN_AI_TOOL_CALL_ID] == "call_lab"
    assert span.attributes[semconv.GEN_AI_TOOL_CALL_RESULT] == '"lab system offline"'


def test_tool_node_runs_the_calls_a_model_requested(lc: Any) -> None:
    request = AIMessage(
        content="",
        tool_calls=[
            {"name": "lookup_bed", "args": {"ward": 7}, "id": "call_a"},
            {"name": "lookup_bed", "args": {"ward": 9}, "id": "call_b"},
        ],
    )
    graph = StateGraph(MessagesState)
    graph.add_node("tools", ToolNode([lookup_bed]))
    graph.add_edge(START, "tools")
    result = graph.compile(name="beds").invoke({"messages": [HumanMessage("beds?"), request]})
    assert [m.content for m in result["messages"][-2:]] == ["bed 12 on ward 7", "bed 12 on ward 9"]
    spans = ours(lc.spans())
    tools_step = one(spans, "step tools")
    calls = sorted(children(spans, tools_step), key=lambda s: s.attributes[semconv.GEN_AI_TOOL_CALL_ID])
    assert [(s.name, s.attributes[semconv.GEN_AI_TOOL_CALL_ID]) for s in calls] == [
        ("execute_tool lookup_bed", "call_a"),
        ("execute_tool lookup_bed", "call_b"),
    ]
    assert [json.loads(s.attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS]) for s in calls] == [{"ward": 7}, {"ward": 9}]
    assert [s.attributes[semconv.LLM_AUDIT_GRAPH_NODE] for s in calls] == ["tools", "tools"]
    assert len(spans) == 4
    assert len(trace_ids(spans)) == 1


def _retriever() -> Any:
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=16))
    store.add_documents(
        [
            Document(page_content="Ward 7 discharge protocol", metadata={"source": "protocols"}, id="doc-7"),
            Document(page_content=f"Billing card {CARD} on file", metadata={"source": "billing"}, id="doc-b"),
        ]
    )
    return store.as_retriever(search_kwargs={"k": 1})


def test_a_retriever_is_a_retrieval_span_with_query_and_documents(lc: Any) -> None:
    docs = _retriever().invoke("Ward 7 discharge protocol")
    assert [d.id for d in docs] == ["doc-7"]
    (span,) = ours(lc.spans())
    assert span.name == "retrieval VectorStoreRetriever"
    assert span.kind is SpanKind.CLIENT
    attrs = dict(span.attributes or {})
    assert attrs.pop(semconv.LLM_AUDIT_RUN_ID)
    assert json.loads(attrs.pop(semconv.GEN_AI_RETRIEVAL_DOCUMENTS)) == [
        {"id": "doc-7", "content": "Ward 7 discharge protocol", "metadata": {"source": "protocols"}}
    ]
    assert attrs == {
        semconv.GEN_AI_OPERATION_NAME: "retrieval",
        semconv.GEN_AI_DATA_SOURCE_ID: "VectorStoreRetriever",
        semconv.LLM_AUDIT_SDK_VERSION: __version__,
        semconv.GEN_AI_RETRIEVAL_QUERY_TEXT: "Ward 7 discharge protocol",
        semconv.LLM_AUDIT_CONTENT_MODE: "raw",
    }


def test_a_named_retriever_in_a_node_nests_under_it(lc: Any) -> None:
    retriever = _retriever().with_config(run_name="protocols")

    def search(state: MessagesState) -> dict[str, Any]:
        docs = retriever.invoke("discharge")
        return {"messages": [AIMessage(content=docs[0].page_content)]}

    graph = StateGraph(MessagesState)
    graph.add_node("search", search)
    graph.add_edge(START, "search")
    graph.compile(name="rag").invoke({"messages": [HumanMessage("how to discharge?")]})
    spans = ours(lc.spans())
    assert render(spans) == [
        "invoke_workflow rag (INTERNAL)",
        "  step search (INTERNAL)",
        "    retrieval protocols (CLIENT)",
    ]
    retrieval = one(spans, "retrieval protocols")
    assert is_child(retrieval, one(spans, "step search"))
    assert retrieval.attributes[semconv.LLM_AUDIT_GRAPH_NODE] == "search"


def test_retrieved_documents_follow_the_hash_content_mode(make_audit: Any) -> None:
    from otel_llm_audit.instrumentation.langchain import LangChainInstrumentor

    audit = make_audit(content="hash")
    audit.add_instrumentor(LangChainInstrumentor())
    _retriever().invoke(f"Billing card {CARD} on file")
    (span,) = ours(audit.spans())
    assert CARD not in json.dumps(dict(span.attributes or {}))
    hashes = json.loads(span.attributes[semconv.LLM_AUDIT_CONTENT_HASHES])
    assert hashes[semconv.GEN_AI_RETRIEVAL_QUERY_TEXT] == [canonical_hash(f"Billing card {CARD} on file")]
    assert hashes[semconv.GEN_AI_RETRIEVAL_DOCUMENTS] == [
        canonical_hash({"id": "doc-b", "content": f"Billing card {CARD} on file", "metadata": {"source": "billing"}})
    ]


def test_retrieved_documents_are_masked_like_every_other_content(make_audit: Any) -> None:
    from otel_llm_audit.instrumentation.langchain import LangChainInstrumentor

    audit = make_audit(content="masked")
    audit.add_instrumentor(LangChainInstrumentor())
    _retriever().invoke(f"Billing card {CARD} on file")
    # The masking stage loads its recognizers on first use: on a loaded machine that is slow.
    assert audit.pipeline.force_flush(60_000)
    (span,) = ours(audit.spans())
    assert span.attributes[semconv.LLM_AUDIT_CONTENT_MODE] == "masked"
    assert CARD not in json.dumps(dict(span.attributes or {}))
    assert json.loads(span.attributes[semconv.GEN_AI_RETRIEVAL_DOCUMENTS]) == [
        {"id": "doc-b", "content": "Billing card <CREDIT_CARD> on file", "metadata": {"source": "billing"}}
    ]
    assert span.attributes[semconv.GEN_AI_RETRIEVAL_QUERY_TEXT] == "Billing card <CREDIT_CARD> on file"
