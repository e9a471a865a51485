"""Content follows the ``content`` setting: tool arguments and results, delegation input and output,
the stated reasoning, the tool names. ``none`` keeps none of it; ``hash`` keeps hashes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

agents = pytest.importorskip("agents")

from agent_spans import events, one  # noqa: E402

from otel_llm_audit import semconv  # noqa: E402

CONTENT_KEYS = (
    semconv.GEN_AI_TOOL_CALL_ARGUMENTS,
    semconv.GEN_AI_TOOL_CALL_RESULT,
    semconv.GEN_AI_TOOL_DEFINITIONS,
    semconv.LLM_AUDIT_DELEGATION_INPUT,
    semconv.LLM_AUDIT_DELEGATION_OUTPUT,
    semconv.LLM_AUDIT_DECISION_REASONING,
)


@agents.function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def run_translation(make_model: Any) -> Any:
    translator = agents.Agent(name="Translator", instructions="Translate.", model=make_model("chat"))
    agent = agents.Agent(
        name="Writer",
        instructions="Write. [think aloud]",
        model=make_model("chat"),
        tools=[get_weather, translator.as_tool(tool_name="translate", tool_description="Translate.")],
        model_settings=agents.ModelSettings(tool_choice="translate"),
    )
    return asyncio.run(agents.Runner.run(agent, "Translate Paris"))


def audit_attributes(span: Any) -> dict[str, Any]:
    merged = dict(span.attributes)
    for event in span.events:
        merged.update(event.attributes or {})
    return merged


@pytest.mark.parametrize("mode", ["none", "hash"])
def test_content_modes(make_agents_audit: Any, make_model: Any, mode: str) -> None:
    audit = make_agents_audit(content=mode)
    run_translation(make_model)
    spans = audit.spans()
    writer, tool = one(spans, "invoke_agent Writer"), one(spans, "execute_tool translate")
    for span in (writer, tool):
        present = audit_attributes(span)
        assert [k for k in CONTENT_KEYS if k in present] == [], span.name
        assert span.attributes[semconv.LLM_AUDIT_CONTENT_MODE] == mode
    # The facts stay: who delegated to whom, which tool was chosen among which.
    (delegation,) = events(writer, semconv.EVENT_LLM_AUDIT_DELEGATION)
    assert delegation[semconv.LLM_AUDIT_DELEGATION_TARGET] == "Translator"
    (decision,) = events(writer, semconv.EVENT_LLM_AUDIT_DECISION)
    assert decision[semconv.LLM_AUDIT_DECISION_CHOSEN] == ("translate",)
    assert tool.attributes[semconv.GEN_AI_TOOL_CALL_ID] == "call_fake_1"
    if mode == "hash":
        hashes = json.loads(str(tool.attributes[semconv.LLM_AUDIT_CONTENT_HASHES]))
        assert set(hashes) == {semconv.GEN_AI_TOOL_CALL_ARGUMENTS, semconv.GEN_AI_TOOL_CALL_RESULT}
        assert json.loads(str(delegation[semconv.LLM_AUDIT_CONTENT_HASHES])).keys() == {
            semconv.LLM_AUDIT_DELEGATION_INPUT,
            semconv.LLM_AUDIT_DELEGATION_OUTPUT,
        }
        assert semconv.GEN_AI_TOOL_DEFINITIONS in json.loads(str(writer.attributes[semconv.LLM_AUDIT_CONTENT_HASHES]))


def test_masked_content_is_masked(make_agents_audit: Any, make_model: Any) -> None:
    """The default ``masked``: an e-mail address in a tool result does not leave unmasked."""

    @agents.function_tool
    def lookup_owner(city: str) -> str:
        """Who owns the account."""
        return f"owner of {city}: jane.doe@example.com"

    audit = make_agents_audit(content="masked")
    agent = agents.Agent(name="Lookup", instructions="Look up.", model=make_model("chat"), tools=[lookup_owner])
    asyncio.run(agents.Runner.run(agent, "Who owns Paris?"))
    tool = one(audit.spans(), "execute_tool lookup_owner")
    result = str(tool.attributes[semconv.GEN_AI_TOOL_CALL_RESULT])
    assert "jane.doe@example.com" not in result and "owner of Paris" in result
    assert tool.attributes[semconv.LLM_AUDIT_CONTENT_MODE] == "masked"
