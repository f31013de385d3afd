"""Cost of the local bubblewrap sandbox (`BwrapSandboxEnvironment`) on this machine.

Four measurements, each printed as a table:

1. start:  one sample's sandbox created (`sample_init`: tmpfs work dir, cgroups) and removed
           (`sample_cleanup`), p50/p99 over --start-runs, default spec (512 MB, 256 MB disk).
2. exec:   `true` and `bash --login -c true` (what Inspect's bash tool runs), in a sandbox
           and as a plain `asyncio.create_subprocess_exec` of the same argv awaited the same
           way, interleaved, p50/p99 over --exec-runs; the difference is the sandbox's cost.
3. memory: --memory-sandboxes sandboxes alive at once, idle and then each running `sleep 60`:
           host MemAvailable drop, and RSS/PSS (/proc/<pid>/smaps_rollup) of every process
           with a sandbox uid, which includes bwrap outside the namespaces, per sandbox.
4. ramp:   10, 25, 50, 100, 200 (up to --max-live) sandboxes alive at once, each running a
           small CPU and memory workload; stops at the first level where anything fails.

Parts 3 and 4 use a small spec (128 MB memory, 16 MB disk). Every sandbox is removed, and
the end checks that no sandbox process, work dir, mount or cgroup is left behind. Needs
root and a host where `host_problems()` is empty; the default run takes about 30 s on 2 cores.

Run from the project root:

    .venv/bin/python bench/sandbox.py
    .venv/bin/python bench/sandbox.py --start-runs 100 --exec-runs 500 --max-live 50
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from inspect_ai.util import ExecResult, SandboxEnvironment

from eval_pipelines.catalog.specs import SandboxSpec
from eval_pipelines.sandbox import BwrapSandboxEnvironment, host_problems
from eval_pipelines.sandbox._command import SAFE_PATH
from eval_pipelines.sandbox._environment import HOST_UID_RANGE
from eval_pipelines.watch import Cgroup

TASK = "bench"
SMALL_SPEC = SandboxSpec(memory_mb=128, disk_mb=16)
LEVELS = (10, 25, 50, 100, 200)
MIB = 1 << 20
EXEC_COMMANDS = (["true"], ["bash", "--login", "-c", "true"])
# Held for 2 s after the work, so that the sandboxes of a level are alive at the same time.
WORKLOAD = [
    "python3",
    "-c",
    'import time; x = b"x" * (16 << 20); print(sum(range(2_000_000))); time.sleep(2)',
]
WORKLOAD_OUTPUT = str(sum(range(2_000_000)))
# Parents of every sandbox cgroup created, to find leftovers at the end.
CGROUP_PARENTS: set[Path] = set()


class BenchmarkError(RuntimeError):
    """A sandbox misbehaved, so its figure would be meaningless."""


@dataclass(frozen=True)
class Latency:
    """Durations of one operation, in seconds."""

    name: str
    seconds: list[float]

    def row(self) -> list[str]:
        cuts = statistics.quantiles(self.seconds, n=100, method="inclusive")
        return [self.name, str(len(self.seconds)), f"{cuts[49] * 1e3:.2f}", f"{cuts[98] * 1e3:.2f}"]


@dataclass(frozen=True)
class Level:
    """One ramp level: how long each phase took, and what failed."""

    live: int
    create_s: float
    exec_s: float
    cleanup_s: float
    peak: int
    error: str | None


def table(rows: list[list[str]], header: list[str]) -> str:
    """Right-aligned plain-text table, first column left-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [header, ["-" * w for w in widths], *rows]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    )


def sandbox_processes() -> dict[int, str]:
    """pid -> command name of every host process whose real uid is a sandbox uid."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(entry.path, "status").read_text()
        except OSError:  # exited meanwhile
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        uid = int(fields["Uid"].split()[0])
        if HOST_UID_RANGE[0] <= uid < HOST_UID_RANGE[1]:
            found[int(entry.name)] = fields["Name"].strip()
    return found


def mem_available() -> int:
    """Host MemAvailable in bytes."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise BenchmarkError("no MemAvailable in /proc/meminfo")


