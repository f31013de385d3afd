"""`evalctl runs`: recent runs and where each got to."""

from __future__ import annotations

import argparse
import json

from eval_pipelines.cli._output import table
from eval_pipelines.core.home import ensure_local_home


def add_parser(sub) -> None:
    """Register `runs` on evalctl's subcommand parser."""
    runs = sub.add_parser("runs", help="recent runs: status, stop reason, tasks done or partial")
    runs.add_argument("--limit", type=int, default=20)
    runs.set_defaults(func=cmd_runs)


def cmd_runs(args: argparse.Namespace) -> int:
    """Recent runs with their true state: status, stop reason, and where each task got to."""
    home = ensure_local_home()
    from eval_pipelines.control.daemon import open_instance
    from eval_pipelines.core.names import PARTITION_TAG, STOP_REASON_TAG, TASK_TAG_PREFIX
    from eval_pipelines.execution.launcher import fail_runs_with_dead_workers

    instance = open_instance(home)
    fail_runs_with_dead_workers(instance)
    rows = []
    for record in instance.get_run_records(limit=args.limit):
        run = record.dagster_run
        tasks = [
            f"{key.removeprefix(TASK_TAG_PREFIX)}:{json.loads(value)['status']}"
            for key, value in sorted(run.tags.items())
            if key.startswith(TASK_TAG_PREFIX)
        ]
        rows.append(
            [
                run.run_id,
                run.job_name,
                run.tags.get(PARTITION_TAG, "-"),
                run.status.value,
                record.create_timestamp.strftime("%Y-%m-%d %H:%M:%S"),
                " ".join(tasks) or "-",
                run.tags.get(STOP_REASON_TAG, ""),
            ]
        )
    print(table(rows, ["run", "job", "partition", "status", "created", "tasks", "stop reason"]))
    return 0
