"""`evalctl leaderboard`: what the leaderboard asset holds."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from eval_pipelines.cli._output import print_leaderboard
from eval_pipelines.control.rebuild import RebuildFailed, rebuild_jobs
from eval_pipelines.core.home import ensure_local_home


def add_parser(sub) -> None:
    """Register `leaderboard` on evalctl's subcommand parser."""
    board = sub.add_parser(
        "leaderboard", help="the leaderboard as last built: scores with n, version, status"
    )
    board.add_argument("--suite", help="only this suite's rows")
    board.add_argument("--json", action="store_true", help="print the rows as JSON")
    board.add_argument(
        "--refresh", action="store_true", help="rebuild the leaderboard first (in this process)"
    )
    board.set_defaults(func=cmd_leaderboard)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """What the leaderboard asset holds (its latest materialization), rebuilt first only with
    `--refresh`."""
    home = ensure_local_home()
    from eval_pipelines.control.daemon import open_instance
    from eval_pipelines.core.names import LEADERBOARD_ASSET, LEADERBOARD_JOB
    from eval_pipelines.definitions import build_definitions

    instance = open_instance(home)
    if args.refresh:
        try:
            for line in rebuild_jobs(instance, [(LEADERBOARD_JOB, None)]):
                print(line, file=sys.stderr)
        except RebuildFailed as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    built = instance.get_latest_materialization_event(LEADERBOARD_ASSET)
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
        rows = build_definitions().load_asset_value(LEADERBOARD_ASSET, instance=instance)
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
    print_leaderboard(rows)
    return 0
