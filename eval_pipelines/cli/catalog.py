"""`evalctl suites` and `evalctl models`: what the catalog holds."""

from __future__ import annotations

import argparse

from eval_pipelines.catalog import Catalog
from eval_pipelines.cli._output import print_catalog_errors, table


def add_parser(sub) -> None:
    """Register `suites` and `models` on evalctl's subcommand parser."""
    for name, func in (("suites", cmd_suites), ("models", cmd_models)):
        p = sub.add_parser(name, help=f"list the {name} in the catalog")
        p.add_argument(
            "--strict", action="store_true", help="exit 1 if any catalog file failed to load"
        )
        p.set_defaults(func=func)


def cmd_suites(args: argparse.Namespace) -> int:
    catalog = Catalog.default()
    rows = [
        [
            s.name,
            s.version,
            len(s.tasks),
            "yes" if s.needs_sandbox else "no",
            ", ".join(t.name for t in s.tasks),
        ]
        for s in catalog.suites.values()
    ]
    print(table(rows, ["suite", "version", "tasks", "sandbox", "task names"]))
    print_catalog_errors(catalog)
    return 1 if catalog.problems() and args.strict else 0


def cmd_models(args: argparse.Namespace) -> int:
    catalog = Catalog.default()
    rows = [[m.id, m.model, m.api_key_env or "-", m.description] for m in catalog.models.values()]
    print(table(rows, ["model", "inspect model", "api key env", "description"]))
    print_catalog_errors(catalog)
    return 1 if catalog.problems() and args.strict else 0
