"""Stopping an exec must not fail when its processes are already gone."""

import asyncio
import signal

import pytest

from eval_pipelines.sandbox._environment import _Sandbox
from eval_pipelines.specs import SandboxSpec
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
