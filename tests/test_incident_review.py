"""Incident review: resolve and reopen an incident (`evalctl incidents`), and what "open"
then means on the leaderboard, in the incidents table and to the safety sensor. Real
instance, real evaluations of the scripted models."""

from __future__ import annotations

import getpass
import json

from dagster import DagsterInstance, DagsterRunStatus

from eval_pipelines.cli import main as evalctl
from eval_pipelines.core.names import INCIDENT_REVIEWS
from eval_pipelines.safety.incidents import Incident, record_incident
from tests.test_incidents_asset import artifacts_of, board, evaluate, materialize_incidents
from tests.test_safety_response import fake_run, incident_for, tick


def recorded(instance: DagsterInstance, dagster_home, incident: Incident) -> Incident:
    record_incident(instance, artifacts_of(dagster_home), incident)
    return incident


def reviews(instance: DagsterInstance) -> int:
    return len(instance.fetch_observations(INCIDENT_REVIEWS, limit=100).records)


def listing(capsys, *args: str) -> str:
    capsys.readouterr()
    assert evalctl(["incidents", *args]) == 0
    return capsys.readouterr().out


def test_resolve_then_list_shows_who_and_why_and_reopen_brings_it_back(
    instance, dagster_home, capsys
):
    run_id = fake_run(instance, DagsterRunStatus.SUCCESS)
    older = recorded(instance, dagster_home, incident_for(run_id, action="record"))
    newer = recorded(
        instance, dagster_home,
        incident_for(run_id, model="weak", rule_id="secrets", severity="warning", action="record"),
    )  # fmt: skip

    out = listing(capsys)
    assert out.index(newer.id) < out.index(older.id), "newest first"
    assert "reference|smoke" in out and "net-egress" in out and "critical" in out

    assert evalctl(["incidents", "resolve", older.id, "--reason", "false positive: test"]) == 0
    said = capsys.readouterr().out
    assert f"incident {older.id}" in said and "resolved by" in said
    assert "next refresh" in said and "--refresh" in said

    [line] = [line for line in listing(capsys).splitlines() if older.id in line]
    assert "resolved" in line and getpass.getuser() in line and "false positive: test" in line
    assert older.id not in (shown := listing(capsys, "--open")) and newer.id in shown
    assert older.id not in listing(capsys, "--model", "weak")
    assert newer.id not in listing(capsys, "--suite", "smoke", "--model", "reference")
    assert "No incident matches" in listing(capsys, "--model", "nobody")

    rows = {r["id"]: r for r in json.loads(listing(capsys, "--json"))}
    assert rows[older.id]["state"] == "resolved"
    assert rows[older.id]["reviewed_by"] == getpass.getuser()
    assert rows[older.id]["review_reason"] == "false positive: test"
    assert rows[older.id]["partition"] == "reference|smoke"
    assert (rows[newer.id]["state"], rows[newer.id]["reviewed_by"]) == ("open", None)
    assert [r["id"] for r in json.loads(listing(capsys, "--json", "--open"))] == [newer.id]

    assert evalctl(["incidents", "reopen", older.id, "--reason", "not a false positive"]) == 0
    assert f"incident {older.id} (net-egress, critical, reference|smoke) reopened by" in (
        capsys.readouterr().out
    )
    rows = {r["id"]: r for r in json.loads(listing(capsys, "--json", "--open"))}
    assert rows[older.id]["state"] == "open"
    assert rows[older.id]["review_reason"] == "not a false positive"  # who reopened and why
    assert reviews(instance) == 2  # both kept: the history


def test_refusals_exit_2_with_the_reason_and_record_nothing(instance, dagster_home, capsys):
    incident = recorded(
        instance, dagster_home, incident_for(fake_run(instance, DagsterRunStatus.SUCCESS))
    )

    def refused(*args: str) -> str:
        capsys.readouterr()
        before = reviews(instance)
        assert evalctl(["incidents", *args]) == 2
        assert reviews(instance) == before, "a refusal records nothing"
        return capsys.readouterr().err

    err = refused("resolve", "no-such-incident", "--reason", "x")
    assert "no incident 'no-such-incident'" in err and "`evalctl incidents`" in err
    assert "a reason is required" in refused("resolve", incident.id, "--reason", "")
    assert "a reason is required" in refused("resolve", incident.id, "--reason", "   ")
    assert f"incident {incident.id} is already open" in refused(
        "reopen", incident.id, "--reason", "x"
    )
    assert evalctl(["incidents", "resolve", incident.id, "--reason", "reviewed"]) == 0
    assert f"incident {incident.id} is already resolved" in refused(
        "resolve", incident.id, "--reason", "again"
    )
    assert reviews(instance) == 1


