"""scripts/setup.sh's host checks and apt step, run for real but changing nothing.

The apt step is driven through `apt-get check`: it takes the same dpkg lock an install takes
and installs nothing.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parent.parent / "scripts" / "setup.sh"
DPKG_FRONTEND_LOCK = Path("/var/lib/dpkg/lock-frontend")


def setup_function(body: str, **env: str) -> subprocess.CompletedProcess:
    """Run bash code with setup.sh's functions defined (sourcing it runs nothing)."""
    return subprocess.run(
        ["bash", "-c", f'source "{SETUP}"; {body}'],
        capture_output=True, text=True, timeout=240, env={**os.environ, **env},
    )  # fmt: skip


def test_libseccomp_detection_has_no_false_negatives():
    listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    if "libseccomp.so.2" not in listing:
        pytest.skip("libseccomp is not installed here")
    # The old `ldconfig -p | grep -q` under pipefail said "missing" about 6% of the time.
    result = setup_function(
        "misses=0; for _ in $(seq 200); do have_libseccomp || misses=$((misses+1)); done;"
        ' echo "$misses"'
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0", f"{result.stdout.strip()} of 200 checks said missing"


@pytest.fixture
def dpkg_lock():
    """Hold the dpkg frontend lock the way apt does (an fcntl write lock) from another process."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None or not DPKG_FRONTEND_LOCK.exists():
        pytest.skip("needs root and Debian's apt")
    holders = []

    def hold(seconds: float) -> subprocess.Popen:
        holder = subprocess.Popen(
            [sys.executable, "-c", (
                "import fcntl, os, sys, time\n"
                f"fd = os.open({str(DPKG_FRONTEND_LOCK)!r}, os.O_RDWR)\n"
                "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
                "print('held', flush=True)\n"
                f"time.sleep({seconds})\n"
            )],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        holders.append(holder)
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        return holder

    yield hold
    for holder in holders:
        holder.kill()
        holder.wait()


def test_apt_step_waits_for_a_held_dpkg_lock_then_proceeds(dpkg_lock):
    holder = dpkg_lock(5)
    started = time.monotonic()
    result = setup_function("apt_get check", SETUP_APT_LOCK_WAIT="120")
    waited = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    # It got the lock only once the holder let go, and said what it was waiting for.
    assert holder.poll() is not None, "apt_get returned while the lock was still held"
    assert waited >= 3, waited
    assert "waiting up to 120s for another package manager" in result.stderr
    assert f"{DPKG_FRONTEND_LOCK}. It is held by process {holder.pid}" in result.stderr


def test_apt_step_gives_up_after_its_bound(dpkg_lock):
    holder = dpkg_lock(120)
    started = time.monotonic()
    result = setup_function("apt_get check", SETUP_APT_LOCK_WAIT="3")
    assert result.returncode != 0
    assert time.monotonic() - started < 60
    assert holder.poll() is None
    assert "gave up after 3s waiting for another package manager" in result.stderr
    assert str(DPKG_FRONTEND_LOCK) in result.stderr
