"""Running an agent the three ways the SDK offers (imported as ``agent_runs``)."""

from __future__ import annotations

import asyncio
from typing import Any

MODES = ["sync", "async", "streamed"]


def run_sync(agent: Any, user_input: Any, **kwargs: Any) -> Any:
    """``Runner.run_sync`` with an event loop set, as in an application's main thread.

    openai-agents 0.2 runs on ``asyncio.get_event_loop()``, which has none once an earlier
    ``asyncio.run`` (another test) closed its own.
    """
    from agents import Runner

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return Runner.run_sync(agent, user_input, **kwargs)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


async def run_streamed(agent: Any, user_input: Any, **kwargs: Any) -> Any:
    """``Runner.run_streamed``, consumed to the end."""
    from agents import Runner

    result = Runner.run_streamed(agent, user_input, **kwargs)
    async for _ in result.stream_events():
        pass
    return result


def run(agent: Any, mode: str, user_input: Any, **kwargs: Any) -> Any:
    """Run ``agent`` with ``Runner.run_sync`` (``sync``), ``Runner.run`` (``async``) or ``Runner.run_streamed``."""
    from agents import Runner

    if mode == "sync":
        return run_sync(agent, user_input, **kwargs)
    if mode == "async":
        return asyncio.run(Runner.run(agent, user_input, **kwargs))
    return asyncio.run(run_streamed(agent, user_input, **kwargs))
