"""The code location: assets, checks, jobs, sensors and the deployment's resources."""

from __future__ import annotations

import logging
import warnings

from dagster import AssetSpec, BetaWarning, Definitions, PreviewWarning

from assets.analytics import analytics_job, build_analytics_assets
from assets.checks import build_result_checks
from assets.evaluation import build_evaluation_assets
from assets.incidents import build_incidents_asset
from assets.leaderboard import build_leaderboard
from eval_pipelines.catalog import Catalog
from eval_pipelines.core.names import (
    EVALUATION_JOB,
    INCIDENT_REVIEWS,
    LEADERBOARD_JOB,
    MODEL_QUARANTINE,
    RESULTS_IO_MANAGER,
)
from eval_pipelines.core.partitions import evaluation_partitions, model_partitions
from eval_pipelines.execution.executors import executor_from_env
from eval_pipelines.jobs import build_evaluation_job, leaderboard_job, record_incidents_job
from eval_pipelines.results.io_manager import PublishedResultIOManager
from eval_pipelines.safety.jobs import quarantine_job, safety_alert_job
from resources.deployments import resources_for
from sensors.analytics import analytics_automation_sensor
from sensors.catalog import model_catalog_sensor
from sensors.programme import build_model_arrival_sensor, build_programme_schedules
from sensors.safety import build_evaluation_sensors, safety_incident_sensor

logger = logging.getLogger(__name__)

# We knowingly use partitioned asset checks (preview) and Output(data_version=...) (beta).
warnings.filterwarnings("ignore", category=PreviewWarning)
warnings.filterwarnings("ignore", category=BetaWarning)


def build_definitions(catalog: Catalog | None = None, resources: dict | None = None) -> Definitions:
    """The code location; `resources` replaces the deployment's resources by key."""
    catalog = catalog or Catalog.default()
    # A broken suite file is reported, not fatal: the UI and daemon must keep running.
    for error in catalog.problems():
        logger.warning("catalog file skipped: %s", error)
    partitions_def = evaluation_partitions(list(catalog.suites))
    evaluation = build_evaluation_assets(partitions_def)
    resources = {**resources_for(), **(resources or {})}
    # Results are read back through whichever artifact store is in use.
    results_io = PublishedResultIOManager(artifacts=resources["artifacts"])
    evaluation_job = build_evaluation_job(evaluation)
    # Observed only (by the quarantine job and `evalctl quarantine lift`): shown in the UI.
    quarantine_state = AssetSpec(
        MODEL_QUARANTINE, group_name="safety", partitions_def=model_partitions,
        description="Whether each model is quarantined; history of who quarantined and lifted.",
    )  # fmt: skip
    # Observed only (by `evalctl incidents resolve/reopen`): shown in the UI beside incidents.
    incident_reviews = AssetSpec(
        INCIDENT_REVIEWS, group_name="safety", partitions_def=partitions_def,
        description="Reviews of each model|suite's incidents: who resolved or reopened which "
        "incident, why and when; an incident's latest review is its state.",
    )  # fmt: skip
    return Definitions(
        assets=[
            evaluation,
            build_incidents_asset(partitions_def),
            build_leaderboard({name: s.version for name, s in catalog.suites.items()}),
            *build_analytics_assets(),
            quarantine_state,
            incident_reviews,
        ],
        asset_checks=build_result_checks(partitions_def),
        jobs=[
            evaluation_job,
            leaderboard_job,
            analytics_job,
            record_incidents_job,
            safety_alert_job,
            quarantine_job,
        ],
        sensors=[
            model_catalog_sensor,
            analytics_automation_sensor,
            safety_incident_sensor,
            *build_evaluation_sensors(evaluation_job),
            build_model_arrival_sensor(evaluation_job, set(catalog.suites)),
        ],
        schedules=build_programme_schedules(catalog, evaluation_job),
        resources={RESULTS_IO_MANAGER: results_io, **resources},
        executor=executor_from_env(),
    )


defs = build_definitions()


def evaluation_job():
    """Reconstructable handle on the evaluation job (for out-of-process executors)."""
    return defs.resolve_job_def(EVALUATION_JOB)


def leaderboard_job_def():
    return defs.resolve_job_def(LEADERBOARD_JOB)
