"""cgroup v2 setup logic.

Our machines are hybrid (memory and pids live in v1), so the v2 path cannot run against a
real kernel here; these tests drive it against a directory laid out like a delegated v2
cgroup and check what it writes. The v1 path runs for real in the sandbox tests.
"""

from pathlib import Path

import pytest

from eval_pipelines.sandbox._cgroups import CgroupLimits, CgroupUnavailableError, _create_v2

LIMITS = CgroupLimits(memory_bytes=256 << 20, pids=64, cpu_cores=1.5)


def delegated(tmp_path: Path, controllers: str) -> Path:
    (tmp_path / "cgroup.controllers").write_text(controllers + "\n")
    (tmp_path / "cgroup.subtree_control").write_text("\n")
    return tmp_path


def test_v2_enables_controllers_and_writes_limits(tmp_path: Path):
    parent = delegated(tmp_path, "cpu memory pids io")
    child_files = ("memory.max", "memory.swap.max", "pids.max", "cpu.max")

    # cgroupfs creates a child's interface files on mkdir; emulate that for the writes.
    original_mkdir = Path.mkdir

    def mkdir_with_files(self: Path, *args, **kwargs):
        original_mkdir(self, *args, **kwargs)
        for name in child_files:
            (self / name).write_text("max\n")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "mkdir", mkdir_with_files)
        cgroup = _create_v2("eval-sandbox-x", LIMITS, parent)

    child = parent / "eval-sandbox-x"
    assert cgroup.version == 2 and cgroup.dirs == [child]
    assert (parent / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (child / "memory.max").read_text() == str(256 << 20)
    assert (child / "memory.swap.max").read_text() == "0"
    assert (child / "pids.max").read_text() == "64"
    assert (child / "cpu.max").read_text() == "150000 100000"
    assert cgroup.procs_files == [child / "cgroup.procs"]


def test_v2_without_memory_controller_is_refused(tmp_path: Path):
    parent = delegated(tmp_path, "cpu io")
    with pytest.raises(CgroupUnavailableError, match="lacks the memory, pids controller"):
        _create_v2("eval-sandbox-x", LIMITS, parent)
