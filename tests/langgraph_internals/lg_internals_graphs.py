"""Real LangGraph graphs and a file-backed saver for the LangGraph internals tests.

Imported by the tests (``tests/langgraph_internals`` is on ``sys.path`` while they run) and by
the child process of the cross-process resume test, which is why it is a module of its own.
"""

from __future__ import annotations

import operator
import os
import pickle
import threading
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send, interrupt

try:  # langgraph-checkpoint 2.x and 4.x keep it in the same module
    from langgraph.checkpoint.base import WRITES_IDX_MAP
except ImportError:  # pragma: no cover
    WRITES_IDX_MAP = {"__error__": -1, "__scheduled__": -2, "__interrupt__": -3, "__resume__": -4}


class RefundState(TypedDict):
    amount: int
    log: Annotated[list[str], operator.add]


def plan(state: RefundState) -> dict[str, Any]:
    return {"log": ["plan"]}


def route_refund(state: RefundState) -> str:
    return "needs_review" if state["amount"] > 100 else "auto"


def review(state: RefundState) -> dict[str, Any]:
    answer = interrupt({"type": "refund_approval", "amount": state["amount"], "note": "refund to jane.roe@example.com"})
    return {"log": [f"review:{answer}"]}


def execute(state: RefundState) -> dict[str, Any]:
    return {"log": ["execute"]}


def refund_graph(saver: Any = None) -> Any:
    """plan -> (route_refund) -> review (interrupts) -> execute, or plan -> execute."""
    graph = StateGraph(RefundState)
    graph.add_node("plan", plan)
    graph.add_node("review", review)
    graph.add_node("execute", execute)
    graph.add_edge(START, "plan")
    graph.add_conditional_edges("plan", route_refund, {"needs_review": "review", "auto": "execute"})
    graph.add_edge("review", "execute")
    graph.add_edge("execute", END)
    return graph.compile(checkpointer=saver)


async def aplan(state: RefundState) -> dict[str, Any]:
    return {"log": ["plan"]}


async def areview(state: RefundState) -> dict[str, Any]:
    answer = interrupt({"type": "refund_approval", "amount": state["amount"], "note": "refund to jane.roe@example.com"})
    return {"log": [f"review:{answer}"]}


async def aexecute(state: RefundState) -> dict[str, Any]:
    return {"log": ["execute"]}


def async_refund_graph(saver: Any = None) -> Any:
    """The same graph with coroutine nodes (run by ``ainvoke`` / ``astream``)."""
    graph = StateGraph(RefundState)
    graph.add_node("plan", aplan)
    graph.add_node("review", areview)
    graph.add_node("execute", aexecute)
    graph.add_edge(START, "plan")
    graph.add_conditional_edges("plan", route_refund, {"needs_review": "review", "auto": "execute"})
    graph.add_edge("review", "execute")
    graph.add_edge("execute", END)
    return graph.compile(checkpointer=saver)


class FanState(TypedDict):
    topics: list[str]
    notes: Annotated[list[str], operator.add]


def fan_out(state: FanState) -> list[Send]:
    return [Send("research", {"topics": [t], "notes": []}) for t in state["topics"]]


def research(state: FanState) -> dict[str, Any]:
    return {"notes": [f"note:{state['topics'][0]}"]}


def literal_route(state: FanState) -> Literal["summarize", "__end__"]:
    return "summarize" if state["notes"] else END


def summarize(state: FanState) -> dict[str, Any]:
    return {"notes": ["summary"]}


def fan_graph() -> Any:
    """START fans out with Send to ``research`` (no path_map); ``research`` routes by a Literal hint."""
    graph = StateGraph(FanState)
    graph.add_node("research", research)
    graph.add_node("summarize", summarize)
    graph.add_conditional_edges(START, fan_out)
    graph.add_conditional_edges("research", literal_route)
    graph.add_edge("summarize", END)
    return graph.compile()


class AskState(TypedDict):
    log: Annotated[list[str], operator.add]


def ask_twice(state: AskState) -> dict[str, Any]:
    first = interrupt({"type": "dose_check", "question": "Is 5mg right for patient 7?"})
    second = interrupt({"type": "discharge_check"})
    return {"log": [f"first:{first}", f"second:{second}"]}


def twice_graph(saver: Any) -> Any:
    graph = StateGraph(AskState)
    graph.add_node("ask", ask_twice)
    graph.add_edge(START, "ask")
    graph.add_edge("ask", END)
    return graph.compile(checkpointer=saver)