def test_leaderboard_counts_only_open_incidents_and_the_resolved_apart(
    instance, dagster_home, capsys
):
    assert evaluate(instance, "weak", "smoke").success
    [row], _ = board(instance)
    critical, warning = (
        recorded(instance, dagster_home, incident_for(
            row["run_id"], model="weak", severity=severity, action="record"))
        for severity in ("critical", "warning")
    )  # fmt: skip
    [row], metadata = board(instance)
    assert (row["open_incidents"], row["worst_severity"], row["resolved_incidents"]) == (
        2, "critical", 0,
    )  # fmt: skip

    assert evalctl(["incidents", "resolve", critical.id, "--reason", "false positive"]) == 0
    [row], metadata = board(instance)
    assert (row["open_incidents"], row["worst_severity"], row["resolved_incidents"]) == (
        1, "warning", 1,
    )  # fmt: skip
    assert metadata["with_open_incidents"] == 1 and metadata["resolved_incidents"] == 1
    assert "| 1 (warning) | 1 |" in metadata["table"]
    capsys.readouterr()
    assert evalctl(["leaderboard", "--refresh"]) == 0  # the way the resolve's hint names
    printed = capsys.readouterr().out.splitlines()
    header = next(line for line in printed if line.startswith("model"))
    assert header.split()[-3:] == ["open", "incidents", "resolved"]
    [cells] = [line for line in printed if line.startswith("weak")]
    assert cells.split()[-3:] == ["1", "(warning)", "1"]

    # --refresh rebuilds the leaderboard (and the table) at once: its latest value shows it.
    assert evalctl(["incidents", "resolve", warning.id, "--reason", "ok", "--refresh"]) == 0
    out = capsys.readouterr().out
    assert "record_incidents refreshed" in out and "refresh_leaderboard refreshed" in out
    assert evalctl(["leaderboard", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)["rows"]
    assert (row["open_incidents"], row["worst_severity"], row["resolved_incidents"]) == (
        0, None, 2,
    )  # fmt: skip


def test_a_review_raises_no_alert(defs, instance, dagster_home):
    incident = recorded(
        instance, dagster_home, incident_for(fake_run(instance, DagsterRunStatus.SUCCESS))
    )
    first = tick(defs, instance, None)
    assert first.run_requests  # the incident itself alerts
    assert evalctl(["incidents", "resolve", incident.id, "--reason", "false positive"]) == 0
    after_resolve = tick(defs, instance, first.cursor)
    assert after_resolve.run_requests == []
    assert evalctl(["incidents", "reopen", incident.id, "--reason", "after all"]) == 0
    assert tick(defs, instance, after_resolve.cursor).run_requests == []


def test_the_incidents_table_row_shows_the_review_state(instance, dagster_home):
    run_id = fake_run(instance, DagsterRunStatus.SUCCESS)
    resolved, still_open = (
        recorded(instance, dagster_home, incident_for(run_id, action="record")) for _ in range(2)
    )
    assert evalctl(["incidents", "resolve", resolved.id, "--reason", "dup | of another"]) == 0

    metadata = materialize_incidents(instance, "reference|smoke", resolved.id)
    assert (metadata["incidents"], metadata["open"], metadata["resolved"]) == (2, 1, 1)
    rows = {r["id"]: r for r in json.loads(artifacts_of(dagster_home).get(metadata["snapshot"]))}
    assert rows[resolved.id]["state"] == "resolved"
    assert rows[resolved.id]["reviewed_by"] == getpass.getuser()
    assert rows[resolved.id]["review_reason"] == "dup | of another"
    assert rows[resolved.id]["reviewed_at"] >= resolved.detected_at
    assert (rows[still_open.id]["state"], rows[still_open.id]["reviewed_by"]) == ("open", None)
    assert f"| resolved ({getpass.getuser()}: dup \\| of another) |" in metadata["table"]
    assert metadata["table"].count("| open |") == 1