def rss_pss(pids: list[int]) -> tuple[int, int]:
    """Summed Rss and Pss of the processes, in bytes."""
    rss = pss = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            raise BenchmarkError(f"sandbox process {pid} exited while being measured") from None
        for line in rollup.splitlines():
            key, _, value = line.partition(":")
            if key == "Rss":
                rss += int(value.split()[0]) * 1024
            elif key == "Pss":
                pss += int(value.split()[0]) * 1024
    return rss, pss


def cgroup_of(env: SandboxEnvironment) -> Cgroup:
    cgroup = env.as_type(BwrapSandboxEnvironment)._sandbox.cgroup
    assert cgroup is not None
    return cgroup


@asynccontextmanager
async def live_sandboxes(count: int, spec: SandboxSpec) -> AsyncIterator[list[SandboxEnvironment]]:
    """`count` sandboxes created concurrently, as Inspect would; all removed on exit."""
    results = await asyncio.gather(
        *(BwrapSandboxEnvironment.sample_init(TASK, spec, {}) for _ in range(count)),
        return_exceptions=True,
    )
    created = [r for r in results if isinstance(r, dict)]
    try:
        for envs in created:
            CGROUP_PARENTS.update(d.parent for d in cgroup_of(envs["default"]).dirs)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]
        yield [envs["default"] for envs in created]
    finally:
        cleanups = await asyncio.gather(
            *(BwrapSandboxEnvironment.sample_cleanup(TASK, None, e, False) for e in created),
            return_exceptions=True,
        )
        if errors := [c for c in cleanups if isinstance(c, BaseException)]:
            raise errors[0]


async def timed(action: Awaitable[object]) -> float:
    start = time.perf_counter()
    await action
    return time.perf_counter() - start


async def measure_start(runs: int) -> tuple[list[Latency], int]:
    """Create and remove one sandbox at a time (after one warm-up, not counted).

    Returns the latencies and the cgroup version the sandboxes used.
    """
    start, cleanup, total = [], [], []
    for _ in range(runs + 1):
        began = time.perf_counter()
        envs = await BwrapSandboxEnvironment.sample_init(TASK, SandboxSpec(), {})
        created = time.perf_counter()
        version = cgroup_of(envs["default"]).version
        await BwrapSandboxEnvironment.sample_cleanup(TASK, None, envs, False)
        ended = time.perf_counter()
        start.append(created - began)
        cleanup.append(ended - created)
        total.append(ended - began)
    latencies = [
        Latency("start (sample_init)", start[1:]),
        Latency("cleanup (sample_cleanup)", cleanup[1:]),
        Latency("start + cleanup", total[1:]),
    ]
    return latencies, version


async def sandbox_exec(env: SandboxEnvironment, argv: list[str]) -> None:
    result = await env.exec(argv, timeout=30)
    if not result.success:
        raise BenchmarkError(f"{argv} failed in the sandbox ({result.returncode}): {result.stderr}")


