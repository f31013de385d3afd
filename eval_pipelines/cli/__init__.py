"""`evalctl`: run evaluations through the Dagster job, list suites and models, open the UI."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from eval_pipelines.catalog import Catalog
from eval_pipelines.home import ensure_local_home
from eval_pipelines.log_viewer import DEFAULT_LOG_VIEWER_PORT
from eval_pipelines.rebuild import QUIET_CONSOLE, RebuildFailed
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


# `evalctl run` flags that become the evaluation's launch config (validated by its schema).
_CONFIG_FLAGS = {
    "sample_limit": "--sample-limit",
    "epochs": "--epochs",
    "max_samples": "--max-samples",
}


def _print_progress(entry) -> None:
    """Our ops' log lines as the run writes them (failures are summed up at the end)."""
    if entry.dagster_event is None and entry.user_message and entry.level >= logging.INFO:
        print(f"{entry.step_key or 'run'}: {entry.user_message}", file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    home = ensure_local_home()
    # Imported late: DAGSTER_HOME must be set before resources are built.
    from eval_pipelines.evaluate import EvaluationRefused, validate_evaluation
    from eval_pipelines.ops import EvaluationConfig
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
    from eval_pipelines.daemon import open_instance

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

    from eval_pipelines import definitions, launch
    from eval_pipelines.launcher import fail_runs_with_dead_workers
    from eval_pipelines.partitions import model_partitions, partition_key
    from eval_pipelines.records import run_result
    from eval_pipelines.stopping import SAFETY_STOPPED_TAG, STOP_REASON_TAG

    # Runs whose worker was killed must read FAILURE before a resume looks for them.
    fail_runs_with_dead_workers(instance)
    if not instance.has_dynamic_partition(model_partitions.name, model.id):
        instance.add_dynamic_partitions(model_partitions.name, [model.id])
    key = partition_key(model.id, suite.name)
    job = definitions.defs.resolve_job_def("evaluate")
    run_config = {
        "ops": {"evaluation": {"ops": {"prepare_evaluation": {"config": eval_config}}}},
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
    _print_leaderboard(leaderboard)
    print(
        f"\nDagster instance: {home}\nUI: `evalctl ui` then open http://127.0.0.1:3000/assets/task_scores"
    )
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    """Recent runs with their true state: status, stop reason, and where each task got to."""
    home = ensure_local_home()
    from eval_pipelines.daemon import open_instance
    from eval_pipelines.launcher import fail_runs_with_dead_workers
    from eval_pipelines.resume import PARTITION_TAG, TASK_TAG_PREFIX
    from eval_pipelines.stopping import STOP_REASON_TAG

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
    print(_table(rows, ["run", "job", "partition", "status", "created", "tasks", "stop reason"]))
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """What the leaderboard asset holds (its latest materialization), rebuilt first only with
    `--refresh`."""
    home = ensure_local_home()
    from dagster import AssetKey

    from eval_pipelines.daemon import open_instance
    from eval_pipelines.definitions import build_definitions
    from eval_pipelines.jobs import LEADERBOARD_JOB

    instance = open_instance(home)
    if args.refresh:
        try:
            for line in _rebuild(instance, [(LEADERBOARD_JOB, None)]):
                print(line, file=sys.stderr)
        except RebuildFailed as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    built = instance.get_latest_materialization_event(AssetKey("leaderboard"))
    if built is None:
        print(
            f"error: the leaderboard was never built in {home}. Evaluate a model "
            "(`evalctl run --model reference --suite smoke`, which refreshes it), or "
            "build it: `evalctl leaderboard --refresh`.",
            file=sys.stderr,
        )
        return 1
    logging.disable(logging.DEBUG)  # the IO manager's "Loading file from" line is not output
    try:
        # Built now, after DAGSTER_HOME is settled: read from this home's IO storage.
        rows = build_definitions().load_asset_value("leaderboard", instance=instance)
    finally:
        logging.disable(logging.NOTSET)
    if args.suite:
        rows = [r for r in rows if r["suite"] == args.suite]
        if not rows:
            print(f"error: no row of suite {args.suite!r} on the leaderboard", file=sys.stderr)
            return 1
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(built.timestamp))
    if args.json:
        print(json.dumps({"built_at": when, "run_id": built.run_id, "rows": rows}, indent=2))
        return 0
    print(f"Leaderboard built {when} by run {built.run_id}")
    _print_leaderboard(rows)
    return 0


def _print_leaderboard(rows: list[dict]) -> None:
    from assets.leaderboard import display_sections

    for title, header, cells in display_sections(rows):
        print(f"\n{title}\n{_table(cells, header)}")


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop a run: its model and tool calls end, its sandboxes die, nothing is published."""
    home = ensure_local_home()
    import getpass

    from dagster import DagsterRunStatus

    from eval_pipelines.daemon import open_instance
    from eval_pipelines.launcher import fail_runs_with_dead_workers
    from eval_pipelines.stopping import STOP_REASON_TAG

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
    instance.add_run_tags(run.run_id, {STOP_REASON_TAG: reason})
    print(f"stopping run {run.run_id} ({run.status.value}): {reason}", flush=True)
    instance.run_coordinator.cancel_run(run.run_id)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run.run_id)
        if run.is_finished:
            break
        time.sleep(0.5)
        fail_runs_with_dead_workers(instance)
    print(f"run {run.run_id}: {run.status.value}")
    return 0 if run.status == DagsterRunStatus.CANCELED else 1


def cmd_quarantine(args: argparse.Namespace) -> int:
    """List quarantined models, or lift one (recording who, why and when)."""
    ensure_local_home()
    from dagster import DagsterInstance

    from eval_pipelines.safety.quarantine import all_states, lift

    with DagsterInstance.get() as instance:
        if args.action == "lift":
            try:
                state = lift(instance, args.model, args.reason)
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print(f"quarantine of {state.model_id} lifted by {state.by}: {state.reason}")
            return 0
        rows = [
            [s.model_id, "quarantined" if s.quarantined else "lifted", s.incident_id, s.run_id,
             s.by, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.at)), s.reason]
            for s in all_states(instance)
        ]  # fmt: skip
    print(_table(rows, ["model", "state", "incident", "run", "by", "when", "reason"]))
    return 0


def cmd_incidents(args: argparse.Namespace) -> int:
    """List safety incidents (newest first) with their review state, or resolve or reopen one
    (recording who, why and when)."""
    home = ensure_local_home()
    from assets.incidents import incident_row, partition_incidents
    from eval_pipelines.daemon import open_instance
    from resources.deployments import resources_for

    with open_instance(home) as instance:
        found = [
            f
            for group in partition_incidents(instance, resources_for()["artifacts"]).values()
            for f in group
        ]
        if args.action in ("resolve", "reopen"):
            return _review_incident(args, home, instance, found)
    found = [
        f
        for f in found
        if (args.model is None or f.incident.model_id == args.model)
        and (args.suite is None or f.incident.suite == args.suite)
        and (f.is_open or not args.open)
    ]
    found.sort(key=lambda f: (f.incident.detected_at, f.storage_id), reverse=True)
    rows = [{"partition": f.incident.partition, **incident_row(f)} for f in found]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        filtered = args.model or args.suite or args.open
        print("No incident matches these filters." if filtered else "No incidents.")
        return 0
    cells = [
        [r["id"], time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["detected_at"])),
         r["severity"], r["rule_id"], r["action"], r["partition"], r["run_id"][:8], r["state"],
         r["reviewed_by"] or "", r["review_reason"] or ""]
        for r in rows
    ]  # fmt: skip
    header = ["incident", "detected (UTC)", "severity", "rule", "action", "model|suite", "run",
              "state", "by", "reason"]  # fmt: skip
    print(_table(cells, header))
    return 0


def _review_incident(args: argparse.Namespace, home: Path, instance, found: list) -> int:
    from eval_pipelines.safety.reviews import reopen, resolve

    matches = [f for f in found if f.incident.id == args.incident_id]
    if not matches:
        print(
            f"error: no incident {args.incident_id!r} in the instance at {home}; "
            "`evalctl incidents` lists them",
            file=sys.stderr,
        )
        return 2
    incident = matches[0].incident
    try:
        review = (resolve if args.action == "resolve" else reopen)(instance, incident, args.reason)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"incident {incident.id} ({incident.rule_id}, {incident.severity}, "
        f"{incident.partition}) {'resolved' if review.resolved else 'reopened'} by {review.by}: "
        f"{review.reason}"
    )
    if not args.refresh:
        print(
            "The leaderboard shows it at its next refresh (after the next evaluation result, "
            "or now: `evalctl leaderboard --refresh`); the `incidents` table of "
            f"{incident.partition} at its next rebuild (after its next incident, or now: "
            "`evalctl ui`, Assets > incidents > Materialize that partition)."
        )
        return 0
    from eval_pipelines.jobs import LEADERBOARD_JOB, RECORD_INCIDENTS_JOB

    try:
        for line in _rebuild(
            instance, [(RECORD_INCIDENTS_JOB, incident.partition), (LEADERBOARD_JOB, None)]
        ):
            print(line)
    except RebuildFailed as exc:
        print(f"error: the review is recorded, but {exc}", file=sys.stderr)
        return 1
    return 0


def _rebuild(instance, jobs: Sequence[tuple[str, str | None]]) -> list[str]:
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


def cmd_schedules(args: argparse.Namespace) -> int:
    """List the benchmark programme's schedules, or start/stop one (as the UI toggle does)."""
    home = ensure_local_home()
    from eval_pipelines.daemon import open_instance
    from eval_pipelines.schedule_control import list_schedules, set_running

    instance = open_instance(home)
    if args.action in ("start", "stop"):
        try:
            set_running(instance, args.name, args.action == "start")
        except KeyError as exc:
            print(f"error: {exc.args[0]}", file=sys.stderr)
            return 2
        print(f"schedule {args.name}: {'running' if args.action == 'start' else 'stopped'}")
        return 0
    rows = [[s.name, s.cron, s.timezone, "running" if s.running else "stopped", s.description]
            for s in list_schedules(instance)]  # fmt: skip
    print(_table(rows, ["schedule", "cron", "timezone", "state", "description"]))
    _print_catalog_errors(Catalog.default())
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

    for name, func in (("suites", cmd_suites), ("models", cmd_models)):
        p = sub.add_parser(name, help=f"list the {name} in the catalog")
        p.add_argument(
            "--strict", action="store_true", help="exit 1 if any catalog file failed to load"
        )
        p.set_defaults(func=func)

    runs = sub.add_parser("runs", help="recent runs: status, stop reason, tasks done or partial")
    runs.add_argument("--limit", type=int, default=20)
    runs.set_defaults(func=cmd_runs)

    board = sub.add_parser(
        "leaderboard", help="the leaderboard as last built: scores with n, version, status"
    )
    board.add_argument("--suite", help="only this suite's rows")
    board.add_argument("--json", action="store_true", help="print the rows as JSON")
    board.add_argument(
        "--refresh", action="store_true", help="rebuild the leaderboard first (in this process)"
    )
    board.set_defaults(func=cmd_leaderboard)

    stop = sub.add_parser(
        "stop", help="stop a run now: model and tool calls end, sandboxes die, nothing published"
    )
    stop.add_argument("run_id", help="the Dagster run id")
    stop.add_argument("--reason", help="why (recorded on the run)")
    stop.add_argument(
        "--timeout", type=float, default=60, help="seconds to wait for the run to end (60)"
    )
    stop.set_defaults(func=cmd_stop)

    quarantine = sub.add_parser(
        "quarantine", help="models held after a safety incident: list, or lift one"
    )
    actions = quarantine.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every model ever quarantined, with its latest state")
    lift = actions.add_parser("lift", help="allow new evaluations of a quarantined model")
    lift.add_argument("model", help="the model id")
    lift.add_argument("--reason", required=True, help="why it is safe again (recorded)")
    quarantine.set_defaults(func=cmd_quarantine)

    incidents = sub.add_parser(
        "incidents",
        help="safety incidents, newest first, open or resolved: list, resolve or reopen one",
        description="Without an action: list every incident, newest first (filters narrow it).",
    )
    incidents.add_argument("--model", help="only this model's incidents")
    incidents.add_argument("--suite", help="only this suite's incidents")
    incidents.add_argument("--open", action="store_true", help="only open incidents")
    incidents.add_argument("--json", action="store_true", help="print the rows as JSON")
    review_actions = incidents.add_subparsers(dest="action", metavar="{resolve,reopen}")
    for action, what in (
        ("resolve", "resolve an open incident (a false positive, or reviewed)"),
        ("reopen", "reopen a resolved incident"),
    ):
        p = review_actions.add_parser(action, help=f"{what}; records who, why and when")
        p.add_argument("incident_id", help="the incident's id (`evalctl incidents`)")
        p.add_argument("--reason", required=True, help="why (recorded)")
        p.add_argument(
            "--refresh",
            action="store_true",
            help="rebuild the leaderboard and the incident's table now",
        )
    incidents.set_defaults(func=cmd_incidents)

    schedules = sub.add_parser(
        "schedules", help="benchmark programme schedules: list, or start/stop one"
    )
    schedule_actions = schedules.add_subparsers(dest="action", required=True)
    schedule_actions.add_parser("list", help="every schedule, its cron and whether it runs")
    for action in ("start", "stop"):
        p = schedule_actions.add_parser(action, help=f"{action} a schedule (the daemon runs it)")
        p.add_argument("name", help="the schedule's name (`evalctl schedules list`)")
    schedules.set_defaults(func=cmd_schedules)

    from eval_pipelines.analytics.commands import add_commands

    add_commands(sub)

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
