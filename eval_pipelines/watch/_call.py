"""What one exec does, as it happens: cgroup counters, limit hits and network attempts,
published on the safety event bus (`eval_pipelines.core.events`).

Counters are sampled every `SAMPLE_SECONDS` while the call runs (and the network traps
drained: at once when the caller wires `on_packets` to a trap's fd, else at the tick) but
published only when
one moves by a margin (plus the call's peak at its end), so a busy call does not flood the
bus. Every event is published from a task of the tool call's coroutine (same context), so
the monitor knows which sample caused it; if a subscriber raises (the monitor stopping the
sample), the sandbox's processes are killed first, then the exception ends the call.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import time
from collections.abc import Callable
from typing import Any

from eval_pipelines.core.events import SandboxEvent, SandboxEventKind, publish
from eval_pipelines.watch._cgroups import Cgroup
from eval_pipelines.watch._network import Attempt

SAMPLE_SECONDS = 0.05  # 20 Hz; the issue asks for >= 10 Hz
# Publish counters again only when one moves this much since the last published value.
MEMORY_MARGIN = 0.10  # of the memory limit
PIDS_MARGIN = 4
CPU_MARGIN_SECONDS = 1.0
# A process spike: this many more processes than at some point in the last second.
SPIKE_PIDS = 8
SPIKE_WINDOW_SECONDS = 1.0


class CallWatch:
    """Watches one exec of a sandbox; `observe()` runs beside the call, `finish()` after it."""

    def __init__(
        self,
        sandbox: str,
        cgroup: Cgroup,
        attempts: Callable[[], list[Attempt]],
        memory_limit: int,
        pids_limit: int,
        kill: Callable[[], None],
    ):
        """`attempts` drains the sandbox's network traps (non-blocking); `kill` stops
        everything the call runs."""
        self.sandbox, self._cgroup, self._attempts = sandbox, cgroup, attempts
        self._memory_limit, self._pids_limit, self._kill = memory_limit, pids_limit, kill
        self._started = time.time()
        self.start_usage = cgroup.usage()
        self._start_events = cgroup.counters()
        self._published = dict(self.start_usage)
        # Seeded with the call's start: a bomb already at its peak by the first sample spikes.
        self._recent_pids = collections.deque([(time.monotonic(), self.start_usage["pids"])])
        self._spike_reported = 0.0
        self.peak = dict(self.start_usage)
        self.samples = 0
        self.limits_hit: dict[str, dict[str, Any]] = {}
        self._pending: list[Attempt] = []
        self._seen_attempts: set[tuple[str, int | None, str]] = set()
        self._wake = asyncio.Event()
        self._done = False

    # -- running beside the call --------------------------------------------------------

    def on_packets(self) -> None:
        """Event-loop reader callback of a trap's fd: answer now, publish from observe()."""
        self._pending += self._attempts()
        self._wake.set()

    async def observe(self) -> None:
        """Sample and publish until `stop()`; a subscriber's exception kills the sandbox."""
        try:
            while not self._done:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SAMPLE_SECONDS):
                        await self._wake.wait()
                self._wake.clear()
                self._pending += self._attempts()
                self._publish_attempts()
                self.sample()
        except BaseException:
            self._kill()
            raise

    def stop(self) -> None:
        self._done = True
        self._wake.set()

    def sample(self) -> None:
        usage, events = self._cgroup.usage(), self._cgroup.counters()
        self.samples += 1
        for key, value in usage.items():
            self.peak[key] = max(self.peak[key], value)
        self._spike(usage)
        if events["oom_kill"] > self._start_events["oom_kill"]:
            self.hit("memory", limit_bytes=self._memory_limit)
        if events["pids_max"] > self._start_events["pids_max"] or usage["pids"] >= self._pids_limit:
            self.hit("pids", max_pids=self._pids_limit)
            # The count reached pids.max, even if between two samples: that is a spike too.
            self._spike({**usage, "pids": self._pids_limit})
        if self._moved(usage):
            self._published = usage
            self._emit("counters", usage)

    def _spike(self, usage: dict[str, float]) -> None:
        """A rise of SPIKE_PIDS within the window, reported again only PIDS_MARGIN higher."""
        now, pids = time.monotonic(), usage["pids"]
        self._recent_pids.append((now, pids))
        while self._recent_pids[0][0] < now - SPIKE_WINDOW_SECONDS:
            self._recent_pids.popleft()
        low = min(p for _, p in self._recent_pids)
        if pids - low >= SPIKE_PIDS and pids >= self._spike_reported + PIDS_MARGIN:
            self._spike_reported = pids
            self._emit("process_spike", {**usage, "rose_from_pids": low})

    def _moved(self, usage: dict[str, float]) -> bool:
        last = self._published
        return (
            abs(usage["memory_bytes"] - last["memory_bytes"]) >= MEMORY_MARGIN * self._memory_limit
            or abs(usage["pids"] - last["pids"]) >= PIDS_MARGIN
            or usage["cpu_seconds"] - last["cpu_seconds"] >= CPU_MARGIN_SECONDS
        )

    def _publish_attempts(self) -> None:
        pending, self._pending = self._pending, []
        for attempt in pending:
            key = (attempt.destination, attempt.port, attempt.protocol)
            if key in self._seen_attempts:  # retransmits and repeats within one call
                continue
            self._seen_attempts.add(key)
            self._emit("network_attempt", attempt.details(), at=attempt.at)

    def hit(self, limit: str, **details: Any) -> None:
        """A limit was hit: published once per limit and call."""
        if limit not in self.limits_hit:
            self.limits_hit[limit] = details
            self._emit("limit_hit", {"limit": limit, **details})

    def _emit(self, kind: SandboxEventKind, details: dict[str, Any], at: float | None = None):
        publish(
            SandboxEvent(kind=kind, sandbox=self.sandbox, details=details, at=at or time.time())
        )

    # -- after the call -----------------------------------------------------------------

    def finish(self, work_dir: str | None = None) -> None:
        """The last attempts and sample, the call's peak, and a full work dir (ENOSPC)."""
        self.on_packets()
        self._publish_attempts()
        self.sample()
        if work_dir is not None and os.statvfs(work_dir).f_bavail == 0:
            self.hit("disk", where="/work")
        self._emit(
            "counters",
            {
                **self.peak,
                "peak": True,
                "samples": self.samples,
                "seconds": round(time.time() - self._started, 3),
                "cpu_seconds_used": round(
                    self.peak["cpu_seconds"] - self.start_usage["cpu_seconds"], 3
                ),
            },
        )

    def notes(self, memory_mb: int, pids: int) -> list[str]:
        """Limits hit during the call, for its output: blocked attempts show in the transcript."""
        notes = []
        if "memory" in self.limits_hit:
            notes.append(f"[sandbox] memory limit ({memory_mb} MB) reached: process killed")
        if "pids" in self.limits_hit:
            notes.append(f"[sandbox] process limit ({pids}) reached: fork refused")
        return notes
