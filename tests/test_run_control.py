"""Stopping a running evaluation: the mechanism, on a real instance, without Inspect.

The end-to-end faults (kill -9, Terminate, daemon restarts) are in test_run_faults.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time

import pytest
from dagster import DagsterInstance, DagsterRunStatus
from dagster._core.launcher import WorkerStatus

from eval_pipelines.core.names import WORKER_TAG
from eval_pipelines.core.processes import ProcessIdentity
from eval_pipelines.execution.launcher import fail_runs_with_dead_workers, worker_health
from eval_pipelines.execution.stopping import EvaluationStopped, RunWatch, run_until_stopped
from tests.run_support import Work, started_run


def test_run_canceled_in_the_instance_stops_the_work(instance: DagsterInstance):
    run = started_run(instance)
    work = Work(cleanup_seconds=0.3)

    def cancel_soon():
        work.started.wait(30)
        instance.report_run_canceling(run, message="operator")

    threading.Thread(target=cancel_soon, daemon=True).start()
    began = time.monotonic()
    with RunWatch(instance, run.run_id, poll_seconds=0.1) as watch:
        with pytest.raises(EvaluationStopped, match="CANCELING"):
            run_until_stopped(work, watch)
    assert work.cleaned_up.is_set(), "raised before the work finished cleaning up"
    assert time.monotonic() - began < 20


def test_a_second_interrupt_does_not_cut_the_cleanup_short(instance: DagsterInstance):
    """Dagster interrupts by signal while the watch also sees the stop; CPython 3.11's
    Thread.join, cut short by a raising signal handler, declares a running thread dead."""
    run = started_run(instance)
    work = Work(cleanup_seconds=1.5)

    class Interrupt(BaseException):
        pass

    def raise_interrupt(signum, frame):
        raise Interrupt()

    previous = signal.signal(signal.SIGINT, raise_interrupt)

    both_sent = threading.Event()

    def interrupt_twice():
        work.started.wait(30)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)  # during the cleanup
        os.kill(os.getpid(), signal.SIGINT)
        both_sent.set()

    interrupter = threading.Thread(target=interrupt_twice, daemon=True)
    try:
        interrupter.start()
        with RunWatch(instance, run.run_id, poll_seconds=0.1) as watch:
            with pytest.raises(Interrupt):
                run_until_stopped(work, watch)
        cleaned_up_when_raised = work.cleaned_up.is_set()
    finally:
        # Both signals must land while our handler is installed, whatever happened.
        for _ in range(2):
            try:
                both_sent.wait(30)
                time.sleep(0.2)
            except Interrupt:
                pass
        signal.signal(signal.SIGINT, previous)
    assert cleaned_up_when_raised, "the second interrupt cut the cleanup short"


def test_an_interrupt_while_the_work_starts_still_cancels_and_waits(instance: DagsterInstance):
    """A signal can land before the wait loop is entered (here: while the watch registers
    its callback): the work has started, so it is still cancelled and given its cleanup
    before the interrupt goes on."""
    run = started_run(instance)
    work = Work(cleanup_seconds=0.5)

    class Interrupt(BaseException):
        pass

    class InterruptedWhileRegistering(RunWatch):
        def on_stop(self, callback):
            work.started.wait(30)
            raise Interrupt()

    with InterruptedWhileRegistering(instance, run.run_id, poll_seconds=0.1) as watch:
        with pytest.raises(Interrupt):
            run_until_stopped(work, watch)
    assert work.cleaned_up.is_set(), "the interrupt left the work running, uncancelled"


def test_work_that_finishes_returns_its_result(instance: DagsterInstance):
    run = started_run(instance)

    async def answer():
        await asyncio.sleep(0.05)
        return 42

    with RunWatch(instance, run.run_id, poll_seconds=0.1) as watch:
        assert run_until_stopped(answer, watch) == 42


def test_worker_health_follows_the_recorded_process(instance: DagsterInstance):
    worker = subprocess.Popen(["sleep", "600"])
    try:
        identity = ProcessIdentity.of(worker.pid)
        run = started_run(instance, {WORKER_TAG: identity.to_tag()})
        assert worker_health(run).status == WorkerStatus.RUNNING
        assert fail_runs_with_dead_workers(instance) == []

        worker.kill()
        worker.wait()
        health = worker_health(run)
        assert health.status == WorkerStatus.FAILED and str(worker.pid) in health.msg
        assert fail_runs_with_dead_workers(instance) == [run.run_id]
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
    finally:
        worker.kill()


def test_a_worker_on_another_host_is_never_declared_dead(instance: DagsterInstance):
    foreign = ProcessIdentity(host="elsewhere", boot="x", pid=1, start="1")
    run = started_run(instance, {WORKER_TAG: foreign.to_tag()})
    assert worker_health(run).status == WorkerStatus.RUNNING
    assert fail_runs_with_dead_workers(instance) == []