def ask_once(state: AskState) -> dict[str, Any]:
    answer = interrupt({"type": "tool_approval"})
    return {"log": [f"answer:{answer}"]}


def subgraph_graph(saver: Any) -> Any:
    """A parent graph whose node ``specialist`` is a compiled subgraph that interrupts in ``ask``."""
    inner = StateGraph(AskState)
    inner.add_node("ask", ask_once)
    inner.add_edge(START, "ask")
    inner.add_edge("ask", END)
    outer = StateGraph(AskState)
    outer.add_node("specialist", inner.compile())
    outer.add_edge(START, "specialist")
    outer.add_edge("specialist", END)
    return outer.compile(checkpointer=saver)


class FileSaver(BaseCheckpointSaver):  # type: ignore[misc]
    """A third-party saver: checkpoints in a pickle file, serialized with the saver's serde.

    Another process opening the same file sees the same checkpoints and pending writes, as a
    database-backed saver would.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self._lock = threading.Lock()

    def _load(self) -> dict[str, Any]:
        if not os.path.exists(self.path):
            return {"checkpoints": {}, "writes": {}}
        with open(self.path, "rb") as f:
            return pickle.load(f)  # type: ignore[no-any-return]

    def _save(self, data: dict[str, Any]) -> None:
        with open(self.path, "wb") as f:
            pickle.dump(data, f)

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        conf = config["configurable"]
        thread, ns = str(conf["thread_id"]), conf.get("checkpoint_ns", "")
        with self._lock:
            data = self._load()
        saved = data["checkpoints"].get((thread, ns), {})
        checkpoint_id = conf.get("checkpoint_id") or (max(saved) if saved else None)
        if checkpoint_id is None or checkpoint_id not in saved:
            return None
        checkpoint, metadata, parent_id = saved[checkpoint_id]
        writes = data["writes"].get((thread, ns, checkpoint_id), {})
        return CheckpointTuple(
            config={"configurable": {"thread_id": thread, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}},
            checkpoint=self.serde.loads_typed(checkpoint),
            metadata=metadata,
            parent_config=(
                {"configurable": {"thread_id": thread, "checkpoint_ns": ns, "checkpoint_id": parent_id}}
                if parent_id
                else None
            ),
            pending_writes=[
                (task_id, channel, self.serde.loads_typed(value))
                for (task_id, _idx), (channel, value) in sorted(writes.items())
            ],
        )

    def list(self, config: RunnableConfig | None, **kwargs: Any) -> Iterator[CheckpointTuple]:
        """The thread's checkpoints, newest first (``get_state_history`` reads them)."""
        assert config is not None
        conf = config["configurable"]
        thread, ns = str(conf["thread_id"]), conf.get("checkpoint_ns", "")
        with self._lock:
            saved = self._load()["checkpoints"].get((thread, ns), {})
        for checkpoint_id in sorted(saved, reverse=True):
            found = self.get_tuple(
                {"configurable": {"thread_id": thread, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}}
            )
            if found is not None:
                yield found

    def put(self, config: RunnableConfig, checkpoint: Any, metadata: Any, new_versions: Any) -> RunnableConfig:
        conf = config["configurable"]
        thread, ns = str(conf["thread_id"]), conf.get("checkpoint_ns", "")
        with self._lock:
            data = self._load()
            data["checkpoints"].setdefault((thread, ns), {})[checkpoint["id"]] = (
                self.serde.dumps_typed(checkpoint),
                dict(metadata),
                conf.get("checkpoint_id"),
            )
            self._save(data)
        return {"configurable": {"thread_id": thread, "checkpoint_ns": ns, "checkpoint_id": checkpoint["id"]}}

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        conf = config["configurable"]
        key = (str(conf["thread_id"]), conf.get("checkpoint_ns", ""), conf["checkpoint_id"])
        with self._lock:
            data = self._load()
            stored = data["writes"].setdefault(key, {})
            for idx, (channel, value) in enumerate(writes):
                stored[(task_id, WRITES_IDX_MAP.get(channel, idx))] = (channel, self.serde.dumps_typed(value))
            self._save(data)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.get_tuple(config)

    async def aput(self, config: RunnableConfig, checkpoint: Any, metadata: Any, new_versions: Any) -> RunnableConfig:
        return self.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        self.put_writes(config, writes, task_id, task_path)
