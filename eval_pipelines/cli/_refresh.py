"""The `--refresh` of `evalctl leaderboard` and `evalctl incidents resolve/reopen`: rebuild
assets in this process before the command reads or reports them."""

from __future__ import annotations

from collections.abc import Sequence


def rebuild_jobs(instance, jobs: Sequence[tuple[str, str | None]]) -> list[str]:
    """Rebuild each (job, partition) in this process; a line per run, or `RebuildFailed`.
    Definitions are built here, after DAGSTER_HOME is settled, so the artifact store is this
    home's."""
    from eval_pipelines.definitions import build_definitions
    from eval_pipelines.rebuild import rebuild

    defs = build_definitions()
    return [
        f"{job_name} refreshed (run {rebuild(defs, instance, job_name, partition)})"
        for job_name, partition in jobs
    ]
