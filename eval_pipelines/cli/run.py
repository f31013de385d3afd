"""`evalctl run`: evaluate a model on a suite through the Dagster job and report the result."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from eval_pipelines.catalog import Catalog
from eval_pipelines.catalog.specs import EvalRequest
from eval_pipelines.cli._output import format_number, print_leaderboard, table
from eval_pipelines.control.rebuild import QUIET_CONSOLE
from eval_pipelines.core.home import ensure_local_home

# Console shows our progress lines (INFO), not every Dagster engine event (DEBUG).
QUIET_LOGGING = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}

# `evalctl run` flags that become the evaluation's launch config (validated by its schema).
_CONFIG_FLAGS = {
    "sample_limit": "--sample-limit",
    "epochs": "--epochs",
    "max_samples": "--max-samples",
}


def add_parser(sub) -> None:
    """Register `run` on evalctl's subcommand parser."""
    run = sub.add_parser("run", help="evaluate a model on a suite through the Dagster job")
    run.add_argument("--model", required=True, help="model id from `evalctl models`")
    run.add_argument("--suite", required=True, help="suite name from `evalctl suites`")
    run.add_argument("--sample-limit", type=int, help="run only the first N samples of each task")
    run.add_argument("--epochs", type=int, help="override every task's epochs")
    run.add_argument("--max-samples", type=int, help="samples run concurrently per task")
    run.add_argument(
        "--executor",
        choices=["in_process", "multiprocess"],
        default="in_process",
        help="in_process (fast, one process) or multiprocess (one process per op, like pods)",
    )
    run.add_argument(
        "--tag",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="tag the run (repeatable), e.g. --tag ticket=SAFE-12",
    )
    run.add_argument(
        "--fresh",
        action="store_true",
        help="re-run every task; by default a failed or stopped run's finished work is reused",
    )
    run.add_argument(
        "--local",
        action="store_true",
        help="run now in this process, bypassing the run queue and its limits",
    )
    run.add_argument("--json", action="store_true", help="print results as JSON")
    run.set_defaults(func=cmd_run)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def _print_progress(entry) -> None:
    """Our ops' log lines as the run writes them (failures are summed up at the end)."""
    if entry.dagster_event is None and entry.user_message and entry.level >= logging.INFO:
        print(f"{entry.step_key or 'run'}: {entry.user_message}", file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    home = ensure_local_home()
    # Imported late: DAGSTER_HOME must be set before resources are built.
    from eval_pipelines.catalog.launch_config import EvaluationConfig
    from eval_pipelines.evaluation.inspect_work import EvaluationRefused, validate_evaluation
    from resources.deployments import resources_for

    eval_config = {k: getattr(args, k) for k in _CONFIG_FLAGS if getattr(args, k) is not None}
    if args.fresh:
        eval_config["resume"] = False
    try:
        EvaluationConfig(**eval_config)
    except ValidationError as exc:
        for item in exc.errors():
            flag = _CONFIG_FLAGS[str(item["loc"][0])]
            print(f"error: {flag} {item['input']}: {item['msg']}", file=sys.stderr)
        return 2
    catalog = Catalog.default()
    if catalog.bad_folders():
        for problem in catalog.bad_folders():
            print(f"error: {problem}", file=sys.stderr)
        return 2
    from eval_pipelines.control.daemon import open_instance

    try:
        instance = open_instance(home)
    except Exception as exc:  # the reason, never a bare traceback
        print(f"error: cannot open the Dagster instance in {home}: {exc}", file=sys.stderr)
        return 1
    try:
        model, suite = validate_evaluation(
            catalog, args.model, args.suite, resources_for()["sandbox"], instance
        )
        request = EvalRequest(model=model.id, suite=suite.name, tags=dict(args.tag))
    except (ValidationError, *EvaluationRefused) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return _run_and_report(args, home, instance, model, suite, request, eval_config)
    except Exception as exc:  # storage, code location: the reason, never a bare traceback
        print(f"\nerror: evaluation did not complete: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _run_and_report(
    args, home: Path, instance, model, suite, request: EvalRequest, eval_config
) -> int:
    from dagster import DagsterRunStatus, execute_job, reconstructable

    from eval_pipelines import definitions
    from eval_pipelines.catalog.launch_config import evaluation_run_config
    from eval_pipelines.control import launch
    from eval_pipelines.core.names import EVALUATION_JOB, SAFETY_STOPPED_TAG, STOP_REASON_TAG
    from eval_pipelines.core.partitions import model_partitions, partition_key
    from eval_pipelines.execution.launcher import fail_runs_with_dead_workers
    from eval_pipelines.results.records import run_result

    # Runs whose worker was killed must read FAILURE before a resume looks for them.
    fail_runs_with_dead_workers(instance)
    if not instance.has_dynamic_partition(model_partitions.name, model.id):
        instance.add_dynamic_partitions(model_partitions.name, [model.id])
    key = partition_key(model.id, suite.name)
    job = definitions.defs.resolve_job_def(EVALUATION_JOB)
    run_config = {
        **evaluation_run_config(eval_config),
        "execution": {"config": {args.executor: {}}},
        **QUIET_LOGGING,
    }
    tags = {**job.partitions_def.get_tags_for_partition_key(key), **request.run_tags()}
    mode = "local, unqueued" if args.local else "queued"
    print(
        f"Evaluating {model.id} ({model.model}) on suite {suite.name} v{suite.version} "
        f"[{args.executor}, {mode}]",
        flush=True,
    )
    if args.local:
        result = execute_job(
            reconstructable(definitions.evaluation_job), instance, run_config=run_config, tags=tags
        )
        run_id, events = result.run_id, result.all_events
        # The run's own record: a stopped run is CANCELED, not merely unsuccessful.
        status = instance.get_run_by_id(run_id).status
    else:
        run_id = launch.submit(instance, job.name, run_config, tags)
        print(f"Run {run_id} queued; waiting for the daemon to start it", file=sys.stderr)
        status, events = launch.follow(instance, home, run_id, _print_progress)
    run_tags = instance.get_run_by_id(run_id).tags
    if run_tags.get(SAFETY_STOPPED_TAG):  # CANCELED or FAILURE: the monitor's stop, said so
        why = run_tags.get(STOP_REASON_TAG, "no reason recorded")
        print(f"\nRun {run_id} was safety-stopped ({why}): nothing published; its incidents: "
              "`evalctl incidents --open` (or the `incidents` asset in `evalctl ui`).",
              file=sys.stderr)  # fmt: skip
        return 1
    if status == DagsterRunStatus.CANCELED:
        why = run_tags.get(STOP_REASON_TAG, "terminated")
        print(f"\nRun {run_id} was stopped ({why}): nothing published; finished work is kept "
              "for a re-run to resume (`evalctl runs`).", file=sys.stderr)  # fmt: skip
        return 1
    if status != DagsterRunStatus.SUCCESS:
        print(f"\nerror: evaluation run {run_id} ended {status.value}:", file=sys.stderr)
        for reason in launch.failure_reasons(events) or ["no reason recorded (see `evalctl ui`)"]:
            print(f"  {reason}", file=sys.stderr)
        return 1

    published = run_result(instance, key, run_id)
    if published is None:
        print(f"error: run {run_id} did not record all its results", file=sys.stderr)
        return 1
    artifacts = definitions.defs.resources["artifacts"]
    scores, logs = (published.value(name, artifacts) for name in ("task_scores", "eval_logs"))
    board = definitions.leaderboard_job_def().execute_in_process(
        instance=instance, run_config=QUIET_CONSOLE
    )
    leaderboard = board.output_for_node("leaderboard")

    if args.json:
        print(
            json.dumps(
                {
                    "run_id": run_id,
                    "task_scores": scores,
                    "eval_logs": logs,
                    "leaderboard": leaderboard,
                },
                indent=2,
            )
        )
        return 0
    print(f"\nRun {run_id} succeeded. Task scores for {model.id} on {suite.name}:")
    if scores["limited"]:
        from assets.leaderboard import scope

        print(f"{scope(scores)}: not a complete evaluation; it never replaces a complete result")
    print(
        table(
            [
                [
                    t["task"],
                    t["headline"] or "-",
                    format_number(t["mean"]) if t["mean"] is not None else "ERROR",
                    format_number(t["stderr"]),
                    t["n"],
                    t["errors"],
                    t["epochs"],
                    t["sandbox"] or "-",
                ]
                for t in scores["tasks"]
            ],
            ["task", "headline", "score", "stderr", "n", "errors", "epochs", "sandbox"],
        )
    )
    for t in scores["tasks"]:
        for service, image in t["images"].items():
            print(f"  {t['task']}: {service} ran {image}")
    for t in scores["tasks"]:
        if t["problem"]:
            print(f"{t['task']}: no score: {t['problem']}", file=sys.stderr)
        for error in t["first_errors"]:
            print(f"{t['task']}: sample {error}", file=sys.stderr)
    print("\nInspect logs (open with `inspect view` or read_eval_log):")
    for task in (t["task"] for t in scores["tasks"]):  # suite order
        print(f"  {task}: {logs[task]['uri']}")
    print("\nLeaderboard:")
    print_leaderboard(leaderboard)
    print(
        f"\nDagster instance: {home}\nUI: `evalctl ui` then open http://127.0.0.1:3000/assets/task_scores"
    )
    return 0
