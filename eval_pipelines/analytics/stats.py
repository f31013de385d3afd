"""The derived tables, as pure functions of the history's frames (see `history`).

Paired comparison: for two models evaluated on the same samples (same sample id and epoch)
of a suite task, d_i = score_a,i - score_b,i over the samples both scored; the difference is
mean(d), its standard error sd(d) / sqrt(n) (sample sd, ddof=1), and the 95% CI is the
normal interval mean(d) +/- 1.96 stderr, the same interval `task_scores` uses. It is
significant when the CI excludes 0. With n = 1 there is no stderr, so no CI and never
significant. All pairs of a suite task are computed at once with matrix products, so the
cost grows with models^2 x samples in numpy, not in Python loops.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

Z95 = 1.96
OUTCOMES = ("complete", "partial", "failed", "safety-stopped", "canceled")
_SPARKS = "▁▂▃▄▅▆▇█"
# A pair is compared on samples both models scored: same sample id and epoch.
PAIR_KEYS = ["sample_id", "epoch"]


def score_trends(tasks: pd.DataFrame) -> pd.DataFrame:
    """Each (model, suite, task) score over time, oldest first, with the change from the
    previous scored run of the same series."""
    series = ["model_id", "suite", "task"]
    scored = tasks[tasks["mean"].notna()].sort_values([*series, "evaluated_at", "run_id"])
    columns = [*series, "evaluated_at", "suite_version", "run_id", "status", "limited", "mean", "n"]
    trends = scored[columns].reset_index(drop=True)
    trends["change"] = trends.groupby(series, sort=False)["mean"].diff()
    return trends


def sparkline(values: list[float]) -> str:
    """Scores in [0, 1] as block characters: a trend plot any markdown view shows."""
    return "".join(_SPARKS[min(int(max(v, 0.0) * len(_SPARKS)), len(_SPARKS) - 1)] for v in values)


def trends_summary(trends: pd.DataFrame) -> pd.DataFrame:
    """One row per series: its scores over time as a sparkline, first and latest score."""
    grouped = trends.groupby(["model_id", "suite", "task"], sort=True)["mean"]
    summary = grouped.agg(runs="size", first="first", latest="last").reset_index()
    summary["trend"] = grouped.agg(lambda s: sparkline(list(s))).to_numpy()
    summary["change"] = summary["latest"] - summary["first"]
    return summary


def outcome_rates(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (model, suite): how many runs ended in each outcome, and its share of runs."""
    keys = ["model_id", "suite"]
    if runs.empty:
        return pd.DataFrame(columns=[*keys, "runs", *OUTCOMES, *(f"{o}_rate" for o in OUTCOMES)])
    counts = pd.crosstab([runs["model_id"], runs["suite"]], runs["status"])
    counts = counts.reindex(columns=list(OUTCOMES), fill_value=0)
    counts.columns.name = None
    table = counts.reset_index()
    table.insert(len(keys), "runs", counts.sum(axis=1).to_numpy())
    for outcome in OUTCOMES:
        table[f"{outcome}_rate"] = table[outcome] / table["runs"]
    return table