async def plain_exec(argv: list[str], home: str) -> None:
    """The same argv on the host, with pipes awaited as the sandbox awaits them."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        cwd=home,
        env={"PATH": SAFE_PATH, "HOME": home, "LANG": "C.UTF-8"},  # like the sandbox's
    )
    _, stderr = await process.communicate()
    if process.returncode != 0:
        raise BenchmarkError(f"{argv} failed on the host ({process.returncode}): {stderr!r}")


async def measure_exec(runs: int) -> list[Latency]:
    """Interleave sandboxed and plain execs so machine drift hits both alike."""
    latencies = []
    async with live_sandboxes(1, SandboxSpec()) as (env,):
        with tempfile.TemporaryDirectory(prefix="bench-home-") as home:
            for argv in EXEC_COMMANDS:
                plain, sandboxed = [], []
                for _ in range(runs + 1):  # the first, a warm-up, is not counted
                    plain.append(await timed(plain_exec(argv, home)))
                    sandboxed.append(await timed(sandbox_exec(env, argv)))
                name = " ".join(argv)
                latencies += [
                    Latency(f"exec {name}: plain", plain[1:]),
                    Latency(f"exec {name}: sandbox", sandboxed[1:]),
                ]
    return latencies


async def wait_until(
    ready: Callable[[], bool], tasks: list[asyncio.Task[ExecResult[str]]], seconds: float
) -> None:
    """Poll `ready`, failing fast if a task already ended (its exec failed)."""
    deadline = time.monotonic() + seconds
    while not ready():
        if done := [t for t in tasks if t.done()]:
            done[0].result()
            raise BenchmarkError("a `sleep 60` exec ended early")
        if time.monotonic() > deadline:
            raise BenchmarkError(f"sandboxed processes not all running after {seconds}s")
        await asyncio.sleep(0.05)


async def stop_sleeps(tasks: list[asyncio.Task[ExecResult[str]]]) -> None:
    """SIGKILL the sleeps so their execs return normally (cancelling them would not)."""
    while not all(task.done() for task in tasks):
        for pid, name in sandbox_processes().items():
            if name == "sleep":
                os.kill(pid, signal.SIGKILL)
        await asyncio.wait(tasks, timeout=0.1)
    await asyncio.gather(*tasks, return_exceptions=True)


async def measure_memory(count: int) -> list[list[str]]:
    """Host memory with `count` sandboxes idle, then each running `sleep 60`."""
    before = mem_available()
    async with live_sandboxes(count, SMALL_SPEC) as envs:
        idle = mem_available()
        tasks = [asyncio.create_task(e.exec(["sleep", "60"], timeout=90)) for e in envs]
        try:
            await wait_until(
                lambda: Counter(sandbox_processes().values())["sleep"] == count, tasks, 30
            )
            running = mem_available()
            processes = sandbox_processes()
            rss, pss = rss_pss(list(processes))
        finally:
            await stop_sleeps(tasks)
    kinds = ", ".join(f"{n} {name}" for name, n in sorted(Counter(processes.values()).items()))
    per = count * MIB
    return [
        ["MemAvailable drop, sandboxes idle", f"{(before - idle) / per:.2f}", ""],
        ["MemAvailable drop, each running sleep", f"{(before - running) / per:.2f}", ""],
        ["RSS of sandbox-uid processes", f"{rss / per:.2f}", kinds],
        ["PSS of sandbox-uid processes", f"{pss / per:.2f}", kinds],
    ]


async def sample_peak(stop: asyncio.Event) -> int:
    """Most workload processes seen alive at once, sampled every 0.2 s until `stop`."""
    peak = 0
    while not stop.is_set():
        peak = max(peak, Counter(sandbox_processes().values())["python3"])
        try:
            await asyncio.wait_for(stop.wait(), 0.2)
        except TimeoutError:
            pass
    return peak


def workload_failure(results: list[ExecResult[str] | BaseException]) -> str | None:
    """The first failed workload exec, described, or None if all printed the right sum."""
    for index, result in enumerate(results):
        if isinstance(result, BaseException):
            return f"sandbox {index}: {type(result).__name__}: {result}"
        if result.returncode != 0 or result.stdout.strip() != WORKLOAD_OUTPUT:
            return f"sandbox {index}: exit {result.returncode}: {result.stderr.strip()[:300]}"
    return None


async def run_level(live: int) -> Level:
    """Create `live` sandboxes, run the workload in all at once, remove them; time each phase."""
    began = time.perf_counter()
    created = executed = began
    peak, error = 0, None
    try:
        async with live_sandboxes(live, SMALL_SPEC) as envs:
            created = time.perf_counter()
            stop = asyncio.Event()
            sampler = asyncio.create_task(sample_peak(stop))
            results = await asyncio.gather(
                *(e.exec(WORKLOAD, timeout=120) for e in envs), return_exceptions=True
            )
            stop.set()
            peak = await sampler
            executed = time.perf_counter()
            error = workload_failure(results)
    except Exception as exc:  # the point of the ramp is to find what breaks
        error = f"{type(exc).__name__}: {exc}"
    ended = time.perf_counter()
    created, executed = max(created, began), max(executed, created)
    return Level(live, created - began, executed - created, ended - executed, peak, error)


async def ramp(max_live: int) -> list[Level]:
    levels = []
    for live in [n for n in LEVELS if n <= max_live]:
        levels.append(await run_level(live))
        print(f"  {live} live: {'ok' if levels[-1].error is None else 'FAILED'}", flush=True)
        if levels[-1].error is not None:
            break
    return levels


def leftovers() -> list[str]:
    """Anything a sandbox left on the host: processes, work dirs, mounts, cgroups."""
    found = [f"process {pid} ({name})" for pid, name in sandbox_processes().items()]
    found += [str(p) for p in Path("/tmp").glob("eval-sandbox-*") if p.is_dir()]
    found += [
        f"mount {line.split()[4]}"
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if "eval-sandbox" in line
    ]
    found += [f"cgroup {d}" for parent in CGROUP_PARENTS for d in parent.glob("eval-sandbox-*")]
    return found


def machine_info(cgroup_version: int) -> str:
    bwrap = subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout.strip()
    return (
        f"machine: nproc={os.cpu_count()}, kernel {platform.release()}, {bwrap}, "
        f"cgroup v{cgroup_version} (as used by the sandbox), "
        f"MemTotal {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / (1 << 30):.1f} GiB"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--start-runs", type=int, default=50, help="sandbox starts (default 50)")
    parser.add_argument(
        "--exec-runs", type=int, default=200, help="execs per command (default 200)"
    )
    parser.add_argument(
        "--memory-sandboxes", type=int, default=20, help="live sandboxes for memory (default 20)"
    )
    parser.add_argument(
        "--max-live",
        type=int,
        default=LEVELS[-1],
        help=f"largest ramp level among {', '.join(map(str, LEVELS))} (default {LEVELS[-1]})",
    )
    args = parser.parse_args()
    if min(args.start_runs, args.exec_runs) < 2:
        parser.error("--start-runs and --exec-runs need at least 2 runs for percentiles")
    if args.memory_sandboxes < 1 or args.max_live < LEVELS[0]:
        parser.error(f"--memory-sandboxes must be >= 1 and --max-live >= {LEVELS[0]}")
    return args


async def run(args: argparse.Namespace) -> None:
    """Parts 1 to 4, then the leftover check; non-zero exit if anything is left behind."""
    latencies, cgroup_version = await measure_start(args.start_runs)
    print(machine_info(cgroup_version), flush=True)
    latencies += await measure_exec(args.exec_runs)
    print("\nlatency, default spec (memory 512 MB, disk 256 MB); one warm-up run not counted")
    print(table([lat.row() for lat in latencies], ["", "runs", "p50 ms", "p99 ms"]))
    for argv in EXEC_COMMANDS:
        plain, sandboxed = (
            lat for lat in latencies if lat.name.startswith(f"exec {' '.join(argv)}:")
        )
        overhead = statistics.median(sandboxed.seconds) - statistics.median(plain.seconds)
        print(f"sandbox overhead on `{' '.join(argv)}`, p50: {overhead * 1e3:+.2f} ms")

    count = args.memory_sandboxes
    print(f"\nmemory per sandbox, {count} live, small spec (memory 128 MB, disk 16 MB)")
    print(table(await measure_memory(count), ["", "MiB/sandbox", "processes counted"]))

    print(f"\nramp, small spec, workload: {shlex.join(WORKLOAD)}", flush=True)
    levels = await ramp(args.max_live)
    rows = [
        [str(lv.live), f"{lv.create_s:.2f}", f"{lv.exec_s:.2f}", f"{lv.cleanup_s:.2f}",
         f"{lv.create_s + lv.exec_s + lv.cleanup_s:.2f}", str(lv.peak), "ok" if lv.error is None else "FAILED"]
        for lv in levels
    ]  # fmt: skip
    print(
        table(
            rows, ["live", "create s", "exec s", "cleanup s", "total s", "peak running", "result"]
        )
    )
    passed = [lv.live for lv in levels if lv.error is None]
    print("peak running: workload processes seen alive at once, sampled every 0.2 s")
    print(f"largest level where every sandbox started and finished: {max(passed, default=0)}")
    if levels and levels[-1].error is not None:
        print(f"error at {levels[-1].live}: {levels[-1].error}")


def main() -> int:
    args = parse_args()
    if problems := host_problems():
        print("this host cannot run bwrap sandboxes:", *problems, sep="\n  - ", file=sys.stderr)
        return 2
    if found := leftovers():
        print(f"warning: sandbox leftovers before the run: {', '.join(found[:10])}")
    began = time.perf_counter()
    status = 1
    try:
        asyncio.run(run(args))
        status = 0
    except BenchmarkError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
    finally:
        found = leftovers()
        print(
            "\nleftover check (sandbox-uid processes, /tmp/eval-sandbox-* dirs, mounts, cgroups): "
            + ("none" if not found else f"{len(found)} found: {', '.join(found[:20])}")
        )
        print(f"total benchmark time {time.perf_counter() - began:.0f}s")
    return 1 if found else status


if __name__ == "__main__":
    sys.exit(main())
