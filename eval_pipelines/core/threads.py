"""Work on a worker thread that an asyncio caller may stop waiting for."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def made_in_thread(make: Callable[[], T], destroy: Callable[[T], None]) -> T:
    """`make()` on a worker thread, and nothing leaked if this coroutine is cancelled meanwhile.

    A cancelled `asyncio.to_thread` stops waiting but not the thread: the sandbox (or network
    namespace) it goes on to make would have no owner left to destroy it (a stopped run left
    such sandboxes behind). Whoever comes second, the thread or the cancelled waiter,
    destroys it.
    """
    lock = threading.Lock()
    state: dict[str, Any] = {"cancelled": False, "made": None}

    def run() -> T | None:
        made = make()
        with lock:
            if state["cancelled"]:
                destroy(made)
                return None
            state["made"] = made
        return made

    task = asyncio.ensure_future(asyncio.to_thread(run))
    try:
        return await asyncio.shield(task)  # type: ignore[return-value]
    except asyncio.CancelledError:
        with lock:
            state["cancelled"] = True
            made = state["made"]
        if made is not None:
            destroy(made)
        raise