def compared_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The run each model is compared on, per suite version: among runs that published
    samples, a complete (not limited) one before a limited one, then the newest."""
    published = runs[runs["samples_uri"].notna()]
    ordered = published.sort_values(
        ["limited", "evaluated_at", "run_id"], ascending=[True, False, False]
    )
    return ordered.drop_duplicates(["model_id", "suite", "suite_version"]).reset_index(drop=True)


def paired_differences(samples: pd.DataFrame) -> pd.DataFrame:
    """Paired difference of every model pair (a < b) per task, over the samples both scored.

    `samples` holds model_id, task, sample_id, epoch and score (NaN when unscored or
    errored), one row per model, task, sample and epoch.
    """
    frames = []
    for task, rows in samples[samples["score"].notna()].groupby("task", sort=True):
        model_idx, models = pd.factorize(rows["model_id"], sort=True)
        if len(models) < 2:
            continue
        models = models.to_numpy()
        key_idx = rows.groupby(PAIR_KEYS, sort=False).ngroup().to_numpy()
        x = np.zeros((len(models), key_idx.max() + 1))
        present = np.zeros_like(x)
        x[model_idx, key_idx] = rows["score"].to_numpy(dtype=float)
        present[model_idx, key_idx] = 1.0
        n = present @ present.T  # samples both models scored
        sums = x @ present.T  # [i, j]: sum of model i's scores over the pair's samples
        squares = (x * x) @ present.T
        cross = x @ x.T
        a, b = np.triu_indices(len(models), k=1)
        n_ab = n[a, b]
        keep = n_ab > 0
        a, b, n_ab = a[keep], b[keep], n_ab[keep]
        sum_d = sums[a, b] - sums[b, a]
        sum_d2 = squares[a, b] + squares[b, a] - 2 * cross[a, b]
        diff = sum_d / n_ab
        with np.errstate(invalid="ignore", divide="ignore"):
            variance = np.clip((sum_d2 - n_ab * diff**2) / (n_ab - 1), 0.0, None)
            stderr = np.where(n_ab > 1, np.sqrt(variance / n_ab), np.nan)
        low, high = diff - Z95 * stderr, diff + Z95 * stderr
        frames.append(
            pd.DataFrame(
                {
                    "task": task,
                    "model_a": models[a],
                    "model_b": models[b],
                    "n": n_ab.astype(int),
                    "mean_a": sums[a, b] / n_ab,
                    "mean_b": sums[b, a] / n_ab,
                    "diff": diff,
                    "stderr": stderr,
                    "ci_low": low,
                    "ci_high": high,
                    "significant": (low > 0) | (high < 0),
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=COMPARISON_COLUMNS[2:-2])
    return pd.concat(frames, ignore_index=True)


COMPARISON_COLUMNS = [
    "suite",
    "suite_version",
    "task",
    "model_a",
    "model_b",
    "n",
    "mean_a",
    "mean_b",
    "diff",
    "stderr",
    "ci_low",
    "ci_high",
    "significant",
    "run_a",
    "run_b",
]


def model_comparison(
    runs: pd.DataFrame, load_samples: Callable[[list[str]], pd.DataFrame]
) -> pd.DataFrame:
    """Paired differences of every model pair on every suite version, one suite at a time
    (so memory holds one suite's samples). `load_samples(runs)` reads those manifest rows'
    samples: run_id, task, sample_id, epoch, score."""
    chosen = compared_runs(runs)
    frames = []
    for (suite, version), group in chosen.groupby(["suite", "suite_version"], sort=True):
        if len(group) < 2:
            continue
        samples = load_samples(group)
        model_of = dict(zip(group["run_id"], group["model_id"], strict=True))
        samples = samples.assign(model_id=samples["run_id"].map(model_of))
        pairs = paired_differences(samples)
        run_of = dict(zip(group["model_id"], group["run_id"], strict=True))
        pairs.insert(0, "suite", suite)
        pairs.insert(1, "suite_version", version)
        pairs["run_a"] = pairs["model_a"].map(run_of)
        pairs["run_b"] = pairs["model_b"].map(run_of)
        frames.append(pairs)
    if not frames:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    return pd.concat(frames, ignore_index=True)[COMPARISON_COLUMNS]


def oriented_comparison(comparison: pd.DataFrame, a: str, b: str, suite: str) -> pd.DataFrame:
    """Rows of `a` vs `b` on `suite`, oriented as a - b (stored once per pair, a < b)."""
    rows = comparison[comparison["suite"] == suite]
    forward = rows[(rows["model_a"] == a) & (rows["model_b"] == b)]
    backward = rows[(rows["model_a"] == b) & (rows["model_b"] == a)]
    flipped = backward.rename(
        columns={
            "model_a": "model_b",
            "model_b": "model_a",
            "mean_a": "mean_b",
            "mean_b": "mean_a",
            "run_a": "run_b",
            "run_b": "run_a",
            "ci_low": "ci_high",
            "ci_high": "ci_low",
        }
    ).assign(diff=-backward["diff"], ci_low=-backward["ci_high"], ci_high=-backward["ci_low"])
    return pd.concat([forward, flipped], ignore_index=True).sort_values(["suite_version", "task"])
