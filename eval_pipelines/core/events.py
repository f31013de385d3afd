"""What sandboxes observe, as events the monitor can judge.

Sandboxes publish on a process-global bus, synchronously and from the coroutine of the tool
call that caused the event, so a subscriber can ask Inspect which sample is running (the
call's context) and act before the call returns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SandboxEventKind = Literal["limit_hit", "network_attempt", "process_spike", "counters"]


class SandboxEvent(BaseModel):
    """One observation from a sandbox; `details` depends on `kind`.

    - limit_hit: {"limit": "memory"|"pids"|"cpu_seconds"|"wall_time"|"output"|"disk", ...}
    - network_attempt: {"destination": "203.0.113.9", "port": 443, "protocol": "tcp"}
    - process_spike / counters: {"memory_bytes": int, "pids": int, "cpu_seconds": float}
    """

    model_config = ConfigDict(frozen=True)

    kind: SandboxEventKind
    sandbox: str = Field(description="The sandbox's id (its folder name).")
    details: dict[str, Any] = Field(default_factory=dict)
    at: float = Field(default_factory=time.time, description="Unix time of the observation.")


Subscriber = Callable[[SandboxEvent], None]
_subscribers: list[Subscriber] = []
_lock = threading.Lock()


def subscribe(subscriber: Subscriber) -> Callable[[], None]:
    """Receive every sandbox event of this process; returns the unsubscribe function."""
    with _lock:
        _subscribers.append(subscriber)

    def unsubscribe() -> None:
        with _lock:
            if subscriber in _subscribers:
                _subscribers.remove(subscriber)

    return unsubscribe


def publish(event: SandboxEvent) -> None:
    """Deliver to every subscriber, in the caller's context; a failing subscriber raises."""
    with _lock:
        subscribers = list(_subscribers)
    for subscriber in subscribers:
        subscriber(event)
