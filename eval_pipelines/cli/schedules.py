"""`evalctl schedules list/start/stop`: the benchmark programme's schedules."""

from __future__ import annotations

import argparse
import sys

from eval_pipelines.catalog import Catalog
from eval_pipelines.cli._output import print_catalog_errors, table
from eval_pipelines.core.home import ensure_local_home


def add_parser(sub) -> None:
    """Register `schedules` and its actions on evalctl's subcommand parser."""
    schedules = sub.add_parser(
        "schedules", help="benchmark programme schedules: list, or start/stop one"
    )
    schedule_actions = schedules.add_subparsers(dest="action", required=True)
    schedule_actions.add_parser("list", help="every schedule, its cron and whether it runs")
    for action in ("start", "stop"):
        p = schedule_actions.add_parser(action, help=f"{action} a schedule (the daemon runs it)")
        p.add_argument("name", help="the schedule's name (`evalctl schedules list`)")
    schedules.set_defaults(func=cmd_schedules)


def cmd_schedules(args: argparse.Namespace) -> int:
    """List the benchmark programme's schedules, or start/stop one (as the UI toggle does)."""
    home = ensure_local_home()
    from eval_pipelines.control.daemon import open_instance
    from eval_pipelines.control.schedules import list_schedules, set_running

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
    print(table(rows, ["schedule", "cron", "timezone", "state", "description"]))
    print_catalog_errors(Catalog.default())
    return 0
