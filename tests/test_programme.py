"""The benchmark programme against a real instance: schedules from programme files, models
evaluated on arrival, re-evaluation on a new suite version, and a scheduled run under the
real daemon."""

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import (
    AssetMaterialization,
    DagsterRunStatus,
    RunsFilter,
    build_schedule_context,
    build_sensor_context,
)
from dagster._core.definitions.partitions.context import partition_loading_context

from eval_pipelines.catalog import Catalog
from eval_pipelines.core.names import RUN_KEY_TAG
from eval_pipelines.definitions import build_definitions
from eval_pipelines.safety.incidents import Incident
from eval_pipelines.safety.quarantine import quarantine_model
from tests.conftest import write_suite

TICK = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
SMALL_SUITE = """
name: {name}
version: "{version}"
{flags}
tasks:
  - name: theory-of-mind
    task: eval_pipelines/theory_of_mind
    limit: 2
"""


def schedule_tick(defs, instance, name: str, when: datetime = TICK):
    schedule = defs.resolve_schedule_def(name)
    context = build_schedule_context(
        instance=instance, scheduled_execution_time=when, repository_def=defs.get_repository_def()
    )
    return schedule.evaluate_tick(context)


def arrival_tick(defs, instance):
    """The sensor's tick, its partition keys checked against the instance as the daemon does."""
    sensor = defs.resolve_sensor_def("model_arrival_sensor")
    with partition_loading_context(dynamic_partitions_store=instance):
        return sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=defs))


def submit(defs, instance, requests) -> None:
    """Create each request's run in the instance, tagged as the daemon tags it."""
    job = defs.resolve_job_def("evaluate")
    for request in requests:
        tags = {
            **job.partitions_def.get_tags_for_partition_key(request.partition_key),
            **request.tags,
            RUN_KEY_TAG: request.run_key,
        }
        with partition_loading_context(dynamic_partitions_store=instance):
            instance.create_run_for_job(job, run_config=request.run_config, tags=tags)


def quarantine(instance, model_id: str) -> None:
    quarantine_model(instance, Incident(
        rule_id="network-attempt", severity="critical", action="stop_evaluation",
        quarantine=True, run_id="r1", partition=f"{model_id}|smoke", model_id=model_id,
        suite="smoke", summary="tried the network",
    ))  # fmt: skip


def test_shipped_programme_is_a_stopped_schedule(defs):
    schedule = defs.resolve_schedule_def("nightly_smoke")
    assert schedule.cron_schedule == "0 2 * * *" and schedule.execution_timezone == "UTC"
    assert schedule.default_status.value == "STOPPED"


def test_schedule_tick_requests_each_partition_once(defs, instance, capfd):
    """`models: all` on smoke: one request per model partition; red-team has no partition
    and weak is quarantined, so both are skipped with the reason logged."""
    quarantine(instance, "weak")  # red-team, in the catalog, has no partition in `instance`
    first = schedule_tick(defs, instance, "nightly_smoke")
    [request] = first.run_requests
    assert request.partition_key == "reference|smoke"
    assert request.run_key == "nightly_smoke@2026-11-27T02:00:00+00:00:reference|smoke"
    assert request.tags["dagster/schedule_name"] == "nightly_smoke"
    assert {k: v for k, v in request.tags.items() if k.startswith("eval/")} == {
        "eval/model": "reference",
        "eval/suite": "smoke",
        "eval/programme": "nightly_smoke",
        "eval/trigger": "schedule",
    }
    logged = capfd.readouterr().err
    assert "skipping model weak: quarantined after incident" in logged
    assert "skipping model red-team: no partition yet" in logged

    submit(defs, instance, first.run_requests)
    again = schedule_tick(defs, instance, "nightly_smoke")
    assert again.run_requests == [] and "nothing to run" in again.skip_message
    [run] = instance.get_runs(RunsFilter(tags={"eval/programme": "nightly_smoke"}))
    assert run.tags["dagster/partition"] == "reference|smoke"

    next_night = schedule_tick(defs, instance, "nightly_smoke", TICK.replace(day=28))
    assert [r.run_key for r in next_night.run_requests] == [
        "nightly_smoke@2026-11-28T02:00:00+00:00:reference|smoke"
    ]


