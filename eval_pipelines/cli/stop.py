"""`evalctl stop`: stop a run and wait for it to end."""

from __future__ import annotations

import argparse
import sys
import time

from eval_pipelines.core.home import ensure_local_home


def add_parser(sub) -> None:
    """Register `stop` on evalctl's subcommand parser."""
    stop = sub.add_parser(
        "stop", help="stop a run now: model and tool calls end, sandboxes die, nothing published"
    )
    stop.add_argument("run_id", help="the Dagster run id")
    stop.add_argument("--reason", help="why (recorded on the run)")
    stop.add_argument(
        "--timeout", type=float, default=60, help="seconds to wait for the run to end (60)"
    )
    stop.set_defaults(func=cmd_stop)


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop a run: its model and tool calls end, its sandboxes die, nothing is published."""
    home = ensure_local_home()
    import getpass

    from dagster import DagsterRunStatus

    from eval_pipelines.control.daemon import open_instance
    from eval_pipelines.execution.launcher import fail_runs_with_dead_workers
    from eval_pipelines.execution.stopping import stop_run

    instance = open_instance(home)
    fail_runs_with_dead_workers(instance)
    run = instance.get_run_by_id(args.run_id)
    if run is None:
        print(
            f"error: no run {args.run_id} in the instance at {instance.root_directory}",
            file=sys.stderr,
        )
        return 2
    if run.is_finished:
        print(f"run {run.run_id} already ended: {run.status.value}")
        return 0
    reason = f"{args.reason or 'stopped from evalctl'} (by {getpass.getuser()})"
    print(f"stopping run {run.run_id} ({run.status.value}): {reason}", flush=True)
    stop_run(instance, run.run_id, reason, safety=False)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run.run_id)
        if run.is_finished:
            break
        time.sleep(0.5)
        fail_runs_with_dead_workers(instance)
    print(f"run {run.run_id}: {run.status.value}")
    return 0 if run.status == DagsterRunStatus.CANCELED else 1
