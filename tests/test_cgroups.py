"""cgroup v2 setup logic.

Our machines are hybrid (memory and pids live in v1), so the v2 path cannot run against a
real kernel here; these tests drive it against a directory that behaves like cgroupfs on
mkdir (a child's `cgroup.controllers` is what its parent enabled in `cgroup.subtree_control`)
and check what it writes. The v1 path runs for real in the sandbox tests.
"""

from pathlib import Path

import pytest

from eval_pipelines.watch._cgroups import (
    V2_SANDBOX_ROOT,
    CgroupLimits,
    CgroupUnavailableError,
    _create_v2,
    _ensure_sandbox_root,
)

LIMITS = CgroupLimits(memory_bytes=256 << 20, pids=64, cpu_cores=1.5)
INTERFACE_FILES = ("memory.max", "memory.swap.max", "pids.max", "cpu.max")


@pytest.fixture
def cgroupfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A v2 hierarchy root offering `cpu memory pids io`; mkdir creates interface files."""
    original_mkdir = Path.mkdir

    def mkdir(self: Path, *args, **kwargs):
        original_mkdir(self, *args, **kwargs)
        if tmp_path in self.parents:
            enabled = (self.parent / "cgroup.subtree_control").read_text().replace("+", "")
            (self / "cgroup.controllers").write_text(enabled)
            (self / "cgroup.subtree_control").write_text("")
            for name in INTERFACE_FILES:
                (self / name).write_text("max\n")

    monkeypatch.setattr(Path, "mkdir", mkdir)
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids io\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    return tmp_path


def test_root_on_a_v2_host_gets_a_dedicated_sandbox_root(cgroupfs: Path):
    top = cgroupfs / V2_SANDBOX_ROOT
    _ensure_sandbox_root(top)
    assert (cgroupfs / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    cgroup = _create_v2("eval-sandbox-x", LIMITS, top)

    child = top / "eval-sandbox-x"
    assert cgroup.version == 2 and cgroup.dirs == [child]
    assert (top / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (child / "memory.max").read_text() == str(256 << 20)
    assert (child / "memory.swap.max").read_text() == "0"
    assert (child / "pids.max").read_text() == "64"
    assert (child / "cpu.max").read_text() == "150000 100000"
    assert cgroup.procs_files == [child / "cgroup.procs"]


def test_a_cgroup_without_memory_and_pids_is_refused(cgroupfs: Path):
    (cgroupfs / "cgroup.controllers").write_text("cpu io\n")
    with pytest.raises(CgroupUnavailableError, match="lacks the memory, pids controller"):
        _create_v2("eval-sandbox-x", LIMITS, cgroupfs)