def test_programme_by_tags_with_run_config(
    dagster_home, instance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    models, programmes = tmp_path / "models", tmp_path / "programmes"
    write_suite(models, "frontier", "id: frontier\nmodel: scripted/weak\ntags: [frontier]\n")
    write_suite(programmes, "weekly", (
        "name: weekly\ncron: '0 3 * * 1'\ntimezone: Europe/London\n"
        "models: {tags: [frontier]}\nsuites: [smoke, agentic-smoke]\n"
        "config: {sample_limit: 2}\nexecutor: in_process\n"
    ))  # fmt: skip
    monkeypatch.setenv("EVAL_MODEL_PATH", str(models))
    monkeypatch.setenv("EVAL_PROGRAMME_PATH", str(programmes))
    instance.add_dynamic_partitions("models", ["frontier"])
    defs = build_definitions()
    result = schedule_tick(defs, instance, "weekly")
    assert sorted(r.partition_key for r in result.run_requests) == [
        "frontier|agentic-smoke",
        "frontier|smoke",
    ]
    config = result.run_requests[0].run_config
    assert config["ops"]["evaluation"]["ops"]["prepare_evaluation"]["config"] == {"sample_limit": 2}
    assert config["execution"] == {"config": {"in_process": {}}}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("cron: 'every night'", "'every night' is not a valid cron string"),
        ("timezone: Mars/Olympus", "'Mars/Olympus' is not an IANA time zone"),
        ("suites: [nope]", "unknown suite 'nope'"),
        ("models: [reference, ghost]", "unknown model 'ghost'"),
        ("config: {sample_limit: 0}", "sample_limit: Input should be greater than 0"),
        ("name: Has-Dash", "name: String should match pattern"),
        ("models: some", "models"),
    ],
)
def test_bad_programme_file_is_refused_with_file_and_reason(
    dagster_home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, reason: str
):
    fields = {"name": "bad", "cron": "'0 2 * * *'", "models": "all", "suites": "[smoke]"}
    key = body.split(":")[0]
    fields[key] = body.split(": ", 1)[1]
    text = "\n".join(f"{k}: {v}" for k, v in fields.items())
    path = write_suite(tmp_path / "programmes", "bad", text)
    monkeypatch.setenv("EVAL_PROGRAMME_PATH", str(path.parent))
    catalog = Catalog.default()
    [problem] = catalog.problems()
    assert problem.startswith(str(path)) and reason in problem, problem
    assert "bad" not in catalog.programmes
    # The code location still loads, with the shipped programme's schedule.
    assert [s.name for s in build_definitions().schedules] == ["nightly_smoke"]


