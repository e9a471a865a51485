"""Fixtures for the LangChain / LangGraph instrumentor tests.

``lc`` is the shared ``audit`` pipeline (raw content, the OpenAI instrumentor installed) plus
the LangChain instrumentor, uninstrumented after the test. The instrumentor is a singleton:
an autouse fixture makes sure no test leaves it installed for the next.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_llm_audit.instrumentation.langchain import LangChainInstrumentor

_HERE = Path(__file__).parent
#: Deprecations inside the frameworks themselves, not ours to fix: langchain-core 0.3 reads
#: ``model_fields`` on instances (pydantic 2.11 warns), langgraph 1.x moved ``create_react_agent``.
_FRAMEWORK_WARNINGS = (
    "ignore::DeprecationWarning:langchain_core.load.serializable",
    "ignore:create_react_agent has been moved",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.fspath)).parents:
            for spec in _FRAMEWORK_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(spec))


@pytest.fixture(autouse=True)
def _leave_langchain_uninstrumented() -> Iterator[None]:
    yield
    instrumentor = LangChainInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@pytest.fixture
def lc(audit: Any) -> Any:
    """The audit pipeline with OpenAI and LangChain instrumented."""
    audit.add_instrumentor(LangChainInstrumentor())
    return audit


@pytest.fixture
def lc_handler(lc: Any) -> Any:
    """The LangChain instrumentor's callback handler (its run map, for the bounded-map tests)."""
    return LangChainInstrumentor().handler
