"""`evalctl doctor`: can this machine run sandboxed tasks."""

from __future__ import annotations

import argparse

from eval_pipelines.catalog import Catalog
from eval_pipelines.cli._output import print_catalog_errors


def add_parser(sub) -> None:
    """Register `doctor` on evalctl's subcommand parser."""
    doctor = sub.add_parser("doctor", help="check that this machine can isolate sandboxed tasks")
    doctor.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    """Can this machine run sandboxed tasks? Lists each problem with its fix."""
    from eval_pipelines.sandbox import host_problems

    catalog = Catalog.default()
    print_catalog_errors(catalog)
    problems = host_problems()
    if not problems:
        print("sandbox (bwrap): ready: sandboxed tasks can run on this machine")
        return 0
    print("sandbox (bwrap): NOT ready, sandboxed tasks will refuse to run:")
    for problem in problems:
        print(f"  - {problem}")
    return 1
