"""Peak memory and wall time of the analytics at programme scale, on synthetic results.

Generates runs of M models x S suites (default 100 x 10), each suite T tasks x N samples
(default 5 x 200 = 1,000 samples, one epoch; scores are Bernoulli draws from each model's
ability and each sample's difficulty), without running Inspect, and builds the history,
trends, comparison and outcomes with the same functions the assets use
(`eval_pipelines.analytics`), into a fresh local artifact store. The work runs in a child
process; the parent reports that process's wall time per stage and its peak resident memory
(`getrusage(RUSAGE_CHILDREN).ru_maxrss`, which counts the interpreter, pandas and numpy too).

Run from the project root:

    .venv/bin/python bench/analytics.py
    .venv/bin/python bench/analytics.py --models 20 --suites 2 --runs 3
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Targets of issue 9 on a 2-core machine.
MAX_SECONDS, MAX_MEMORY_MB = 60.0, 1024.0


def _synthetic_runs(args: argparse.Namespace):
    """RunFrames of every (model, suite, repeat), generated one at a time."""
    import numpy as np
    import pandas as pd

    from eval_pipelines.analytics.history import RunFrames

    rng = np.random.default_rng(9)
    ability = rng.uniform(0.2, 0.9, args.models)
    task_names = [f"task-{t}" for t in range(args.tasks)]
    # Shared by every run's frame (pandas copies nothing it is not asked to).
    tasks = pd.Categorical(np.repeat(task_names, args.samples))
    sample_ids = pd.Categorical(np.tile([f"s{i}" for i in range(args.samples)], args.tasks))
    for repeat in range(args.runs):
        for suite in range(args.suites):
            difficulty = rng.normal(0, 0.15, args.tasks * args.samples)
            for model in range(args.models):
                p = np.clip(ability[model] + difficulty + 0.02 * repeat, 0, 1)
                score = (rng.random(len(p)) < p).astype(float)
                samples = pd.DataFrame(
                    {"task": tasks, "sample_id": sample_ids, "epoch": 1, "score": score}
                )
                per_task = score.reshape(args.tasks, args.samples)
                scores = pd.DataFrame(
                    {
                        "task": task_names,
                        "mean": per_task.mean(axis=1),
                        "stderr": per_task.std(axis=1, ddof=1) / np.sqrt(args.samples),
                        "n": args.samples,
                    }
                )
                run = {
                    "run_id": f"run-{repeat}-{suite}-{model}",
                    "model_id": f"model-{model:03d}",
                    "suite": f"suite-{suite:02d}",
                    "suite_version": "1.0.0",
                    "status": "complete",
                    "limited": False,
                    "sample_limit": None,
                    "epochs": None,
                    "evaluated_at": f"2026-{repeat + 1:02d}-01T00:00:00+00:00",
                }
                yield RunFrames(run, scores.assign(errors=0, published=True), samples)


def child(args: argparse.Namespace) -> None:
    from eval_pipelines.analytics import history, stats
    from eval_pipelines.analytics.store import read_frame, write_frame
    from resources.artifact_store import LocalArtifactStore

    artifacts = LocalArtifactStore(root=args.store)
    timings = {}

    start = time.perf_counter()
    manifest = history.append_runs(artifacts, history.empty_manifest(), _synthetic_runs(args))
    uri = write_frame(artifacts, f"{history.PREFIX}/manifest", manifest)
    timings["history"] = time.perf_counter() - start

    start = time.perf_counter()
    manifest = read_frame(artifacts, uri)
    trends = stats.score_trends(history.load_tasks(artifacts, manifest))
    stats.trends_summary(trends)
    write_frame(artifacts, "analytics/score_trends", trends)
    timings["trends"] = time.perf_counter() - start

    start = time.perf_counter()
    comparison = stats.model_comparison(manifest, history.sample_loader(artifacts))
    write_frame(artifacts, "analytics/model_comparison", comparison)
    timings["comparison"] = time.perf_counter() - start

    start = time.perf_counter()
    write_frame(artifacts, "analytics/evaluation_outcomes", stats.outcome_rates(manifest))
    timings["outcomes"] = time.perf_counter() - start

    print(
        json.dumps(
            {
                "timings": timings,
                "runs": len(manifest),
                "sample_rows": args.runs * args.suites * args.models * args.tasks * args.samples,
                "trend_points": len(trends),
                "comparisons": len(comparison),
                "significant": int(comparison["significant"].sum()),
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--suites", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=5, help="tasks per suite")
    parser.add_argument("--samples", type=int, default=200, help="samples per task")
    parser.add_argument("--runs", type=int, default=1, help="runs of each model on each suite")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-analytics-") as folder:
        command = [sys.executable, __file__, "--child", "--store", folder]
        for name in ("models", "suites", "tasks", "samples", "runs"):
            command += [f"--{name}", str(getattr(args, name))]
        start = time.perf_counter()
        done = subprocess.run(
            command, capture_output=True, text=True, cwd=Path(__file__).parent.parent
        )
        wall = time.perf_counter() - start
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return 1
    report = json.loads(done.stdout.splitlines()[-1])
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    print(
        f"{args.models} models x {args.suites} suites x {args.tasks * args.samples} samples "
        f"x {args.runs} run(s): {report['sample_rows']:,} sample rows, {report['runs']:,} runs"
    )
    for stage, seconds in report["timings"].items():
        print(f"  {stage:<11} {seconds:7.2f} s")
    print(
        f"  trend points {report['trend_points']:,}, comparisons {report['comparisons']:,} "
        f"({report['significant']:,} significant)"
    )
    ok = wall < MAX_SECONDS and peak_mb < MAX_MEMORY_MB
    print(
        f"wall {wall:.1f} s (child process, start-up included; target < {MAX_SECONDS:.0f} s), "
        f"peak RSS {peak_mb:.0f} MB (target < {MAX_MEMORY_MB:.0f} MB): {'OK' if ok else 'OVER'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
