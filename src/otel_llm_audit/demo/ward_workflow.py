"""The demo's agent workflow: a small LangGraph app a hospital ward might run.

A supervisor reads the nurse's question and delegates it to a pharmacist sub-agent (a
LangGraph sub-graph). The pharmacist looks up the drug leaflets (a LangChain retriever over
an in-memory vector store), asks the model, which calls the ``check_interactions`` tool, and
proposes a dose. A conditional edge sends the proposal to a physician's review: the graph
pauses (``interrupt()``), its state saved by the checkpointer. A later request, made by the
physician, resumes it with their decision, and the workflow writes the reply.

Every model call goes through the real ``openai`` SDK to the loopback fake model server, so
the trace holds what it would hold against the real API. The app code is plain LangGraph; the
audit comes from the instrumentors alone, except for the supervisor's routing decision, which
the app records itself with :func:`otel_llm_audit.record_decision` (it routes on a raw model
call, which no instrumentor can interpret as a choice).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypedDict

import otel_llm_audit

MODEL = "gpt-4o-mini"
THREAD_ID = "ward-7-case-42"
QUESTION = (
    "Patient MRN: 40417733 takes warfarin. Can we start ibuprofen for her knee pain tonight? "
    "Her daughter asks to be called on +1 415 555 0143."
)
LEAFLETS = (
    "Warfarin: avoid NSAIDs such as ibuprofen; bleeding risk rises. Paracetamol is preferred.",
    "Ibuprofen: an NSAID. Interacts with anticoagulants (warfarin) and raises bleeding risk.",
    "Paracetamol: up to 1 g four times a day; no interaction with warfarin at usual doses.",
)

#: The tools the supervisor's model can call to hand the case over (OpenAI function tools).
HANDOFF_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": f"transfer_to_{agent}",
            "description": f"Hand the case to the {agent}.",
            "parameters": {"type": "object", "properties": {}},
        },
    }
    for agent in ("pharmacist", "physician")
]
INTERACTIONS_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "check_interactions",
        "description": "Check a drug against the patient's current medication.",
        "parameters": {
            "type": "object",
            "properties": {"drug": {"type": "string", "examples": ["ibuprofen"]}},
            "required": ["drug"],
        },
    },
}


class WardState(TypedDict, total=False):
    """What the workflow knows about the case (saved by the checkpointer at every step)."""

    question: str
    leaflets: list[str]
    findings: str
    proposal: str
    physician_decision: dict[str, Any]
    answer: str


def build_ward_workflow(client: Any, checkpointer: Any) -> Any:
    """The compiled graph: supervisor -> pharmacist (sub-graph) -> review (pause) -> reply."""
    from langchain_core.embeddings.fake import DeterministicFakeEmbedding
    from langchain_core.tools import tool
    from langchain_core.vectorstores import InMemoryVectorStore
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Command, interrupt

    leaflets = InMemoryVectorStore(DeterministicFakeEmbedding(size=16))
    leaflets.add_texts(list(LEAFLETS), ids=["warfarin", "ibuprofen", "paracetamol"])
    retriever = leaflets.as_retriever(search_kwargs={"k": 2}).with_config(run_name="drug_leaflets")

    @tool
    def check_interactions(drug: str) -> str:
        """Check a drug against the patient's current medication."""
        return json.dumps({"drug": drug, "interacts_with": ["warfarin"], "severity": "major"})

    def chat(messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        return client.chat.completions.create(model=MODEL, messages=messages, **kwargs).choices[0].message

    def supervisor(state: WardState) -> Any:  # a Command (langgraph reads the hint: keep it importable)
        """Routes the question: the model picks a hand-off tool."""
        said = chat(
            [{"role": "system", "content": "Route ward questions."}, {"role": "user", "content": state["question"]}],
            tools=HANDOFF_TOOLS,
            tool_choice={"type": "function", "function": {"name": "transfer_to_pharmacist"}},
        )
        target = said.tool_calls[0].function.name.removeprefix("transfer_to_")
        otel_llm_audit.record_decision(
            "route_question",
            target,
            options=["pharmacist", "physician"],
            reasoning="the question is about a drug combination",
            agent_name="supervisor",
        )
        return Command(goto=target, update={"question": state["question"]})

    def research(state: WardState) -> WardState:
        return {"leaflets": [doc.page_content for doc in retriever.invoke(state["question"])]}

    def consult(state: WardState) -> WardState:
        """The model asks for the interaction check; the tool runs; the model answers."""
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": "You are the ward pharmacist. Leaflets: " + " ".join(state["leaflets"])},
            {"role": "user", "content": state["question"]},
        ]
        said = chat(
            messages,
            tools=[INTERACTIONS_TOOL],
            tool_choice={"type": "function", "function": {"name": "check_interactions"}},
        )
        call = said.tool_calls[0]
        result = check_interactions.invoke(
            {
                "name": call.function.name,
                "args": json.loads(call.function.arguments),
                "id": call.id,
                "type": "tool_call",
            }
        )
        messages.append(said.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": result.content})
        return {"findings": chat(messages).content}

    def propose(state: WardState) -> WardState:
        return {"proposal": "Do not start ibuprofen; give paracetamol 1 g, up to four times a day."}

    pharmacy = StateGraph(WardState)
    pharmacy.add_node("research", research)
    pharmacy.add_node("consult", consult)
    pharmacy.add_node("propose", propose)
    pharmacy.add_edge(START, "research")
    pharmacy.add_edge("research", "consult")
    pharmacy.add_edge("consult", "propose")
    pharmacy.add_edge("propose", END)

    def needs_review(state: WardState) -> str:
        if not state.get("proposal"):
            return "reply"
        # A medication change is not the assistant's to make: it goes to the physician on call.
        otel_llm_audit.record_policy_event(
            "escalation",
            "escalated",
            source="ward_assistant",
            name="medication-change-needs-physician",
            details={"to": "physician-on-call", "reason": "a change of medication needs a physician's sign-off"},
            actor="ward_assistant",  # the workflow's rule decided, not the nurse whose request it is
        )
        return "review"

    def review(state: WardState) -> WardState:
        decision = interrupt({"question": "Approve the pharmacist's proposal?", "proposal": state["proposal"]})
        if decision.get("override"):
            # The physician approves with a change of their own: an override of the automated
            # proposal, by the physician of the resuming request (the actor of the audit context).
            otel_llm_audit.record_policy_event(
                "override",
                "overridden",
                source="ward_assistant",
                name="pharmacist-proposal",
                details={
                    "overridden": "paracetamol 1 g up to four times a day",
                    "replaced_by": decision["override"],
                    "reason": decision.get("note", ""),
                },
            )
        return {"physician_decision": decision}

    def reply(state: WardState) -> WardState:
        approved = state.get("physician_decision", {}).get("action") == "approve"
        verdict = "approved" if approved else "not approved"
        said = chat([{"role": "user", "content": f"Tell the nurse the plan was {verdict}: {state['proposal']}"}])
        return {"answer": said.content}

    ward = StateGraph(WardState)
    ward.add_node("supervisor", supervisor)
    ward.add_node("pharmacist", pharmacy.compile(name="pharmacist"))
    ward.add_node("review", review)
    ward.add_node("reply", reply)
    ward.add_edge(START, "supervisor")
    ward.add_conditional_edges("pharmacist", needs_review, ["review", "reply"])
    ward.add_edge("review", "reply")
    ward.add_edge("reply", END)
    return ward.compile(checkpointer=checkpointer, name="ward_assistant")


def run_until_review(graph: Any) -> Any:
    """The nurse's request: the workflow runs until it pauses for the physician."""
    with otel_llm_audit.audit_context(user_id="nurse-4711", actor_type="human", session_id="ward-7-shift-3"):
        return graph.invoke({"question": QUESTION}, {"configurable": {"thread_id": THREAD_ID}})


def resume_with_review(graph: Any, *, approve: bool = True) -> Any:
    """The physician's request, later: their decision resumes the paused workflow."""
    from langgraph.types import Command

    decision = {
        "action": "approve" if approve else "reject",
        "note": "paracetamol is fine, at a lower dose: the patient weighs 48 kg",
        "override": "paracetamol 500 mg up to four times a day",
    }
    with otel_llm_audit.audit_context(user_id="dr-4711", actor_type="human", auth_method="sso_saml"):
        return graph.invoke(Command(resume=decision), {"configurable": {"thread_id": THREAD_ID}})


def new_checkpointer() -> Any:
    """LangGraph's in-memory saver (``MemorySaver`` is its name in every supported release)."""
    from langgraph.checkpoint.memory import MemorySaver

    return MemorySaver()


def run_ward_workflow(client: Any, say: Callable[[str], None]) -> None:
    """Both requests, one after the other, on one checkpointer (what the demo shows)."""
    graph = build_ward_workflow(client, new_checkpointer())
    paused = run_until_review(graph)
    asked = paused["__interrupt__"][0].value if "__interrupt__" in paused else None
    say(f"workflow paused for review: {asked}")
    done = resume_with_review(graph)
    say(f"workflow answer: {done.get('answer')}")
