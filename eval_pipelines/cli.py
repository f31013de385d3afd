"""`evalctl`: run evaluations through the Dagster job, list suites and models, open the UI."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from eval_pipelines.catalog import Catalog
from eval_pipelines.home import ensure_local_home
from eval_pipelines.log_viewer import DEFAULT_LOG_VIEWER_PORT
from eval_pipelines.specs import EvalRequest
from eval_pipelines.ui import serve_ui

# Console shows our progress lines (INFO), not every Dagster engine event (DEBUG).
QUIET_LOGGING = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(
        [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
        + [fmt.format(*map(str, r)) for r in rows]
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _print_catalog_errors(catalog: Catalog) -> None:
    for error in catalog.problems():
        print(f"warning: skipped {error}", file=sys.stderr)


def cmd_suites(args: argparse.Namespace) -> int:
    catalog = Catalog.default()
    rows = [
        [
            s.name,
            s.version,
            len(s.tasks),
            "yes" if s.needs_sandbox else "no",
            ", ".join(t.name for t in s.tasks),
        ]
        for s in catalog.suites.values()
    ]
    print(_table(rows, ["suite", "version", "tasks", "sandbox", "task names"]))
    _print_catalog_errors(catalog)
    return 1 if catalog.problems() and args.strict else 0


def cmd_models(args: argparse.Namespace) -> int:
    catalog = Catalog.default()
    rows = [[m.id, m.model, m.api_key_env or "-", m.description] for m in catalog.models.values()]
    print(_table(rows, ["model", "inspect model", "api key env", "description"]))
    _print_catalog_errors(catalog)
    return 1 if catalog.problems() and args.strict else 0


def _failure_messages(result) -> list[str]:
    messages = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            data = event.step_failure_data
            detail = (data.user_failure_data.description if data.user_failure_data else None) or (
                data.error.message.strip() if data.error else "failed"
            )
            messages.append(f"{event.step_key}: {detail}")
    return messages


def _snapshot(instance, artifacts, asset: str, partition: str, run_id: str):
    """The value `run_id` materialized for `asset`, from its immutable artifact snapshot."""
    from eval_pipelines.records import materialization

    url = materialization(instance, asset, partition, run_id).metadata["snapshot"].value
    return json.loads(artifacts.get(url))


def cmd_run(args: argparse.Namespace) -> int:
    home = ensure_local_home()
    # Imported late: DAGSTER_HOME must be set before the definitions build resources.
    from dagster import DagsterInstance, execute_job, reconstructable

    from eval_pipelines import definitions
    from eval_pipelines.ops import EvaluationRefused, validate_evaluation
    from eval_pipelines.partitions import model_partitions, partition_key

    catalog = Catalog.default()
    sandbox = definitions.defs.resources["sandbox"]
    try:
        request = EvalRequest(model=args.model, suite=args.suite, tags=dict(args.tag))
        model, suite = validate_evaluation(catalog, request.model, request.suite, sandbox)
    except (ValidationError, *EvaluationRefused) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    instance = DagsterInstance.get()
    if not instance.has_dynamic_partition(model_partitions.name, model.id):
        instance.add_dynamic_partitions(model_partitions.name, [model.id])
    key = partition_key(model.id, suite.name)
    job = definitions.defs.resolve_job_def("evaluate")
    eval_config = {
        k: v
        for k, v in {
            "sample_limit": args.sample_limit,
            "epochs": args.epochs,
            "max_samples": args.max_samples,
        }.items()
        if v is not None
    }
    run_config = {
        "ops": {"evaluation": {"ops": {"prepare_evaluation": {"config": eval_config}}}},
        "execution": {"config": {args.executor: {}}},
        **QUIET_LOGGING,
    }
    tags = {**job.partitions_def.get_tags_for_partition_key(key), **request.run_tags()}
    print(
        f"Evaluating {model.id} ({model.model}) on suite {suite.name} v{suite.version} [{args.executor}]",
        flush=True,
    )
    result = execute_job(
        reconstructable(definitions.evaluation_job), instance, run_config=run_config, tags=tags
    )
    if not result.success:
        print(f"\nerror: evaluation run {result.run_id} failed:", file=sys.stderr)
        for message in _failure_messages(result):
            print(f"  {message}", file=sys.stderr)
        return 1

    artifacts = definitions.defs.resources["artifacts"]
    scores, logs = (
        _snapshot(instance, artifacts, name, key, result.run_id)
        for name in ("task_scores", "eval_logs")
    )
    # ERROR only: the leaderboard warns about every model x suite never evaluated.
    board = definitions.leaderboard_job_def().execute_in_process(
        instance=instance, run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    )
    leaderboard = board.output_for_node("leaderboard")

    if args.json:
        print(
            json.dumps(
                {
                    "run_id": result.run_id,
                    "task_scores": scores,
                    "eval_logs": logs,
                    "leaderboard": leaderboard,
                },
                indent=2,
            )
        )
        return 0
    print(f"\nRun {result.run_id} succeeded. Task scores for {model.id} on {suite.name}:")
    print(
        _table(
            [
                [t["task"], _fmt(t["mean"]), _fmt(t["stderr"]), t["n"], t["errors"]]
                for t in scores["tasks"]
            ],
            ["task", "mean", "stderr", "n", "errors"],
        )
    )
    print("\nInspect logs (open with `inspect view` or read_eval_log):")
    for task in (t["task"] for t in scores["tasks"]):  # suite order
        print(f"  {task}: {logs[task]['uri']}")
    print("\nLeaderboard:")
    print(
        _table(
            [[r["suite"], r["model_id"], _fmt(r["overall"])] for r in leaderboard],
            ["suite", "model", "overall"],
        )
    )
    print(
        f"\nDagster instance: {home}\nUI: `evalctl ui` then open http://127.0.0.1:3000/assets/task_scores"
    )
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Can this machine run sandboxed tasks? Lists each problem with its fix."""
    from eval_pipelines.sandbox import host_problems

    catalog = Catalog.default()
    _print_catalog_errors(catalog)
    problems = host_problems()
    if not problems:
        print("sandbox (bwrap): ready: sandboxed tasks can run on this machine")
        return 0
    print("sandbox (bwrap): NOT ready, sandboxed tasks will refuse to run:")
    for problem in problems:
        print(f"  - {problem}")
    return 1


def cmd_ui(args: argparse.Namespace) -> int:
    return serve_ui(args.host, args.port, args.log_viewer_port)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evalctl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

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
    run.add_argument("--json", action="store_true", help="print results as JSON")
    run.set_defaults(func=cmd_run)

    for name, func in (("suites", cmd_suites), ("models", cmd_models)):
        p = sub.add_parser(name, help=f"list the {name} in the catalog")
        p.add_argument(
            "--strict", action="store_true", help="exit 1 if any catalog file failed to load"
        )
        p.set_defaults(func=func)

    doctor = sub.add_parser("doctor", help="check that this machine can isolate sandboxed tasks")
    doctor.set_defaults(func=cmd_doctor)

    ui = sub.add_parser(
        "ui", help="start the Dagster UI and daemon and Inspect's log viewer for this project"
    )
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument(
        "--log-viewer-port",
        type=int,
        default=DEFAULT_LOG_VIEWER_PORT,
        help="port of Inspect's log viewer",
    )
    ui.set_defaults(func=cmd_ui)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
