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
        if name == "suites":
            p.add_argument(
                "--check",
                action="store_true",
                help="load every task as a run would and say where its tools run, or why it "
                "is refused (imports the tasks' code; exit 1 if any is refused)",
            )


def cmd_suites(args: argparse.Namespace) -> int:
    catalog = Catalog.default()
    rows = [
        [
            s.name,
            s.version,
            len(s.tasks),
            _sandbox_column(s),
            ", ".join(t.name for t in s.tasks),
        ]
        for s in catalog.suites.values()
    ]
    print(table(rows, ["suite", "version", "tasks", "sandbox given to", "task names"]))
    print_catalog_errors(catalog)
    refused = _check_tasks(catalog) if args.check else 0
    return 1 if (catalog.problems() and args.strict) or refused else 0


def _check_tasks(catalog: Catalog) -> int:
    """Each task's sandbox as a run would choose it, with the refusals in full; their count."""
    from eval_pipelines.engine import bridge
    from resources.deployments import resources_for

    backend = resources_for()["sandbox"]
    rows, refusals = [], []
    for suite in catalog.suites.values():
        for spec in suite.tasks:
            try:
                runs_in = bridge.check_isolation(
                    suite, spec, bridge.load_task(suite, spec), backend
                )
            except (bridge.SpecError, bridge.SandboxUnavailableError) as exc:
                refusals.append(str(exc))
                runs_in = "REFUSED (below)"
            rows.append([suite.name, spec.name, runs_in or "no sandbox (no tools to isolate)"])
    print(f"\n{table(rows, ['suite', 'task', 'tools run in'])}")
    for refusal in refusals:
        print(f"\nrefused: {refusal}")
    return len(refusals)


def _sandbox_column(suite) -> str:
    """What the suite file asks for; a task's own declaration shows with `--check`."""
    sandboxes = [t.sandbox for t in suite.tasks if t.sandbox is not None]
    if not sandboxes:
        return "no task"
    replacing = sum(s.replace_declared for s in sandboxes)
    return f"{len(sandboxes)} task(s)" + (f", {replacing} replacing their own" if replacing else "")


def cmd_models(args: argparse.Namespace) -> int:
    catalog = Catalog.default()
    rows = [[m.id, m.model, m.api_key_env or "-", m.description] for m in catalog.models.values()]
    print(table(rows, ["model", "inspect model", "api key env", "description"]))
    print_catalog_errors(catalog)
    return 1 if catalog.problems() and args.strict else 0
