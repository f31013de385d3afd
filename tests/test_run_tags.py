"""Run tags written by several processes at once all stay on the run (core.run_tags)."""

import subprocess
import sys
from pathlib import Path

from dagster import DagsterInstance, DagsterRun

WRITER = """
import sys
from dagster import DagsterInstance
from eval_pipelines.core.run_tags import add_run_tags_durably
run_id, who = sys.argv[1], sys.argv[2]
with DagsterInstance.get() as instance:
    for i in range(8):
        add_run_tags_durably(instance, run_id, {f"test/{who}-{i}": "written"})
"""


def test_tags_from_concurrent_processes_are_all_kept(instance: DagsterInstance, dagster_home: Path):
    """Dagster writes a run's whole body on every tag change: concurrent writers overwrite
    each other's tags unless each checks and writes again."""
    run = instance.add_run(DagsterRun(job_name="evaluate", run_id="concurrent-tags"))
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, run.run_id, who]) for who in "abc"]
    assert [w.wait(timeout=240) for w in writers] == [0, 0, 0]

    tags = instance.get_run_by_id(run.run_id).tags
    assert {k for k in tags if k.startswith("test/")} == {
        f"test/{who}-{i}" for who in "abc" for i in range(8)
    }