@pytest.fixture
def flagged_suites(dagster_home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Suites `arrive` (on_new_model) and `again` (reevaluate_on_new_version), version 1."""
    folder = tmp_path / "suites"
    write_suite(folder, "arrive", SMALL_SUITE.format(name="arrive", version=1,
                                                     flags="on_new_model: true"))  # fmt: skip
    write_suite(folder, "again", SMALL_SUITE.format(name="again", version=1,
                                                    flags="reevaluate_on_new_version: true"))  # fmt: skip
    monkeypatch.setenv("EVAL_SUITE_PATH", str(folder))
    return folder


def test_new_models_get_flagged_suites_once(flagged_suites, instance):
    defs = build_definitions()
    first = arrival_tick(defs, instance)
    assert sorted((r.partition_key, r.run_key) for r in first.run_requests) == [
        ("reference|arrive", "once:reference|arrive@1"),
        ("weak|arrive", "once:weak|arrive@1"),
    ]
    assert first.run_requests[0].tags["eval/trigger"] == "arrival"
    submit(defs, instance, first.run_requests)
    assert arrival_tick(defs, instance).run_requests == []

    # A model that arrives later gets its own run, and only it.
    instance.add_dynamic_partitions("models", ["red-team"])
    [late] = arrival_tick(defs, instance).run_requests
    assert late.run_key == "once:red-team|arrive@1"


def test_new_suite_version_reevaluates_models_with_results_once(flagged_suites, instance):
    defs = build_definitions()
    # reference has a published result on `again` v1; weak has none.
    instance.report_runless_asset_event(
        AssetMaterialization("task_scores", partition="reference|again",
                             metadata={"suite_version": "1"})
    )  # fmt: skip
    arrivals = arrival_tick(defs, instance).run_requests
    assert {r.partition_key for r in arrivals} == {"reference|arrive", "weak|arrive"}
    submit(defs, instance, arrivals)
    assert arrival_tick(defs, instance).run_requests == []

    write_suite(flagged_suites, "again", SMALL_SUITE.format(
        name="again", version=2, flags="reevaluate_on_new_version: true"))  # fmt: skip
    [request] = arrival_tick(defs, instance).run_requests
    assert (request.partition_key, request.run_key) == ("reference|again", "once:reference|again@2")
    assert request.tags["eval/trigger"] == "new-version"
    submit(defs, instance, [request])
    assert arrival_tick(defs, instance).run_requests == []


def test_shipped_catalog_requests_nothing_on_arrival(defs, instance):
    """No shipped suite is flagged: a fresh deployment launches no evaluation by itself."""
    assert arrival_tick(defs, instance).run_requests == []


def test_backfill_of_a_suite_over_all_models_targets_each_model_once(defs, instance):
    """What the UI's backfill dialog submits for suite=smoke, every model: an asset backfill
    of the three result assets, accepted by the instance, one partition per model."""
    from dagster import AssetKey
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill

    assets = [AssetKey(a) for a in ("eval_logs", "sample_results", "task_scores")]
    keys = [f"{m}|smoke" for m in instance.get_dynamic_partitions("models")]
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id="smokeall", asset_graph=defs.resolve_asset_graph(), partition_names=keys,
        asset_selection=assets, backfill_timestamp=time.time(), tags={},
        dynamic_partitions_store=instance, all_partitions=False, title=None, description=None,
        run_config=None,
    )  # fmt: skip
    instance.add_backfill(backfill)
    stored = instance.get_backfill("smokeall")
    assert stored.status == BulkActionStatus.REQUESTED
    target = stored.asset_backfill_data.target_subset
    for asset in assets:
        assert set(target.get_partitions_subset(asset).get_partition_keys()) == {
            "reference|smoke",
            "weak|smoke",
        }


# --- With the real daemon ------------------------------------------------------------


@pytest.fixture
def every_minute(dagster_home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A programme on reference x smoke, each minute, one sample per task, in-process."""
    write_suite(tmp_path / "programmes", "minutely", (
        "name: minutely\ncron: '* * * * *'\nmodels: [reference]\nsuites: [smoke]\n"
        "config: {sample_limit: 1}\nexecutor: in_process\n"
    ))  # fmt: skip
    monkeypatch.setenv("EVAL_PROGRAMME_PATH", str(tmp_path / "programmes"))
    return "minutely"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_started_schedule_runs_an_evaluation_under_the_daemon(every_minute, services):
    from dagster import DagsterInstance

    from eval_pipelines.control.schedules import list_schedules, set_running

    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("models", ["reference"])
        assert {s.name: s.running for s in list_schedules(instance)}[every_minute] is False
        set_running(instance, every_minute, True)
        deadline = time.monotonic() + 420
        runs = []
        while time.monotonic() < deadline:
            runs = instance.get_runs(RunsFilter(tags={"eval/programme": every_minute}))
            if any(r.status == DagsterRunStatus.SUCCESS for r in runs):
                break
            assert not any(r.status == DagsterRunStatus.FAILURE for r in runs), runs
            time.sleep(2)
        set_running(instance, every_minute, False)
    done = [r for r in runs if r.status == DagsterRunStatus.SUCCESS]
    assert done, f"no scheduled run succeeded; runs: {[(r.run_id, r.status) for r in runs]}"
    run = done[0]
    assert run.tags["dagster/partition"] == "reference|smoke"
    assert run.tags[RUN_KEY_TAG].startswith("minutely@") and "dagster/schedule_name" in run.tags
    # One run per tick: no run key was used twice.
    keys = [r.tags[RUN_KEY_TAG] for r in runs]
    assert len(keys) == len(set(keys))
