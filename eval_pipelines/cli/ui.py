"""`evalctl ui`: the Dagster UI, its daemon and Inspect's log viewer (served by
eval_pipelines.control.ui)."""

from __future__ import annotations

import argparse

from eval_pipelines.control.ui import serve_ui
from eval_pipelines.core.log_viewer import DEFAULT_LOG_VIEWER_PORT


def add_parser(sub) -> None:
    """Register `ui` on evalctl's subcommand parser."""
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


def cmd_ui(args: argparse.Namespace) -> int:
    return serve_ui(args.host, args.port, args.log_viewer_port)
