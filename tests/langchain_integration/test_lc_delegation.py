"""Delegation between agents: a supervisor built from a plain ``StateGraph`` and ``Command(goto=...)``.

The supervisor hands work to a research sub-agent (a compiled sub-graph run as a node), which
hands control back with ``Command(graph=Command.PARENT)``; a ReAct agent hands off through a
tool that returns a ``Command``. Each hand-off is one ``llm_audit.delegation`` event on the span
of the step that made it, and the sub-agent has its own ``invoke_agent`` span.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import InjectedToolCallId, tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command
from lc_support import ScriptedChatModel, events, one, ours, render, trace_ids

from otel_llm_audit import semconv


def _delegations(span: Any) -> list[dict[str, Any]]:
    out = []
    for event in events(span, semconv.EVENT_LLM_AUDIT_DELEGATION):
        for key in (semconv.LLM_AUDIT_DELEGATION_INPUT, semconv.LLM_AUDIT_DELEGATION_OUTPUT):
            if key in event:
                event[key] = json.loads(event[key])
        out.append(event)
    return out


def _supervisor_flow() -> Any:
    research = StateGraph(MessagesState)
    research.add_node("search", lambda state: {"messages": [AIMessage(content="census: 3 free beds")]})
    research.add_node(
        "report",
        lambda state: Command(
            goto="supervisor", graph=Command.PARENT, update={"messages": [AIMessage(content="report: 3 beds")]}
        ),
    )
    research.add_edge(START, "search")
    research.add_edge("search", "report")
    research_agent = research.compile(name="research_agent")

    def supervisor(state: MessagesState) -> Command:
        if any("report:" in str(m.content) for m in state["messages"]):
            return Command(goto=END)
        return Command(goto="researcher", update={"messages": [AIMessage(content="Research the ward census.")]})

    flow = StateGraph(MessagesState)
    flow.add_node("supervisor", supervisor)
    flow.add_node("researcher", research_agent)
    flow.add_edge(START, "supervisor")
    return flow.compile(name="supervisor_flow")


def test_supervisor_delegates_to_a_sub_agent_which_hands_back(lc: Any) -> None:
    result = _supervisor_flow().invoke({"messages": [HumanMessage("How many free beds?")]})
    assert any(m.content == "report: 3 beds" for m in result["messages"])
    spans = ours(lc.spans())
    assert render(spans) == [
        "invoke_workflow supervisor_flow (INTERNAL)",
        "  step supervisor (INTERNAL)",
        "  step researcher (INTERNAL)",
        "    invoke_agent research_agent (INTERNAL)",
        "      step search (INTERNAL)",
        "      step report (INTERNAL)",
        "  step supervisor (INTERNAL)",
    ]
    assert len(trace_ids(spans)) == 1
    first_supervisor, second_supervisor = [s for s in spans if s.name == "step supervisor"]
    assert _delegations(first_supervisor) == [
        {
            semconv.LLM_AUDIT_DELEGATION_SOURCE: "supervisor",
            semconv.LLM_AUDIT_DELEGATION_TARGET: "researcher",
            semconv.LLM_AUDIT_DELEGATION_KIND: "goto",
            semconv.LLM_AUDIT_DELEGATION_INPUT: {
                "messages": [{"role": "assistant", "parts": [{"type": "text", "content": "Research the ward census."}]}]
            },
        }
    ]
    assert _delegations(second_supervisor) == []  # goto END is no delegation
    (subgraph,) = _delegations(one(spans, "step researcher"))
    assert subgraph[semconv.LLM_AUDIT_DELEGATION_SOURCE] == "supervisor_flow"
    assert subgraph[semconv.LLM_AUDIT_DELEGATION_TARGET] == "research_agent"
    assert subgraph[semconv.LLM_AUDIT_DELEGATION_KIND] == "subgraph"
    assert [m["parts"][0]["content"] for m in subgraph[semconv.LLM_AUDIT_DELEGATION_INPUT]["messages"]] == [
        "How many free beds?",
        "Research the ward census.",
    ]
    assert semconv.LLM_AUDIT_DELEGATION_OUTPUT not in subgraph  # it handed back control instead of returning
    # The hand-back is recorded once, on the node that made it, though LangGraph re-raises it upwards.
    assert _delegations(one(spans, "step report")) == [
        {
            semconv.LLM_AUDIT_DELEGATION_SOURCE: "report",
            semconv.LLM_AUDIT_DELEGATION_TARGET: "supervisor",
            semconv.LLM_AUDIT_DELEGATION_KIND: "handoff",
            semconv.LLM_AUDIT_DELEGATION_INPUT: {
                "messages": [{"role": "assistant", "parts": [{"type": "text", "content": "report: 3 beds"}]}]
            },
        }
    ]
    assert _delegations(one(spans, "invoke_agent research_agent")) == []
    assert all(s.status.status_code.name == "UNSET" for s in spans)  # hand-offs are not errors
    kinds = [
        e[semconv.LLM_AUDIT_DELEGATION_KIND]
        for s in sorted(spans, key=lambda s: s.start_time)
        for e in events(s, semconv.EVENT_LLM_AUDIT_DELEGATION)
    ]
    assert sorted(kinds) == ["goto", "handoff", "subgraph"]


@tool
def transfer_to_pharmacist(reason: str, tool_call_id: Annotated[str, InjectedToolCallId]) -> Command:
    """Hand the conversation to the pharmacist agent."""
    return Command(
        goto="pharmacist",
        graph=Command.PARENT,
        update={"messages": [ToolMessage(content=f"transferred: {reason}", tool_call_id=tool_call_id)]},
    )


@tool
def lookup_bed(ward: int) -> str:
    """Find a free bed."""
    return "bed 12"


def test_a_react_agent_hands_off_through_a_tool_returning_a_command(lc: Any) -> None:
    from langgraph.prebuilt import create_react_agent

    model = ScriptedChatModel(
        replies=[
            AIMessage(
                content="This needs the pharmacist.",
                tool_calls=[{"name": "transfer_to_pharmacist", "args": {"reason": "dose check"}, "id": "call_t"}],
            )
        ]
    )
    triage = create_react_agent(model, [transfer_to_pharmacist, lookup_bed], name="triage_agent")
    flow = StateGraph(MessagesState)
    flow.add_node("triage", triage)
    flow.add_node("pharmacist", lambda state: {"messages": [AIMessage(content="Dose is fine.")]})
    flow.add_edge(START, "triage")
    result = flow.compile(name="ward_desk").invoke({"messages": [HumanMessage("Is 40mg ok?")]})
    assert result["messages"][-1].content == "Dose is fine."

    spans = ours(lc.spans())
    assert render(spans) == [
        "invoke_workflow ward_desk (INTERNAL)",
        "  step triage (INTERNAL)",
        "    invoke_agent triage_agent (INTERNAL)",
        "      step agent (INTERNAL)",
        "        chat scripted-1 (CLIENT)",
        "      step tools (INTERNAL)",
        "        execute_tool transfer_to_pharmacist (INTERNAL)",
        "  step pharmacist (INTERNAL)",
    ]
    tool_span = one(spans, "execute_tool transfer_to_pharmacist")
    assert _delegations(tool_span) == [
        {
            semconv.LLM_AUDIT_DELEGATION_SOURCE: "triage_agent",
            semconv.LLM_AUDIT_DELEGATION_TARGET: "pharmacist",
            semconv.LLM_AUDIT_DELEGATION_KIND: "handoff",
            semconv.LLM_AUDIT_DELEGATION_INPUT: {
                "messages": [
                    {
                        "role": "tool",
                        "parts": [
                            {"type": "tool_call_response", "id": "call_t", "response": "transferred: dose check"}
                        ],
                    }
                ]
            },
        }
    ]
    # Recorded once: not again on the tools step nor on the nodes the ParentCommand passed through.
    total = sum(len(events(s, semconv.EVENT_LLM_AUDIT_DELEGATION)) for s in spans)
    assert total == 2  # the hand-off, and the triage sub-graph on its node
    assert _delegations(one(spans, "step triage"))[0][semconv.LLM_AUDIT_DELEGATION_KIND] == "subgraph"
    decisions = events(one(spans, "step agent"), semconv.EVENT_LLM_AUDIT_DECISION)
    assert decisions[0][semconv.LLM_AUDIT_DECISION_CHOSEN] == ("transfer_to_pharmacist",)
    assert decisions[0][semconv.LLM_AUDIT_DECISION_REASONING] == "This needs the pharmacist."
    assert decisions[0][semconv.GEN_AI_AGENT_NAME] == "triage_agent"
