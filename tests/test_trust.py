"""Trustworthy results (issue 9, item 3): every number says how it was obtained."""

import json
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterRunStatus

from eval_pipelines.cli import main
from eval_pipelines.core.names import SAFETY_STOPPED_TAG, TASK_TAG_PREFIX
from eval_pipelines.core.partitions import model_partitions
from eval_pipelines.definitions import build_definitions
from eval_pipelines.results.provenance import UNKNOWN_VERSION, run_provenance, run_status
from tests.conftest import PROJECT_ROOT, write_suite
from tests.test_cli import evalctl
from tests.test_evaluation_job import run_evaluation


def limited(sample_limit: int | None = None, epochs: int | None = None) -> dict:
    config = {"sample_limit": sample_limit, "epochs": epochs}
    return {"ops": {"evaluation": {"ops": {"prepare_evaluation": {"config": config}}}}}


def test_provenance_of_a_limited_run_and_of_a_refused_one(defs, instance):
    result = run_evaluation(defs, instance, "reference", "smoke", limited(sample_limit=2))
    assert result.success
    provenance = run_provenance(instance, result.run_id)
    assert provenance.model_dump(exclude={"evaluated_at"}) == {
        "run_id": result.run_id,
        "model_id": "reference",
        "suite": "smoke",
        "suite_version": "1.0.0",
        "status": "complete",
        "limited": True,
        "sample_limit": 2,
        "epochs": None,
    }
    scores = result.output_for_node("evaluation", "task_scores")
    assert provenance.evaluated_at == scores["evaluated_at"]

    # A model the catalog does not know: refused in prepare, before its suite version ran.
    instance.add_dynamic_partitions(model_partitions.name, ["ghost"])
    refused = run_evaluation(defs, instance, "ghost", "smoke", {})
    assert not refused.success
    provenance = run_provenance(instance, refused.run_id)
    assert (provenance.status, provenance.limited, provenance.suite_version) == (
        "failed",
        False,
        UNKNOWN_VERSION,
    )


def test_provenance_refuses_runs_that_are_not_evaluations(defs, instance):
    board = defs.resolve_job_def("refresh_leaderboard").execute_in_process(instance=instance)
    with pytest.raises(ValueError, match="not an evaluation"):
        run_provenance(instance, board.run_id)
    with pytest.raises(LookupError, match="no run"):
        run_provenance(instance, "0" * 36)


@pytest.mark.parametrize(
    ("status", "tags", "expected"),
    [
        (DagsterRunStatus.SUCCESS, {}, "complete"),
        (DagsterRunStatus.FAILURE, {}, "failed"),
        (DagsterRunStatus.FAILURE, {TASK_TAG_PREFIX + "popularity": "{}"}, "partial"),
        (DagsterRunStatus.CANCELED, {}, "canceled"),
        (DagsterRunStatus.CANCELED, {SAFETY_STOPPED_TAG: "true"}, "safety-stopped"),
        (DagsterRunStatus.STARTED, {}, "running"),
        (DagsterRunStatus.QUEUED, {}, "running"),
    ],
)
def test_run_status_names_how_a_run_ended(status, tags, expected):
    assert run_status(status, tags) == expected


# Small enough to evaluate in full (no override) in seconds; `limit` is the suite's own.
MINI = """\
name: mini
version: "{version}"
tasks:
  - name: theory-of-mind
    task: eval_pipelines/theory_of_mind
    limit: 3
  - name: popularity
    task: {tasks}/smoke.py@popularity
    limit: 3
"""


@pytest.fixture
def mini(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dagster_home: Path):
    """Writes suite `mini` at a version into a tmp EVAL_SUITE_PATH; returns fresh definitions."""
    folder = tmp_path / "suites"
    monkeypatch.setenv("EVAL_SUITE_PATH", str(folder))

    def write(version: str):
        write_suite(
            folder,
            "mini",
            MINI.format(version=version, tasks=PROJECT_ROOT / "eval_pipelines" / "tasks"),
        )
        return build_definitions()

    return write


def refresh_leaderboard(defs, instance) -> list[dict]:
    board = defs.resolve_job_def("refresh_leaderboard").execute_in_process(instance=instance)
    return board.output_for_node("leaderboard")


def row_of(rows: list[dict], model_id: str, suite: str) -> dict:
    [row] = [r for r in rows if (r["model_id"], r["suite"]) == (model_id, suite)]
    return row


