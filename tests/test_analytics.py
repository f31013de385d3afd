"""Analytics: history, trends, paired comparison and outcomes, on known data and real runs."""

import json
import math
import subprocess
import sys

import pandas as pd
import pytest
from dagster import AssetKey, AssetMaterialization, evaluate_automation_conditions
from dagster_aws.s3 import S3Resource

from eval_pipelines import cli
from eval_pipelines.analytics import stats
from eval_pipelines.analytics.history import (
    RUN_COLUMNS,
    RunFrames,
    append_runs,
    empty_manifest,
    load_tasks,
    sample_loader,
)
from eval_pipelines.analytics.store import TABLE_METADATA, read_frame
from eval_pipelines.core.names import ANALYTICS_ASSETS, ANALYTICS_JOB, QUARANTINED_TAG
from resources.artifact_store import LocalArtifactStore
from resources.s3_artifact_store import S3ArtifactStore
from tests.test_evaluation_job import run_evaluation


def _samples(scores: dict[str, list[float | None]], task: str = "t") -> pd.DataFrame:
    rows = [
        {"model_id": model, "task": task, "sample_id": f"s{i // 2}", "epoch": i % 2 + 1, "score": s}
        for model, values in scores.items()
        for i, s in enumerate(values)
    ]
    return pd.DataFrame(rows).astype({"score": float})


def test_paired_difference_matches_a_hand_computation():
    # Samples are (s0,1) (s0,2) (s1,1) (s1,2) (s2,1); c has no score on (s1,2).
    pairs = stats.paired_differences(
        _samples(
            {
                "a": [1, 1, 0, 1, 1],
                "b": [0, 1, 0, 0, 1],
                "c": [0, 0, 0, None, 0],
            }
        )
    ).set_index(["model_a", "model_b"])

    # a - b: d = [1, 0, 0, 1, 0]; mean 0.4; sd = sqrt(((.6^2)*2 + (.4^2)*3) / 4) = sqrt(0.3)
    ab = pairs.loc[("a", "b")]
    assert ab["n"] == 5 and ab["diff"] == pytest.approx(0.4)
    assert ab["mean_a"] == pytest.approx(0.8) and ab["mean_b"] == pytest.approx(0.4)
    assert ab["stderr"] == pytest.approx(math.sqrt(0.3) / math.sqrt(5))  # 0.244949
    assert ab["ci_low"] == pytest.approx(0.4 - 1.96 * 0.244949, abs=1e-6)  # -0.080100
    assert ab["ci_high"] == pytest.approx(0.880100, abs=1e-6)
    assert not ab["significant"]

    # a - c over the 4 samples both scored: d = [1, 1, 0, 1]; mean .75, sd = 0.5, se = 0.25
    ac = pairs.loc[("a", "c")]
    assert ac["n"] == 4 and ac["diff"] == pytest.approx(0.75)
    assert (ac["ci_low"], ac["ci_high"]) == pytest.approx((0.26, 1.24))
    assert ac["significant"]

    # b - c: d = [0, 1, 0, 1]; mean .5, sd = sqrt(1/3), se = 0.288675 -> CI straddles 0
    bc = pairs.loc[("b", "c")]
    assert bc["diff"] == pytest.approx(0.5) and bc["stderr"] == pytest.approx(0.288675, abs=1e-6)
    assert not bc["significant"]


def test_one_shared_sample_has_no_interval():
    pairs = stats.paired_differences(_samples({"a": [1, None], "b": [0, 1]}))
    [row] = pairs.to_dict("records")
    assert row["n"] == 1 and row["diff"] == 1.0
    assert math.isnan(row["ci_low"]) and not row["significant"]


def _runs(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["run_id", "model_id", "suite", "status"])
    for column in RUN_COLUMNS:
        if column not in frame:
            frame[column] = None
    return frame


