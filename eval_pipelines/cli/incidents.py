"""`evalctl incidents`: list safety incidents, or resolve or reopen one."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from eval_pipelines.cli._output import table
from eval_pipelines.control.rebuild import RebuildFailed, rebuild_jobs
from eval_pipelines.core.home import ensure_local_home


def add_parser(sub) -> None:
    """Register `incidents` and its review actions on evalctl's subcommand parser."""
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


def cmd_incidents(args: argparse.Namespace) -> int:
    """List safety incidents (newest first) with their review state, or resolve or reopen one
    (recording who, why and when)."""
    home = ensure_local_home()
    from assets.incidents import incident_row
    from eval_pipelines.control.daemon import open_instance
    from eval_pipelines.safety.incident_records import partition_incidents
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
    print(table(cells, header))
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
    from eval_pipelines.core.names import LEADERBOARD_JOB, RECORD_INCIDENTS_JOB

    try:
        for line in rebuild_jobs(
            instance, [(RECORD_INCIDENTS_JOB, incident.partition), (LEADERBOARD_JOB, None)]
        ):
            print(line)
    except RebuildFailed as exc:
        print(f"error: the review is recorded, but {exc}", file=sys.stderr)
        return 1
    return 0
