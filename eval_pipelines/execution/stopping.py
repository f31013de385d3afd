"""Stop means stop: an Inspect evaluation that ends within seconds of its run being stopped.

Why this exists: Inspect's control server (uvicorn) takes over SIGINT while an eval runs on
the main thread and re-raises it inside its own server task, where it is swallowed, so
Dagster's interrupt never reached the eval and a terminated run went on evaluating. Here the
eval runs on a thread of its own, with its control server off, and the op's main thread
only waits: Dagster's interrupt lands there, and so does a watch that notices the run was
stopped some other way (canceled in the instance, failed by the worker health check, or the
process that started this one died). Either way the eval's task is cancelled, which ends
its model calls and tool calls and kills its sandboxes; Inspect writes what it finished to
the log as `cancelled`.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from dagster import DagsterExecutionInterruptedError, DagsterInstance, DagsterRunStatus
from dagster._utils.interrupts import capture_interrupts

from eval_pipelines.core.names import SAFETY_STOPPED_TAG, STOP_REASON_TAG
from eval_pipelines.core.run_tags import add_run_tags_durably

T = TypeVar("T")

# Statuses in which a run must not be doing any more work.
STOPPED_STATUSES = frozenset(
    {
        DagsterRunStatus.CANCELING,
        DagsterRunStatus.CANCELED,
        DagsterRunStatus.FAILURE,
        DagsterRunStatus.SUCCESS,
    }
)


def stop_run(instance: DagsterInstance, run_id: str, reason: str, *, safety: bool) -> bool:
    """Tag the run with why it stops (and that safety stopped it) and cancel it through the
    run coordinator, if it is still going: True if this call asked it to stop.

    The one way every stop is asked (evalctl, the in-process monitor, the safety sensor): the
    tags are set before the cancel, so whoever sees the run canceled also sees why.
    """
    run = instance.get_run_by_id(run_id)
    if run is None or run.is_finished or run.status == DagsterRunStatus.CANCELING:
        return False
    tags = {STOP_REASON_TAG: reason, **({SAFETY_STOPPED_TAG: "true"} if safety else {})}
    instance.add_run_tags(run_id, tags)
    instance.run_coordinator.cancel_run(run_id)
    # The cancel's status changes race with the tags: check they survived, rewrite if not.
    add_run_tags_durably(instance, run_id, tags)
    return True


class EvaluationStopped(DagsterExecutionInterruptedError):
    """The run was stopped while this op evaluated; Dagster treats it as an interrupt."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class RunWatch:
    """Polls, on a daemon thread, for the reasons this op process must stop working.

    - the run is no longer running in the instance (Terminate, `evalctl stop`, a run
      marked failed because its worker died);
    - the process that started this one died (a step process whose run worker was killed):
      nobody is left to record its results.
    """

    def __init__(self, instance: DagsterInstance, run_id: str, poll_seconds: float = 1.0):
        self._instance = instance
        self._run_id = run_id
        self._poll_seconds = poll_seconds
        self._parent = multiprocessing.parent_process()
        self._parent_pid = os.getppid()
        self._reason: str | None = None
        self._stopped = threading.Event()
        self._closed = threading.Event()
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="run-watch", daemon=True)

    @property
    def reason(self) -> str | None:
        return self._reason

    @property
    def parent_died(self) -> bool:
        return self._parent is not None and (
            not self._parent.is_alive() or os.getppid() != self._parent_pid
        )

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call `callback` (from the watch thread) as soon as a stop is detected."""
        with self._lock:
            self._callbacks.append(callback)
            fire = self._reason is not None
        if fire:
            callback()

    def stop(self, reason: str) -> None:
        with self._lock:
            if self._reason is not None:
                return
            self._reason = reason
            callbacks = list(self._callbacks)
        self._stopped.set()
        for callback in callbacks:
            callback()

    def wait(self, timeout: float) -> bool:
        return self._stopped.wait(timeout)

    def __enter__(self) -> RunWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closed.set()

    def _check(self) -> str | None:
        if self.parent_died:
            return "the process that started this step died (run worker killed)"
        run = self._instance.get_run_by_id(self._run_id)
        if run is None or run.status not in STOPPED_STATUSES:
            return None
        why = run.tags.get(STOP_REASON_TAG)
        return f"run is {run.status.value}" + (f": {why}" if why else "")

    def _loop(self) -> None:
        while not self._closed.wait(self._poll_seconds):
            try:
                reason = self._check()
            except Exception:  # storage briefly unavailable: keep watching
                continue
            if reason:
                self.stop(reason)
                return


class _LoopThread(threading.Thread, Generic[T]):
    """Runs one coroutine on its own event loop; `cancel()` is safe from any thread, at any
    time, even before the loop exists (the coroutine is then cancelled as it starts).

    Wait on `done`, never `join()`: CPython 3.11's join, cut short by a signal handler that
    raises (Dagster's interrupt), marks a still-running thread as stopped (bpo-45274's fix).
    """

    def __init__(self, make: Callable[[], Awaitable[T]]):
        super().__init__(name="inspect-eval", daemon=True)
        self._make = make
        self.done = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self.result: T | None = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._cancelled = False

    def run(self) -> None:
        async def main() -> T:
            task = asyncio.current_task()
            assert task is not None
            with self._lock:
                self._loop, self._task = asyncio.get_running_loop(), task
                if self._cancelled:
                    task.cancel()
            return await self._make()

        try:
            self.result = asyncio.run(main())
        except BaseException as exc:  # handed to the waiting thread
            self.error = exc
        finally:
            self.done.set()

    def cancel(self) -> None:
        """Cancel once: a second cancel would cut into Inspect's cleanup (its log write)."""
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            loop, task = self._loop, self._task
        if loop is None or task is None:  # not started yet: main() cancels itself
            return
        try:
            loop.call_soon_threadsafe(task.cancel)
        except RuntimeError:  # loop already closed: the coroutine has finished
            pass


def _cancel_and_wait(worker: _LoopThread, seconds: float) -> None:
    """Cancel the work and give it `seconds` to clean up, holding back further interrupts
    meanwhile: a stop often arrives twice (Dagster's signal and the watch's status poll, or
    SIGINT then SIGTERM), and the second must not cut short the sandbox kills and log write
    the first one started. Dagster's `capture_interrupts` records SIGINT/SIGTERM instead of
    raising while it is entered (on the main thread; elsewhere no signal handler runs)."""
    with capture_interrupts():
        worker.cancel()
        if worker.ident is not None:  # its thread started; else nothing is running
            worker.done.wait(seconds)


def run_until_stopped(
    make: Callable[[], Awaitable[T]],
    watch: RunWatch,
    *,
    grace_seconds: float = 30.0,
    poll_seconds: float = 0.2,
) -> T:
    """Run `make()` to completion unless the run stops; then cancel it and raise.

    Raises `EvaluationStopped` when `watch` saw the run stop, or re-raises the interrupt
    Dagster delivered to this thread, after the coroutine has been cancelled and has had
    `grace_seconds` to finish its cleanup (sandboxes killed, log written). The worker starts
    inside the `try`: an interrupt that lands while it starts still cancels and waits.
    """
    worker: _LoopThread[T] = _LoopThread(make)
    try:
        worker.start()
        watch.on_stop(worker.cancel)
        while not worker.done.wait(poll_seconds):
            if watch.reason is not None:
                raise EvaluationStopped(watch.reason)
    except BaseException:
        _cancel_and_wait(worker, grace_seconds)
        raise
    if watch.reason is not None:
        raise EvaluationStopped(watch.reason)
    if worker.error is not None:
        raise worker.error
    return worker.result  # type: ignore[return-value]
