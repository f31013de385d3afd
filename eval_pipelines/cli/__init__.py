"""evalctl, the command line: one module per command group, each defining its subparser
(`add_parser`) and its command functions; `_output` holds what several commands print alike.

Layer 14, the top: it may import anything below it (`control`, `definitions`, assets,
resources, analytics); nothing in the project imports it. Commands import heavy modules
(Dagster, pandas, Inspect) when they run, so evalctl starts fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from eval_pipelines.cli import (
    analytics,
    catalog,
    doctor,
    images,
    incidents,
    leaderboard,
    quarantine,
    run,
    runs,
    schedules,
    stop,
    ui,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evalctl",
        description="`evalctl`: run evaluations through the Dagster job, list suites and models, "
        "open the UI.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (  # in `evalctl --help` order
        run,
        catalog,
        runs,
        leaderboard,
        stop,
        quarantine,
        incidents,
        schedules,
        analytics,
        images,
        doctor,
        ui,
    ):
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
