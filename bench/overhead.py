"""Wall-time overhead of running an evaluation through the platform instead of plain Inspect.

Both paths evaluate the same samples (`eval_pipelines/theory_of_mind`, 100 samples, with
the offline `scripted/reference` model, `epochs = samples / 100`) and are timed end to end
as subprocesses, interpreter start-up included, because that is what a user waits for:

- plain:    `inspect eval eval_pipelines/theory_of_mind --model scripted/reference ...`
- platform, by launch path (a one-task suite on EVAL_SUITE_PATH):
  - `cli-<executor>`: `evalctl run --local --executor <executor> --json`, unqueued, in the
    evalctl process, with a fresh DAGSTER_HOME per run;
  - `daemon-<executor>`: `evalctl run --executor <executor> --json` through the run queue
    while a `dagster-daemon` already serves the instance (as with `evalctl ui`): the daemon
    dequeues the run and starts it in a run worker, as for a launch from the UI.
    `daemon-in_process` is what the UI now runs locally by default; `daemon-multiprocess`
    (one process per op, as pods would) was the UI's default before.

Every run is validated (exit code 0; evalctl's JSON reports n == samples and mean 1.0), and
the script exits non-zero otherwise. By default the platform runs `in_process` at every size
and, at the smallest size, the daemon-launched paths and multiprocess too; repeats default to
3 at 100 samples and 1 above.

Run from the project root:

    .venv/bin/python bench/overhead.py
    .venv/bin/python bench/overhead.py --sizes 100 --repeats 5 --paths cli-in_process,daemon-in_process
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

TASK = "eval_pipelines/theory_of_mind"
DATASET_SAMPLES = 100  # samples in the task's dataset; larger sizes come from more epochs
INSPECT_MODEL = "scripted/reference"
MODEL_ID = "reference"  # the catalog model whose inspect model is INSPECT_MODEL
SUITE_NAME = "bench-tom"
SUITE_YAML = f"""\
name: {SUITE_NAME}
version: "1"
tasks:
  - name: theory-of-mind
    task: {TASK}