def test_a_limited_run_does_not_replace_the_complete_result(mini, instance):
    """The reported bug: `--sample-limit 1` replaced the full result on the leaderboard,
    which then showed 1.000 from n=1 per task with nothing saying so."""
    defs = mini("1")
    complete = run_evaluation(defs, instance, "reference", "mini", {})
    assert complete.success
    quick = run_evaluation(defs, instance, "reference", "mini", limited(sample_limit=1))
    assert quick.success

    row = row_of(refresh_leaderboard(defs, instance), "reference", "mini")
    assert row["run_id"] == complete.run_id
    assert row["n"] == {"theory-of-mind": 3, "popularity": 3}
    assert (row["limited"], row["sample_limit"], row["epochs"]) == (False, None, None)
    assert row["suite_version"] == "1" and not row["stale"]
    # The limited run is not hidden either: it is the latest attempt.
    assert row["latest_attempt"]["run_id"] == quick.run_id
    assert row["latest_attempt"]["limited"] and row["status"] == "complete"


def markdown_of(instance) -> str:
    event = instance.get_latest_materialization_event(AssetKey("leaderboard"))
    return event.asset_materialization.metadata["table"].value


@pytest.mark.slow  # four evaluations (about 30 s on a busy machine)
def test_an_older_suite_version_is_marked_stale_not_mixed(mini, instance):
    v1 = mini("1")
    assert run_evaluation(v1, instance, "reference", "mini", {}).success
    v2 = mini("2")  # the suite changed: results of v1 no longer measure the same thing
    assert run_evaluation(v2, instance, "weak", "mini", {}).success

    rows = refresh_leaderboard(v2, instance)
    reference, weak = row_of(rows, "reference", "mini"), row_of(rows, "weak", "mini")
    assert (reference["suite_version"], reference["catalog_version"], reference["stale"]) == (
        "1",
        "2",
        True,
    )
    assert (weak["suite_version"], weak["stale"]) == ("2", False)
    # Current rows first, though the stale one scores higher; in the UI a table of their own.
    assert reference["overall"] > weak["overall"]
    assert [r["model_id"] for r in rows if r["suite"] == "mini"] == ["weak", "reference"]
    table = markdown_of(instance)
    current, stale = table.split("### mini: STALE")
    assert "| weak |" in current and "| reference |" not in current
    assert "| reference |" in stale and "| 1 | complete |" in stale

    # A limited run of the current version beats a complete one of an older version, marked.
    quick = run_evaluation(v2, instance, "reference", "mini", limited(sample_limit=1))
    reference = row_of(refresh_leaderboard(v2, instance), "reference", "mini")
    assert (reference["run_id"], reference["stale"], reference["limited"]) == (
        quick.run_id,
        False,
        True,
    )
    assert reference["n"] == {"theory-of-mind": 1, "popularity": 1}
    assert "LIMITED (sample_limit=1)" in markdown_of(instance).split("### mini: STALE")[0]


def test_the_status_of_a_later_failed_attempt_is_shown(mini, instance, tmp_path: Path):
    defs = mini("1")
    complete = run_evaluation(defs, instance, "reference", "mini", {})
    # The same version, now broken on disk: the next attempt fails before evaluating.
    write_suite(tmp_path / "suites", "mini", MINI.format(version="1", tasks="/nowhere"))
    failed = run_evaluation(defs, instance, "reference", "mini", {})
    assert not failed.success

    row = row_of(refresh_leaderboard(defs, instance), "reference", "mini")
    assert row["run_id"] == complete.run_id and not row["limited"]
    assert row["status"] == "failed"
    assert row["latest_attempt"]["run_id"] == failed.run_id
    assert f"last attempt failed ({failed.run_id[:8]})" in markdown_of(instance)


def test_evalctl_leaderboard_says_how_to_build_it_when_never_built(dagster_home, capsys):
    assert main(["leaderboard"]) == 1
    error = capsys.readouterr().err
    assert "leaderboard was never built" in error and "evalctl run" in error


@pytest.mark.slow  # three evalctl processes: each imports the code location
def test_evalctl_leaderboard_prints_what_the_asset_holds(defs, instance, dagster_home: Path):

    run = run_evaluation(defs, instance, "weak", "smoke", limited(sample_limit=2))
    rows = refresh_leaderboard(defs, instance)

    printed = evalctl(dagster_home, "leaderboard", "--json")
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout)["rows"] == rows
    [row] = rows
    assert (row["run_id"], row["limited"], row["sample_limit"]) == (run.run_id, True, 2)

    table = evalctl(dagster_home, "leaderboard", "--suite", "smoke")
    assert table.returncode == 0, table.stderr
    assert "smoke v1.0.0" in table.stdout
    assert "LIMITED (sample_limit=2)" in table.stdout and run.run_id[:8] in table.stdout
    assert f"{row['tasks']['popularity']:.3f} (n=2)" in table.stdout
    missing = evalctl(dagster_home, "leaderboard", "--suite", "mini")
    assert missing.returncode == 1 and "no row of suite 'mini'" in missing.stderr
