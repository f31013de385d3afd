"""`evalctl images`: the container sandbox's images, built offline and cached by content."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from eval_pipelines.catalog import Catalog
from eval_pipelines.cli._output import print_catalog_errors, table

_SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def add_parser(sub) -> None:
    """Register `images` on evalctl's subcommand parser."""
    images = sub.add_parser("images", help="list, build or prune the container sandbox's images")
    actions = images.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="the base image and every image built for a task").set_defaults(
        func=cmd_list
    )
    build = actions.add_parser(
        "build",
        help="build the offline base image (debootstrap) and the images of the catalog's "
        "container tasks, so runs start from cache",
    )
    build.add_argument("--suite", action="append", help="only these suites (repeatable)")
    build.set_defaults(func=cmd_build)
    actions.add_parser(
        "prune", help="remove built images no task of the catalog uses, and stale samples"
    ).set_defaults(func=cmd_prune)


def _engine():
    from eval_pipelines.containers._engine import EngineError, client

    try:
        return client()
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_list(args: argparse.Namespace) -> int:
    from eval_pipelines.containers import BASE_IMAGE
    from eval_pipelines.containers._engine import BUILT_LABEL, built_images

    engine = _engine()
    rows = []
    images = [i for i in engine.images.list() if BASE_IMAGE in i.tags] + built_images(engine)
    for image in images:
        rows.append(
            [
                ", ".join(image.tags) or "<untagged>",
                image.id,
                f"{image.attrs['Size'] / 1e6:.0f} MB",
                image.attrs["Created"][:19],
                image.labels.get(BUILT_LABEL, "base (debootstrap)"),
            ]
        )
    print(table(rows, ["image", "id", "size", "created", "content key"]))
    if not any(BASE_IMAGE in i.tags for i in images):
        print(f"\nno {BASE_IMAGE}: `evalctl images build` makes it offline", file=sys.stderr)
    return 0


def _container_configs(suites: list[str] | None):
    """(suite, task, config) of every container sample of the catalog's suites."""
    from eval_pipelines.containers import ContainerConfig
    from eval_pipelines.engine import bridge

    catalog = Catalog.default()
    print_catalog_errors(catalog)
    for suite in catalog.suites.values():
        if suites and suite.name not in suites:
            continue
        for spec in suite.tasks:
            if spec.sandbox is None or spec.sandbox.replace_declared:
                continue
            task = bridge.load_task(suite, spec)
            bridge.run_sandbox(task, spec, _backend())
            configs = {task.sandbox.config} if task.sandbox else set()
            configs |= {s.sandbox.config for s in task.dataset if s.sandbox}
            for config in configs:
                if isinstance(config, ContainerConfig):
                    yield suite.name, spec.name, config


def _backend():
    from resources.deployments import resources_for

    return resources_for()["sandbox"]


def cmd_build(args: argparse.Namespace) -> int:
    from eval_pipelines.containers import EngineError, project_images

    _engine().close()
    base = subprocess.run([_SCRIPTS / "base_image.sh"])
    if base.returncode != 0:
        return base.returncode
    rows, failed = [], 0
    for suite, task, config in _container_configs(args.suite):
        try:
            _, images = project_images(config)
        except EngineError as exc:
            print(f"error: {suite}/{task}: {exc}", file=sys.stderr)
            failed += 1
            continue
        rows += [[suite, task, i.service, i.reference, i.digest] for i in images.values()]
    print(table(rows, ["suite", "task", "service", "image", "id"]))
    return 1 if failed else 0


def cmd_prune(args: argparse.Namespace) -> int:
    from eval_pipelines.containers import ContainerConfig, load_project
    from eval_pipelines.containers._engine import BUILT_LABEL, build_key, built_images, reap

    engine = _engine()
    print(f"removed {reap(engine)} container(s), network(s) and volume(s) of ended samples")
    keep = set()
    for _, _, config in _container_configs(None):
        assert isinstance(config, ContainerConfig)
        for service in load_project(Path(config.file)).services:
            if service.build is not None:
                keep.add(build_key(service.build))
    removed = 0
    for image in built_images(engine):
        if image.labels.get(BUILT_LABEL) not in keep:
            engine.images.remove(image.id, force=True)
            removed += 1
    print(f"removed {removed} built image(s) no task of the catalog uses")
    return 0