def test_outcome_rates_on_known_runs():
    runs = _runs(
        [
            ("r1", "a", "smoke", "complete"),
            ("r2", "a", "smoke", "complete"),
            ("r3", "a", "smoke", "partial"),
            ("r4", "a", "smoke", "safety-stopped"),
            ("r5", "b", "smoke", "failed"),
        ]
    )
    table = stats.outcome_rates(runs).set_index(["model_id", "suite"])
    a = table.loc[("a", "smoke")]
    assert a["runs"] == 4 and a["complete"] == 2
    assert (a["complete_rate"], a["partial_rate"], a["safety-stopped_rate"]) == (0.5, 0.25, 0.25)
    assert a["failed_rate"] == 0 and a["canceled_rate"] == 0
    assert table.loc[("b", "smoke"), "failed_rate"] == 1.0


def test_compared_run_prefers_complete_over_newer_limited():
    runs = _runs([("old-full", "a", "s", "complete"), ("new-limited", "a", "s", "complete")])
    runs["suite_version"] = "1"
    runs["samples_uri"] = "uri"
    runs["limited"] = [False, True]
    runs["evaluated_at"] = ["2026-01-01T00:00:00", "2026-02-01T00:00:00"]
    assert stats.compared_runs(runs)["run_id"].tolist() == ["old-full"]


def test_trends_order_each_series_in_time():
    tasks = pd.DataFrame(
        {
            "model_id": ["a", "a", "a", "b"],
            "suite": ["s"] * 4,
            "task": ["t"] * 4,
            "evaluated_at": ["2026-03", "2026-01", "2026-02", "2026-01"],
            "suite_version": ["1"] * 4,
            "run_id": ["r3", "r1", "r2", "rb"],
            "status": ["complete"] * 4,
            "limited": [False] * 4,
            "mean": [0.9, 0.1, 0.5, 0.2],
            "n": [10] * 4,
        }
    )
    trends = stats.score_trends(tasks)
    assert trends["run_id"].tolist() == ["r1", "r2", "r3", "rb"]
    # The change is within a series: b's first point has none.
    assert trends["change"].tolist()[1:3] == pytest.approx([0.4, 0.4])
    assert trends["change"].isna().tolist() == [True, False, False, True]
    summary = stats.trends_summary(trends).set_index("model_id")
    assert summary.loc["a", "trend"] == stats.sparkline([0.1, 0.5, 0.9]) == "▁▅█"
    assert summary.loc["a", "change"] == pytest.approx(0.8)


def test_assets_have_lineage_from_results(defs):
    graph = defs.resolve_asset_graph()

    def parents(name: str) -> set[str]:
        return {k.to_user_string() for k in graph.get(AssetKey(name)).parent_keys}

    assert parents("evaluation_history") == {"task_scores"}
    for name in ("score_trends", "model_comparison", "evaluation_outcomes"):
        assert parents(name) == {"evaluation_history"}
        assert graph.get(AssetKey(name)).group_name == "analytics"
    assert defs.resolve_job_def(ANALYTICS_JOB)


def test_the_code_location_loads_without_pandas():
    """Every run worker and step process loads the definitions: pandas (about 1.5 s) is
    imported only when an analytics asset runs."""
    check = (
        "import sys; from eval_pipelines.definitions import build_definitions; "
        "build_definitions(); print(sorted({'pandas', 'pyarrow'} & set(sys.modules)))"
    )
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"


def test_the_code_location_loads_without_inspect():
    """Every run worker and step process loads the definitions, most never run an evaluation:
    inspect_ai (about 1.5-5 s) is imported only by the ops that run one."""
    check = (
        "import sys; from eval_pipelines.definitions import build_definitions; "
        "build_definitions(); print(sorted(m for m in sys.modules if m.split('.')[0] == 'inspect_ai'))"
    )
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"


def test_cli_says_how_to_build_when_never_built(instance, capsys):
    assert cli.main(["compare", "reference", "weak", "--suite", "smoke"]) == 1
    assert "model_comparison has never been built" in capsys.readouterr().err


def _history(instance, artifacts) -> tuple[str, pd.DataFrame]:
    record = instance.fetch_materializations(AssetKey("evaluation_history"), limit=1).records[0]
    uri = record.asset_materialization.metadata[TABLE_METADATA].value
    return uri, read_frame(artifacts, uri)


