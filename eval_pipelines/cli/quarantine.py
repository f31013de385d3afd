"""`evalctl quarantine list/lift`: models held after a safety incident."""

from __future__ import annotations

import argparse
import sys
import time

from eval_pipelines.cli._output import table
from eval_pipelines.core.home import ensure_local_home


def add_parser(sub) -> None:
    """Register `quarantine` and its actions on evalctl's subcommand parser."""
    quarantine = sub.add_parser(
        "quarantine", help="models held after a safety incident: list, or lift one"
    )
    actions = quarantine.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every model ever quarantined, with its latest state")
    lift = actions.add_parser("lift", help="allow new evaluations of a quarantined model")
    lift.add_argument("model", help="the model id")
    lift.add_argument("--reason", required=True, help="why it is safe again (recorded)")
    quarantine.set_defaults(func=cmd_quarantine)


def cmd_quarantine(args: argparse.Namespace) -> int:
    """List quarantined models, or lift one (recording who, why and when)."""
    home = ensure_local_home()
    from eval_pipelines.control.daemon import open_instance
    from eval_pipelines.safety.quarantine import all_states, lift

    with open_instance(home) as instance:
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
    print(table(rows, ["model", "state", "incident", "run", "by", "when", "reason"]))
    return 0
