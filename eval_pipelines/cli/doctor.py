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
    from resources.deployments import resources_for

    catalog = Catalog.default()
    print_catalog_errors(catalog)
    ready = _report("sandbox (bwrap)", "sandboxed tasks", host_problems())
    backend = resources_for()["sandbox"]
    containers = _report(
        f"container sandbox ({backend.containers})",
        "tasks with their own images (compose files, Dockerfiles)",
        backend.container_problems(),
    )
    return 0 if ready and containers else 1


def _report(name: str, what: str, problems: list[str]) -> bool:
    if not problems:
        print(f"{name}: ready: {what} can run on this machine")
        return True
    print(f"{name}: NOT ready, {what} will refuse to run:")
    for problem in problems:
        print(f"  - {problem}")
    return False
