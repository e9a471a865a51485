"""A scripted agent for the anomaly tests: a LangGraph loop of model turns and tool runs.

The model is the loopback fake server through the real ``openai`` SDK; the tool is a real
LangChain ``@tool``. The agent node names the tool in ``tool_choice`` for its first ``loops``
turns, which the fake server obeys even after a tool turn, always with ``{"city": "Paris"}``:
the same call again and again, as a looping agent makes it. The next turn lets the model
choose, and after a tool result the fake server answers. ``loops=1`` is a normal agent: one
tool call, then the answer.
"""

from __future__ import annotations

import json
from typing import Any, TypedDict

MODEL = "gpt-4o-mini"
QUESTION = "What is the weather in Paris?"
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
FORCED = {"type": "function", "function": {"name": "get_weather"}}


class AgentState(TypedDict, total=False):
    messages: list[dict[str, Any]]
    turns: int


def build_agent(client: Any, *, loops: int) -> Any:
    """The compiled graph: agent -> tools -> agent ... until the model answers."""
    from langchain_core.tools import tool
    from langgraph.graph import END, START, StateGraph

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return json.dumps({"city": city, "temperature_c": 18, "sky": "sunny"})

    def agent(state: AgentState) -> AgentState:
        turns = state.get("turns", 0)
        options: dict[str, Any] = {"tool_choice": FORCED} if turns < loops else {}
        said = client.chat.completions.create(model=MODEL, messages=state["messages"], tools=[WEATHER_TOOL], **options)
        message = said.choices[0].message.model_dump(exclude_none=True)
        return {"messages": [*state["messages"], message], "turns": turns + 1}

    def tools(state: AgentState) -> AgentState:
        messages = list(state["messages"])
        for call in messages[-1].get("tool_calls", []):
            result = get_weather.invoke(
                {
                    "name": call["function"]["name"],
                    "args": json.loads(call["function"]["arguments"]),
                    "id": call["id"],
                    "type": "tool_call",
                }
            )
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": result.content})
        return {"messages": messages}

    def next_step(state: AgentState) -> str:
        return "tools" if state["messages"][-1].get("tool_calls") else END

    graph = StateGraph(AgentState)
    graph.add_node("agent", agent)
    graph.add_node("tools", tools)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", next_step, ["tools", END])
    graph.add_edge("tools", "agent")
    return graph.compile(name="weather_agent")


def run_agent(graph: Any) -> str:
    """One run (one trace): the answer the agent ends with."""
    final = graph.invoke({"messages": [{"role": "user", "content": QUESTION}]})
    return str(final["messages"][-1]["content"])
