"""evalctl's `history` and `compare` arguments; the commands (`report`) load on use, so
other evalctl commands do not pay for importing pandas and Dagster."""

from __future__ import annotations

import argparse


def _command(name: str):
    def run(args: argparse.Namespace) -> int:
        from eval_pipelines.analytics import report

        return getattr(report, name)(args)

    return run


def add_commands(sub) -> None:
    """Register `history` and `compare` on evalctl's subcommand parser."""
    history = sub.add_parser("history", help="every run of a model, per task (evaluation_history)")
    history.add_argument("--model", required=True, help="model id")
    history.add_argument("--suite", help="only this suite")
    history.add_argument("--json", action="store_true", help="print rows as JSON")
    history.add_argument(
        "--refresh", action="store_true", help="rebuild the analytics assets first"
    )
    history.set_defaults(func=_command("cmd_history"))

    compare = sub.add_parser(
        "compare", help="paired per-task difference of two models with 95%% CIs (model_comparison)"
    )
    compare.add_argument("model_a")
    compare.add_argument("model_b")
    compare.add_argument("--suite", required=True, help="the suite both were evaluated on")
    compare.add_argument("--json", action="store_true", help="print rows as JSON")
    compare.add_argument(
        "--refresh", action="store_true", help="rebuild the analytics assets first"
    )
    compare.set_defaults(func=_command("cmd_compare"))
