"""Real LangChain objects for the LangChain / LangGraph tests, and span-tree helpers.

The directory is not called ``tests/langchain``: with ``tests/`` on ``sys.path`` (the rootdir
conftest puts it there), ``import langchain`` would find that directory as a namespace
package, and langchain-core 0.3's ``get_verbose()`` (run whenever a model is built) would
fail on ``langchain.verbose``.

* :class:`ScriptedChatModel`: a ``BaseChatModel`` subclass answering scripted ``AIMessage``s
  (tool calls included), with streaming; no provider SDK behind it, so the LangChain
  instrumentor itself must emit its LLM span.
* :class:`OpenAISDKChatModel`: a ``BaseChatModel`` that calls the real ``openai`` SDK (sync
  and async), as ``langchain-openai`` does; its calls are the OpenAI instrumentor's spans.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr

from otel_llm_audit.emitter.handoff import SCOPE_PREFIX

LANGCHAIN_SCOPE = "otel_llm_audit.instrumentation.langchain"
OPENAI_SCOPE = "otel_llm_audit.instrumentation.openai"


class ScriptedChatModel(BaseChatModel):
    """Answers the scripted replies in order (cycling), as a chat model with bindable tools."""

    replies: list[AIMessage]
    model_name: str = "scripted-1"
    #: Raised instead of answering, when set.
    fail_with: Exception | None = None
    _counter: Any = PrivateAttr(default_factory=itertools.count)
    seen: list[list[BaseMessage]] = Field(default_factory=list)

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _next(self, messages: list[BaseMessage]) -> AIMessage:
        if self.fail_with is not None:
            raise self.fail_with
        self.seen.append(list(messages))
        reply = self.replies[next(self._counter) % len(self.replies)]
        return AIMessage(
            content=reply.content,
            tool_calls=list(reply.tool_calls),
            usage_metadata=reply.usage_metadata,
            response_metadata={
                "model_name": self.model_name,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
            },
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self._next(messages)
        return ChatResult(generations=[ChatGeneration(message=message)], llm_output={"model_name": self.model_name})

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        message = self._next(messages)
        text = str(message.content)
        for index in range(0, len(text), 4):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=text[index : index + 4]))
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="", usage_metadata=message.usage_metadata, response_metadata=message.response_metadata
            )
        )

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._stream(messages, stop, None, **kwargs):
            if run_manager is not None and chunk.text:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)


def _openai_messages(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if isinstance(m, ToolMessage):
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": str(m.content)})
        elif isinstance(m, AIMessage):
            item: dict[str, Any] = {"role": "assistant", "content": str(m.content) or None}
            if m.tool_calls:
                item["tool_calls"] = [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": json.dumps(c["args"])},
                    }
                    for c in m.tool_calls
                ]
            out.append(item)
        else:
            role = {"human": "user", "system": "system"}.get(m.type, "user")
            out.append({"role": role, "content": str(m.content)})
    return out


def _result(completion: Any) -> ChatResult:
    choice = completion.choices[0].message
    tool_calls = [
        {"name": c.function.name, "args": json.loads(c.function.arguments), "id": c.id, "type": "tool_call"}
        for c in choice.tool_calls or ()
    ]
    message = AIMessage(content=choice.content or "", tool_calls=tool_calls)
    return ChatResult(generations=[ChatGeneration(message=message)], llm_output={"model_name": completion.model})


class OpenAISDKChatModel(BaseChatModel):
    """A chat model over the real ``openai`` SDK, the way ``langchain-openai`` wraps it."""

    client: Any = None
    async_client: Any = None
    model: str = "gpt-4o-mini"

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @property
    def _llm_type(self) -> str:
        return "openai-sdk"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        extra = {"tools": kwargs["tools"]} if kwargs.get("tools") else {}
        completion = self.client.chat.completions.create(model=self.model, messages=_openai_messages(messages), **extra)
        return _result(completion)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        extra = {"tools": kwargs["tools"]} if kwargs.get("tools") else {}
        completion = await self.async_client.chat.completions.create(
            model=self.model, messages=_openai_messages(messages), **extra
        )
        return _result(completion)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)


# ------------------------------------------------------------------------ span trees


def ours(spans: Sequence[Any]) -> list[Any]:
    """Only otel-llm-audit's spans (not HTTP and the like)."""
    return [
        s
        for s in spans
        if s.instrumentation_scope is not None and s.instrumentation_scope.name.startswith(SCOPE_PREFIX)
    ]


def _sort_key(span: Any) -> tuple[int, str]:
    return (span.start_time or 0, span.name)


def render(spans: Sequence[Any]) -> list[str]:
    """The span tree as indented ``name (KIND)`` lines, built from the parent span ids alone.

    Siblings are ordered by start time (for concurrent siblings compare sets, not this order).
    A span whose parent is not among ``spans`` is a root (so an orphan shows up as a second root).
    """
    by_parent: dict[int | None, list[Any]] = {}
    ids = {s.context.span_id for s in spans}
    for s in spans:
        parent = s.parent.span_id if s.parent is not None and s.parent.span_id in ids else None
        by_parent.setdefault(parent, []).append(s)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for s in sorted(by_parent.get(parent, []), key=_sort_key):
            lines.append(f"{'  ' * depth}{s.name} ({s.kind.name})")
            walk(s.context.span_id, depth + 1)

    walk(None, 0)
    return lines


def one(spans: Sequence[Any], name: str) -> Any:
    """The only span called ``name``."""
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def children(spans: Sequence[Any], parent: Any) -> list[Any]:
    return sorted(
        [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id], key=_sort_key
    )


def is_child(child: Any, parent: Any) -> bool:
    return child.parent is not None and child.parent.span_id == parent.context.span_id


def events(span: Any, name: str) -> list[dict[str, Any]]:
    return [dict(e.attributes or {}) for e in span.events if e.name == name]


def trace_ids(spans: Sequence[Any]) -> set[int]:
    return {s.context.trace_id for s in spans}
