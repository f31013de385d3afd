"""`evalctl history` and `evalctl compare`: print what the analytics assets hold. pandas and
Dagster load on use, so other evalctl commands do not pay for importing them."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import TYPE_CHECKING

from eval_pipelines.cli._output import format_number, table
from eval_pipelines.control.rebuild import RebuildFailed, rebuild

if TYPE_CHECKING:
    import pandas as pd

_HISTORY_COLUMNS = [
    "evaluated_at",
    "suite",
    "suite_version",
    "status",
    "limited",
    "task",
    "mean",
    "n",
    "run_id",
]
_COMPARE_COLUMNS = ["task", "n", "mean_a", "mean_b", "diff", "ci_low", "ci_high", "significant"]

# The analytics assets follow new results through the daemon's automation sensor; a run
# made while no daemon was up is in them only after a refresh.
_REFRESH_HINT = "; if runs finished since, rebuild with --refresh"


def add_parser(sub) -> None:
    """Register `history` and `compare` on evalctl's subcommand parser."""
    history = sub.add_parser("history", help="every run of a model, per task (evaluation_history)")
    history.add_argument("--model", required=True, help="model id")
    history.add_argument("--suite", help="only this suite")
    history.add_argument("--json", action="store_true", help="print rows as JSON")
    history.add_argument(
        "--refresh", action="store_true", help="rebuild the analytics assets first"
    )
    history.set_defaults(func=cmd_history)

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
    compare.set_defaults(func=cmd_compare)


def cmd_history(args: argparse.Namespace) -> int:
    if (loaded := _latest(args.refresh, "evaluation_history")) is None:
        return 1
    artifacts, manifest = loaded
    from eval_pipelines.analytics.history import model_history

    tasks = model_history(manifest, artifacts, args.model, args.suite)
    if tasks.empty:
        where = f" on {args.suite}" if args.suite else ""
        print(
            f"error: no runs of {args.model}{where} in the evaluation history as last built"
            f"{_REFRESH_HINT}",
            file=sys.stderr,
        )
        return 1
    _print_frame(tasks, _HISTORY_COLUMNS, args.json)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    if args.model_a == args.model_b:
        print("error: compare two different models", file=sys.stderr)
        return 2
    if (loaded := _latest(args.refresh, "model_comparison")) is None:
        return 1
    _, comparison = loaded
    from eval_pipelines.analytics.stats import oriented_comparison

    rows = oriented_comparison(comparison, args.model_a, args.model_b, args.suite)
    if rows.empty:
        print(
            f"error: no paired samples of {args.model_a} and {args.model_b} on {args.suite} in "
            "model_comparison as last built: both need a published run of the same suite "
            f"version (`evalctl run`){_REFRESH_HINT}",
            file=sys.stderr,
        )
        return 1
    if args.json:
        _print_frame(
            rows,
            [
                "suite",
                "suite_version",
                "model_a",
                "model_b",
                *_COMPARE_COLUMNS,
                "stderr",
                "run_a",
                "run_b",
            ],
            True,
        )
        return 0
    for (version, run_a, run_b), group in rows.groupby(["suite_version", "run_a", "run_b"]):
        print(
            f"{args.model_a} - {args.model_b} on {args.suite} v{version} "
            f"(runs {run_a} vs {run_b}); paired over shared samples, 95% normal CI:"
        )
        names = {"mean_a": f"mean {args.model_a}", "mean_b": f"mean {args.model_b}"}
        _print_frame(
            group.rename(columns=names), [names.get(c, c) for c in _COMPARE_COLUMNS], False
        )
    return 0


def _latest(refresh: bool, asset: str):
    """(artifacts, the asset's table), or None after saying how to build it."""
    from eval_pipelines.analytics.store import NotBuiltError, latest_table

    try:
        instance, artifacts = _open(refresh)
        return artifacts, latest_table(instance, artifacts, asset)
    except (NotBuiltError, RebuildFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def _open(refresh: bool):
    """The instance and artifact store of this home, after refreshing the analytics assets
    if asked. Definitions are built here, after DAGSTER_HOME is settled, so the artifact
    store is this home's."""
    from eval_pipelines.control.daemon import open_instance
    from eval_pipelines.core.home import ensure_local_home
    from eval_pipelines.core.names import ANALYTICS_JOB
    from eval_pipelines.definitions import build_definitions

    instance = open_instance(ensure_local_home())
    defs = build_definitions()
    if refresh:
        rebuild(defs, instance, ANALYTICS_JOB)
    return instance, defs.resources["artifacts"]


def _print_frame(frame: pd.DataFrame, columns: list[str], as_json: bool) -> None:
    """`columns` of `frame` as JSON records or as a table."""
    if as_json:
        print(json.dumps(json.loads(frame[columns].to_json(orient="records")), indent=2))
        return

    def cell(value: object) -> str:
        if isinstance(value, float):
            return format_number(None if math.isnan(value) else value)
        return "-" if value is None else str(value)

    rows = [[cell(v) for v in row] for row in frame[columns].itertuples(index=False)]
    print(table(rows, columns))
