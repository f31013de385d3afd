"""Stopping an exec must not fail when its processes are already gone."""

import asyncio
import signal

import pytest

from eval_pipelines.catalog.specs import SandboxSpec
from eval_pipelines.sandbox._environment import _Sandbox
from tests.sandbox_support import require_sandbox_host


def test_stop_tolerates_a_group_that_exits_after_the_wait_times_out(
    monkeypatch: pytest.MonkeyPatch,
):
    """The race seen under load: the 5 s wait times out, the group exits, then the kill.

    Before the fix os.killpg raised ProcessLookupError, which errored the sample.
    """
    require_sandbox_host()
    sandbox = _Sandbox(SandboxSpec())

    async def stop_after_race() -> int | None:
        process = await asyncio.create_subprocess_exec("sleep", "60", start_new_session=True)

        async def times_out_as_the_group_exits(waiting, timeout):
            process.kill()
            await waiting  # the real process.wait(): reaped, so its process group is gone
            raise TimeoutError

        with monkeypatch.context() as patched:
            patched.setattr(asyncio, "wait_for", times_out_as_the_group_exits)
            await sandbox._stop(process)
        return process.returncode

    try:
        assert asyncio.run(stop_after_race()) == -signal.SIGKILL
    finally:
        sandbox.destroy()


def test_a_sandbox_made_while_its_sample_is_cancelled_is_destroyed():
    """Cancelled while a worker thread creates the sandbox: the sandbox must not leak."""
    import asyncio
    import threading
    import time

    from eval_pipelines.core.threads import made_in_thread

    destroyed: list[object] = []
    made = threading.Event()

    def make():
        time.sleep(0.5)
        made.set()
        return "sandbox"

    async def main():
        waiter = asyncio.ensure_future(made_in_thread(make, destroyed.append))
        await asyncio.sleep(0.1)
        waiter.cancel()
        try:
            await waiter
        except asyncio.CancelledError:
            pass
        await asyncio.to_thread(made.wait, 10)
        await asyncio.sleep(0.1)  # the thread finishes and finds nobody waiting

    asyncio.run(main())
    assert destroyed == ["sandbox"]


def test_a_sandbox_made_without_cancel_is_handed_over():
    import asyncio

    from eval_pipelines.core.threads import made_in_thread

    destroyed: list[object] = []
    assert asyncio.run(made_in_thread(lambda: "sandbox", destroyed.append)) == "sandbox"
    assert destroyed == []


def test_a_sandbox_dropped_without_destroy_is_torn_down():
    """A sample whose cleanup never ran must not leave its folder, tmpfs and cgroup behind
    for as long as its (long-lived) process lives: the reaper skips live owners."""
    import gc

    require_sandbox_host()
    sandbox = _Sandbox(SandboxSpec())
    root, work, cgroup_dirs = sandbox.root, sandbox.work, list(sandbox.cgroup.dirs)
    assert f" {work} " in open("/proc/self/mountinfo").read()
    del sandbox
    gc.collect()
    assert not root.exists()
    assert f" {work} " not in open("/proc/self/mountinfo").read()
    assert not any(d.exists() for d in cgroup_dirs)