def _hand_paired(ref_rows: list[dict], weak_rows: list[dict], task: str) -> tuple[float, float]:
    def scored(rows):
        return {
            (r["sample_id"], r["epoch"]): r["score"]
            for r in rows
            if r["task"] == task and r["error"] is None and r["score"] is not None
        }

    ref, weak = scored(ref_rows), scored(weak_rows)
    d = [ref[k] - weak[k] for k in sorted(ref.keys() & weak.keys())]
    mean = sum(d) / len(d)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1))
    return mean, sd / math.sqrt(len(d))


@pytest.mark.slow
def test_history_is_append_only_and_compare_prints_paired_cis(defs, instance, capsys):
    artifacts = defs.resources["artifacts"]
    analytics = defs.resolve_job_def(ANALYTICS_JOB)
    ref = run_evaluation(defs, instance, "reference", "smoke")
    weak = run_evaluation(defs, instance, "weak", "smoke")
    assert ref.success and weak.success
    assert analytics.execute_in_process(instance=instance).success
    first_uri, first = _history(instance, artifacts)
    assert set(first["run_id"]) == {ref.run_id, weak.run_id}

    # A failed run is appended (with its status); the earlier rows and parts stay as they were.
    instance.add_dynamic_partitions("models", ["ghost"])
    ghost = run_evaluation(defs, instance, "ghost", "smoke")
    assert not ghost.success
    assert analytics.execute_in_process(instance=instance).success
    second_uri, second = _history(instance, artifacts)
    assert len(second) == 3 and second.iloc[:2].equals(first)
    assert second.iloc[2][["run_id", "status"]].tolist() == [ghost.run_id, "failed"]
    tasks = load_tasks(artifacts, second.iloc[[0, 2]])
    assert tasks["n"].tolist() == [4, 4, 4, 0] and tasks["mean"].isna().tolist()[-1]
    assert tasks["status"].tolist() == ["complete"] * 3 + ["failed"]

    # Idempotent: nothing new, the same history.
    assert analytics.execute_in_process(instance=instance).success
    assert _history(instance, artifacts)[0] == second_uri != first_uri

    outcomes = instance.fetch_materializations(AssetKey("evaluation_outcomes"), limit=1).records[0]
    table = read_frame(artifacts, outcomes.asset_materialization.metadata[TABLE_METADATA].value)
    assert table.set_index("model_id").loc["ghost", "failed_rate"] == 1.0

    capsys.readouterr()  # drop what the runs printed (Inspect's banner)
    assert cli.main(["compare", "reference", "weak", "--suite", "smoke", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    ref_rows = ref.output_for_node("evaluation", "sample_results")
    weak_rows = weak.output_for_node("evaluation", "sample_results")
    assert {r["task"] for r in rows} == {"security-guide", "theory-of-mind", "popularity"}
    for row in rows:
        mean, stderr = _hand_paired(ref_rows, weak_rows, row["task"])
        assert (row["run_a"], row["run_b"], row["n"]) == (ref.run_id, weak.run_id, 4)
        assert row["diff"] == pytest.approx(mean)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(
            (mean - 1.96 * stderr, mean + 1.96 * stderr)
        )
        assert row["significant"] == (row["ci_low"] > 0 or row["ci_high"] < 0)

    # Asked the other way round, the stored reference - weak is flipped.
    assert cli.main(["compare", "weak", "reference", "--suite", "smoke", "--json"]) == 0
    flipped = {r["task"]: r for r in json.loads(capsys.readouterr().out)}
    for row in rows:
        back = flipped[row["task"]]
        assert (back["diff"], back["ci_low"]) == pytest.approx((-row["diff"], -row["ci_high"]))
        assert (back["run_a"], back["model_a"]) == (weak.run_id, "weak")

    assert cli.main(["compare", "reference", "weak", "--suite", "smoke"]) == 0
    printed = capsys.readouterr().out
    assert f"runs {ref.run_id} vs {weak.run_id}" in printed and "theory-of-mind" in printed
    assert cli.main(["history", "--model", "reference", "--suite", "smoke"]) == 0
    assert ref.run_id in capsys.readouterr().out

    # A quarantined run's results leave the comparison (as they leave the leaderboard).
    instance.add_run_tags(weak.run_id, {QUARANTINED_TAG: "incident-1"})
    assert cli.main(["compare", "reference", "weak", "--suite", "smoke", "--refresh"]) == 1
    assert "no paired samples of reference and weak" in capsys.readouterr().err
    assert cli.main(["history", "--model", "weak"]) == 0  # the history keeps every run


def test_new_results_request_the_history_and_what_derives_from_it(defs, instance):
    def requested(cursor=None):
        result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        keys = {r.key.to_user_string() for r in result.results if r.true_subset.size}
        return keys & set(ANALYTICS_ASSETS), result.cursor

    nothing, cursor = requested()
    assert nothing == set()
    instance.report_runless_asset_event(
        AssetMaterialization("task_scores", partition="reference|smoke")
    )
    assert requested(cursor)[0] == set(ANALYTICS_ASSETS)

    # History materialized on its own (e.g. from the UI): the derived tables follow.
    _, cursor = requested()
    instance.report_runless_asset_event(AssetMaterialization("evaluation_history"))
    assert requested(cursor)[0] == set(ANALYTICS_ASSETS) - {"evaluation_history"}


def _run_frames(run_id: str, score: float) -> RunFrames:
    run = {
        "run_id": run_id,
        "model_id": "a",
        "suite": "s",
        "suite_version": "1",
        "status": "complete",
        "limited": False,
        "sample_limit": None,
        "epochs": None,
        "evaluated_at": "2026-01-01T00:00:00+00:00",
    }
    tasks = pd.DataFrame(
        {
            "task": ["t"],
            "mean": [score],
            "stderr": [0.0],
            "n": [1],
            "errors": [0],
            "headline": ["match/accuracy"],
            "metrics": [f'{{"match/accuracy":{score}}}'],
        }
    )
    samples = pd.DataFrame({"task": ["t"], "sample_id": ["s0"], "epoch": [1], "score": [score]})
    return RunFrames(run, tasks.assign(published=True), samples)


def test_append_skips_known_runs_and_never_rewrites_parts(tmp_path):
    store = LocalArtifactStore(root=str(tmp_path))
    first = append_runs(store, empty_manifest(), [_run_frames("r1", 1.0)])
    files = {p: p.read_bytes() for p in tmp_path.rglob("*.parquet")}
    # r1 again (even with other rows) is skipped; r2 is appended in parts of its own.
    second = append_runs(store, first, [_run_frames("r1", 0.0), _run_frames("r2", 0.5)])
    assert second["run_id"].tolist() == ["r1", "r2"] and second.iloc[:1].equals(first)
    assert all(p.read_bytes() == data for p, data in files.items())
    assert load_tasks(store, second)["mean"].tolist() == [1.0, 0.5]
    assert append_runs(store, second, [_run_frames("r2", 0.0)]) is second


def test_history_and_comparison_on_s3(s3_endpoint):
    """The scale deployment's store: the same code path writes and reads Parquet on S3."""
    store = S3ArtifactStore(s3=S3Resource(endpoint_url=s3_endpoint), bucket="evals", prefix="p")
    manifest = append_runs(store, empty_manifest(), [_run_frames("r1", 1.0)])
    other = _run_frames("r2", 0.0)
    manifest = append_runs(
        store, manifest, [RunFrames({**other.run, "model_id": "b"}, other.tasks, other.samples)]
    )
    assert manifest["tasks_uri"].str.startswith("s3://").all()
    [row] = stats.model_comparison(manifest, sample_loader(store)).to_dict("records")
    assert (row["model_a"], row["model_b"], row["n"], row["diff"]) == ("a", "b", 1, 1.0)


def test_help_lists_history_and_compare(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "history" in out and "two models with 95% CIs" in out
