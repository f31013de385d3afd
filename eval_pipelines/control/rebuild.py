"""Rebuild assets from evalctl, in its own process and quietly: `evalctl run`'s leaderboard,
`--refresh` of the leaderboard, an incident's table and the analytics tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dagster import DagsterInstance, Definitions

# ERROR only: the console shows evalctl's summary, not the run's engine events.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


class RebuildFailed(RuntimeError):
    """A job evalctl ran to rebuild assets did not succeed; says why."""


def rebuild(
    defs: Definitions, instance: DagsterInstance, job_name: str, partition_key: str | None = None
) -> str:
    """Run `job_name` (of `partition_key`) in this process; its run id, or `RebuildFailed`
    naming the failed steps' messages."""
    try:
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance, partition_key=partition_key, run_config=QUIET_CONSOLE,
            raise_on_error=False,
        )  # fmt: skip
    except Exception as exc:  # e.g. the suite left the catalog: no such partition
        raise RebuildFailed(f"{job_name} failed: {type(exc).__name__}: {exc}") from exc
    if not result.success:
        failures = [e.message for e in result.all_events if e.is_step_failure]
        why = "; ".join(failures) or "see `evalctl ui`"
        raise RebuildFailed(f"{job_name} failed (run {result.run_id}): {why}")
    return result.run_id


def rebuild_jobs(instance, jobs: Sequence[tuple[str, str | None]]) -> list[str]:
    """Rebuild each (job, partition) in this process, as `--refresh` does before a command
    reads or reports them: a line per run, or `RebuildFailed`. Definitions are built here,
    after DAGSTER_HOME is settled, so the artifact store is this home's."""
    from eval_pipelines.definitions import build_definitions

    defs = build_definitions()
    return [
        f"{job_name} refreshed (run {rebuild(defs, instance, job_name, partition)})"
        for job_name, partition in jobs
    ]
