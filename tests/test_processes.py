"""Process identities the stop paths rely on, read from /proc as they are now."""

import subprocess
import time

from eval_pipelines.core.processes import session_members


def _wait_for(predicate, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_a_session_s_members_are_read_afresh_each_time():
    """A kill that stops a session until it stops growing must see processes forked after
    its first look (a cached answer would let them escape)."""
    leader = subprocess.Popen(
        ["sh", "-c", "sleep 30 & read go; sleep 31 & wait"],
        stdin=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert _wait_for(lambda: len(session_members(leader.pid)) == 2)
        first = session_members(leader.pid)
        assert leader.pid in first
        leader.stdin.write(b"go\n")
        leader.stdin.flush()
        assert _wait_for(lambda: len(session_members(leader.pid)) == 3), "a new member unseen"
        assert first < session_members(leader.pid)
    finally:
        subprocess.run(["pkill", "-KILL", "-s", str(leader.pid)], check=False)
        leader.wait()
