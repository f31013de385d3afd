"""Cost of the container sandbox (`ContainerSandboxEnvironment`) on this machine, beside bwrap.

Printed as tables:

1. images: building the ctf suite's images cold (no cache: content-keyed tags removed first,
           the base image kept) and cached (every tag present), per project.
2. ready:  one sample made (network, containers started, dependencies healthy) and removed,
           p50/p99 over --ready-runs, for a one-service project and the two-service ctf
           project (whose victim must pass a healthcheck), per runtime (runc, runsc).
3. exec:   `true` in a ready sample's container, p50/p99 over --exec-runs, per runtime; the
           engine's own exec (create and start over the API, nothing of ours) beside it; and
           `true` in a bwrap sandbox on the same machine.
4. live:   --live samples (one container each) made at once and alive together, then each
           running `true`: how many succeed, wall time, host memory drop per sample.

Needs root, the engine (scripts/docker_engine.sh) and the base image (evalctl images build).

Run from the project root:

    .venv/bin/python bench/containers.py
    .venv/bin/python bench/containers.py --ready-runs 50 --exec-runs 500 --live 40
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from eval_pipelines.catalog.specs import SandboxSpec
from eval_pipelines.containers import ContainerConfig, ContainerSandboxEnvironment, load_project
from eval_pipelines.containers._engine import BUILT_LABEL, build_key, client, engine_problems
from eval_pipelines.containers._environment import _projects, project_images
from eval_pipelines.sandbox import BwrapSandboxEnvironment, host_problems
from tests.container_support import leftovers

ROOT = Path(__file__).resolve().parents[1]
CTF = ROOT / "eval_pipelines" / "tasks" / "ctf"
ONE_SERVICE = CTF / "files_and_setup" / "compose.yaml"
TWO_SERVICES = CTF / "private_service" / "compose.yaml"
BUILT = [CTF / "private_service" / "compose.yaml", CTF / "setuid_find" / "Dockerfile"]


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered) * 1000:8.1f} {p99 * 1000:8.1f}"


def images() -> None:
    print("1. images (s)            cold   cached")
    engine = client()
    for file in BUILT:
        config = ContainerConfig(file=str(file))
        keys = {build_key(s.build) for s in load_project(file).services if s.build}
        for image in engine.images.list(filters={"label": BUILT_LABEL}):
            if image.labels.get(BUILT_LABEL) in keys:
                engine.images.remove(image.id, force=True)
        _projects.clear()
        started = time.monotonic()
        project_images(config)
        cold = time.monotonic() - started
        _projects.clear()
        started = time.monotonic()
        project_images(config)
        cached = time.monotonic() - started
        print(f"   {file.parent.name:<20} {cold:7.2f} {cached:8.2f}")
    engine.close()


async def ready(runtime: str, file: Path, runs: int) -> list[float]:
    config = ContainerConfig(file=str(file), runtime=runtime)
    project_images(config)
    times = []
    for _ in range(runs):
        started = time.monotonic()
        environments = await ContainerSandboxEnvironment.sample_init("bench", config, {})
        times.append(time.monotonic() - started)
        await ContainerSandboxEnvironment.sample_cleanup("bench", config, environments, False)
    return times


async def exec_times(environment, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.monotonic()
        result = await environment.exec(["true"])
        times.append(time.monotonic() - started)
        assert result.success, result.stderr
    return times


async def container_exec(runtime: str, runs: int) -> list[float]:
    config = ContainerConfig(file=str(ONE_SERVICE), runtime=runtime)
    environments = await ContainerSandboxEnvironment.sample_init("bench", config, {})
    try:
        return await exec_times(environments["default"], runs)
    finally:
        await ContainerSandboxEnvironment.sample_cleanup("bench", config, environments, False)


async def engine_floor(runtime: str, runs: int) -> list[float]:
    """The engine's own cost of an exec (create and start, blocking), with none of ours."""
    config = ContainerConfig(file=str(ONE_SERVICE), runtime=runtime)
    environments = await ContainerSandboxEnvironment.sample_init("bench", config, {})
    api, container = client().api, environments["default"].container.id
    times = []
    try:
        for _ in range(runs):
            started = time.monotonic()
            api.exec_start(api.exec_create(container, ["true"])["Id"])
            times.append(time.monotonic() - started)
        return times
    finally:
        api.close()
        await ContainerSandboxEnvironment.sample_cleanup("bench", config, environments, False)


async def bwrap_exec(runs: int) -> list[float]:
    spec = SandboxSpec()
    await BwrapSandboxEnvironment.task_init("bench", spec)
    environments = await BwrapSandboxEnvironment.sample_init("bench", spec, {})
    try:
        return await exec_times(environments["default"], runs)
    finally:
        await BwrapSandboxEnvironment.sample_cleanup("bench", spec, environments, False)


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


async def live(count: int) -> None:
    config = ContainerConfig(file=str(ONE_SERVICE), limits=SandboxSpec(memory_mb=128))
    before = mem_available()
    started = time.monotonic()
    made = await asyncio.gather(
        *(ContainerSandboxEnvironment.sample_init("bench", config, {}) for _ in range(count)),
        return_exceptions=True,
    )
    samples = [m for m in made if isinstance(m, dict)]
    ran = await asyncio.gather(
        *(s["default"].exec(["true"]) for s in samples), return_exceptions=True
    )
    wall = time.monotonic() - started
    drop = (before - mem_available()) / max(len(samples), 1) / (1 << 20)
    ok = sum(1 for r in ran if not isinstance(r, BaseException) and r.success)
    print(f"4. live: {count} samples at once: {len(samples)} made, {ok} ran `true`, "
          f"{wall:.1f} s, {drop:.0f} MB host memory each")  # fmt: skip
    failures = [m for m in made if not isinstance(m, dict)]
    if failures:
        print(f"   first failure: {failures[0]!r}")
    for sample in samples:
        await ContainerSandboxEnvironment.sample_cleanup("bench", config, sample, False)


async def main(args: argparse.Namespace) -> None:
    problems = [*engine_problems(), *host_problems()]
    if problems:
        raise SystemExit("cannot bench here:\n" + "\n".join(problems))
    images()
    print("\n2. ready (ms)                       p50      p99")
    for runtime in args.runtimes:
        for file in (ONE_SERVICE, TWO_SERVICES):
            times = await ready(runtime, file, args.ready_runs)
            print(f"   {runtime:<6} {file.parent.name:<22} {percentiles(times)}")
    print("\n3. exec `true` (ms)        p50      p99")
    for runtime in args.runtimes:
        ours = await container_exec(runtime, args.exec_runs)
        floor = await engine_floor(runtime, args.exec_runs)
        print(f"   container {runtime:<6} {percentiles(ours)}")
        print(f"   engine alone {runtime:<3} {percentiles(floor)}")
    print(f"   bwrap            {percentiles(await bwrap_exec(args.exec_runs))}")
    print()
    await live(args.live)
    left = leftovers()
    print(f"\nleft behind: {left or 'nothing'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ready-runs", type=int, default=20)
    parser.add_argument("--exec-runs", type=int, default=200)
    parser.add_argument("--live", type=int, default=20)
    parser.add_argument("--runtimes", nargs="+", default=["runc", "runsc"])
    asyncio.run(main(parser.parse_args()))