"""
PATHS = ("cli-in_process", "cli-multiprocess", "daemon-in_process", "daemon-multiprocess")
SCRIPTS = Path(sysconfig.get_path("scripts"))
PROJECT_ROOT = (
    Path(__file__).resolve().parent.parent
)  # the venv's bin/, where inspect and evalctl live


class BenchmarkError(RuntimeError):
    """A run failed or returned wrong results, so its time would be meaningless."""


@dataclass(frozen=True)
class Timings:
    """Wall times of one configuration, in seconds."""

    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def min(self) -> float:
        return min(self.seconds)


def run_timed(
    command: list[str], env: dict[str, str] | None = None
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run a command to completion and return its wall time; output is captured, not shown."""
    start = time.perf_counter()
    process = subprocess.run(command, check=False, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, process


def fail(what: str, process: subprocess.CompletedProcess[str], reason: str) -> BenchmarkError:
    """An error carrying the end of the run's output, so a failure can be diagnosed."""
    tail = "\n".join((process.stdout + process.stderr).splitlines()[-30:])
    return BenchmarkError(f"{what}: {reason}\n--- last output lines ---\n{tail}")


def run_plain(samples: int, max_samples: int | None) -> float:
    """Time `inspect eval` on the task, writing its log to a throwaway folder."""
    with tempfile.TemporaryDirectory(prefix="bench-inspect-") as log_dir:
        command = [
            str(SCRIPTS / "inspect"),
            "eval",
            TASK,
            "--model",
            INSPECT_MODEL,
            "--epochs",
            str(samples // DATASET_SAMPLES),
            "--log-dir",
            log_dir,
            "--display",
            "none",
        ]
        if max_samples is not None:
            command += ["--max-samples", str(max_samples)]
        seconds, process = run_timed(command)
    if process.returncode != 0:
        raise fail(f"plain inspect, {samples} samples", process, f"exit code {process.returncode}")
    return seconds


def parse_result_json(stdout: str) -> dict:
    """evalctl prints progress and then one indented JSON object: parse from its opening brace."""
    lines = stdout.splitlines()
    starts = [i for i, line in enumerate(lines) if line == "{"]
    if not starts:
        raise ValueError("no JSON object in stdout")
    return json.loads("\n".join(lines[starts[-1] :]))


def check_scores(result: dict, samples: int) -> str | None:
    """Why the run's scores are wrong, or None: the reference model must score 1.0 on every sample."""
    task = result["task_scores"]["tasks"][0]
    if task["n"] != samples or task["mean"] != 1.0:
        return f"expected n={samples} and mean 1.0, got n={task['n']} and mean {task['mean']}"
    return None


class Daemon:
    """A `dagster-daemon` serving one instance for the daemon-launched paths, started once."""

    def __init__(self):
        self.home: str | None = None
        self._folder: tempfile.TemporaryDirectory | None = None
        self._process: subprocess.Popen | None = None

    def home_for(self, suite_dir: Path) -> str:
        if self._process is None:
            self._folder = tempfile.TemporaryDirectory(prefix="bench-daemon-home-")
            self.home = self._folder.name
            (Path(self.home) / "dagster.yaml").write_text(
                (PROJECT_ROOT / "dagster.yaml").read_text()
            )
            env = {**os.environ, "DAGSTER_HOME": self.home, "EVAL_SUITE_PATH": str(suite_dir)}
            self._process = subprocess.Popen(
                [str(SCRIPTS / "dagster-daemon"), "run", "-w", str(PROJECT_ROOT / "workspace.yaml")],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            time.sleep(15)  # its first heartbeat; evalctl would otherwise start a private one
        return self.home

    def stop(self) -> None:
        if self._process is not None:
            os.killpg(self._process.pid, signal.SIGTERM)
            self._process.wait(timeout=60)
            self._folder.cleanup()


DAEMON = Daemon()


def run_platform(samples: int, path: str, suite_dir: Path, max_samples: int | None) -> float:
    """Time `evalctl run` on the one-task suite along one launch path."""
    launch, executor = path.split("-", 1)
    with tempfile.TemporaryDirectory(prefix="bench-dagster-home-") as fresh_home:
        home = DAEMON.home_for(suite_dir) if launch == "daemon" else fresh_home
        env = {**os.environ, "DAGSTER_HOME": home, "EVAL_SUITE_PATH": str(suite_dir)}
        command = [
            str(SCRIPTS / "evalctl"),
            "run",
            *(["--local"] if launch == "cli" else []),
            "--fresh",
            "--model",
            MODEL_ID,
            "--suite",
            SUITE_NAME,
            "--epochs",
            str(samples // DATASET_SAMPLES),
            "--executor",
            executor,
            "--json",
        ]
        if max_samples is not None:
            command += ["--max-samples", str(max_samples)]
        seconds, process = run_timed(command, env)
    what = f"platform {path}, {samples} samples"
    if process.returncode != 0:
        raise fail(what, process, f"exit code {process.returncode}")
    try:
        problem = check_scores(parse_result_json(process.stdout), samples)
    except (ValueError, KeyError, IndexError) as exc:
        problem = f"unreadable JSON result ({exc!r})"
    if problem:
        raise fail(what, process, problem)
    return seconds


def paths_for(samples: int, sizes: list[int], chosen: list[str] | None) -> list[str]:
    """The chosen paths, or by default every path only at the smallest size (some are slow)."""
    if chosen is not None:
        return chosen
    return list(PATHS) if samples == min(sizes) else ["cli-in_process"]


def repeats_for(samples: int, chosen: int | None) -> int:
    """Several repeats where runs are short, one where they are long, unless told."""
    if chosen is not None:
        return chosen
    return 3 if samples <= DATASET_SAMPLES else 1


def measure_size(
    samples: int, paths: list[str], repeats: int, suite_dir: Path, max_samples: int | None
) -> tuple[Timings, dict[str, Timings]]:
    """Time plain and platform runs, interleaved per repeat so machine drift hits both alike."""
    plain: list[float] = []
    platform_runs: dict[str, list[float]] = {p: [] for p in paths}
    for repeat in range(1, repeats + 1):
        plain.append(run_plain(samples, max_samples))
        print(
            f"  {samples} samples, repeat {repeat}/{repeats}: plain {plain[-1]:.2f}s",
            end="",
            flush=True,
        )
        for path in paths:
            platform_runs[path].append(run_platform(samples, path, suite_dir, max_samples))
            print(f", {path} {platform_runs[path][-1]:.2f}s", end="", flush=True)
        print()
    return Timings(plain), {e: Timings(s) for e, s in platform_runs.items()}


def table(rows: list[list[str]], header: list[str]) -> str:
    """Right-aligned plain-text table."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [header, ["-" * w for w in widths], *rows]
    return "\n".join(
        "  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)) for line in lines
    )


def result_rows(samples: int, plain: Timings, platform_runs: dict[str, Timings]) -> list[list[str]]:
    """One row per launch path; ratio and overhead compare medians."""
    return [
        [
            str(samples),
            path,
            str(len(runs.seconds)),
            f"{plain.median:.2f} / {plain.min:.2f}",
            f"{runs.median:.2f} / {runs.min:.2f}",
            f"{runs.median / plain.median:.2f}x",
            f"{runs.median - plain.median:+.2f}",
        ]
        for path, runs in platform_runs.items()
    ]


def machine_info() -> str:
    """What the figures depend on, printed with them."""
    return (
        f"machine: nproc={os.cpu_count()}, python {platform.python_version()}, "
        f"inspect-ai {version('inspect-ai')}, dagster {version('dagster')}"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        default="100,1000",
        help=f"comma-separated sample counts, multiples of {DATASET_SAMPLES} (default: 100,1000)",
    )
    parser.add_argument(
        "--repeats", type=int, help="runs per configuration (default: 3 at 100 samples, 1 above)"
    )
    parser.add_argument(
        "--paths",
        help=f"comma-separated launch paths for every size, of {', '.join(PATHS)} "
        "(default: all at the smallest size, cli-in_process above)",
    )
    parser.add_argument(
        "--max-samples",
        type=int,
        help="samples run concurrently, passed to both paths (default: Inspect's)",
    )
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    if any(s <= 0 or s % DATASET_SAMPLES for s in args.sizes):
        parser.error(f"--sizes must be positive multiples of {DATASET_SAMPLES}")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.paths is not None:
        args.paths = args.paths.split(",")
        if unknown := set(args.paths) - set(PATHS):
            parser.error(f"unknown paths {sorted(unknown)}; choose from {', '.join(PATHS)}")
    return args


def main() -> int:
    args = parse_args()
    started = time.perf_counter()
    print(machine_info(), flush=True)
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-suites-") as suite_dir:
        (Path(suite_dir) / f"{SUITE_NAME}.yaml").write_text(SUITE_YAML)
        try:
            for samples in args.sizes:
                paths = paths_for(samples, args.sizes, args.paths)
                plain, platform_runs = measure_size(
                    samples,
                    paths,
                    repeats_for(samples, args.repeats),
                    Path(suite_dir),
                    args.max_samples,
                )
                rows += result_rows(samples, plain, platform_runs)
        except BenchmarkError as exc:
            print(f"\nerror: {exc}", file=sys.stderr)
            return 1
        finally:
            DAEMON.stop()
    print()
    print(
        table(
            rows,
            [
                "samples",
                "launch path",
                "runs",
                "plain s med/min",
                "platform s med/min",
                "ratio",
                "overhead s",
            ],
        )
    )
    print(
        f"\nratio and overhead compare medians; total benchmark time {time.perf_counter() - started:.0f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
