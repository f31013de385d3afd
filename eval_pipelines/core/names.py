"""Every name an instance stores or a user types: run tags, asset keys, job names.

One place each, because each outlives the code: runs, materializations and saved Launchpad
config name them, and several layers read them (sensors, reports, the CLI).
"""

from dagster import AssetKey

# --- Jobs -----------------------------------------------------------------------------------
EVALUATION_JOB = "evaluate"
LEADERBOARD_JOB = "refresh_leaderboard"
RECORD_INCIDENTS_JOB = "record_incidents"
ANALYTICS_JOB = "refresh_analytics"
SAFETY_ALERT_JOB = "safety_alert"
QUARANTINE_JOB = "quarantine"

# --- Asset keys -----------------------------------------------------------------------------
# The three result assets one evaluation run publishes, in the order it writes them.
RESULT_ASSETS = ("eval_logs", "sample_results", "task_scores")
EVAL_LOGS_ASSET, SAMPLE_RESULTS_ASSET, TASK_SCORES_ASSET = (AssetKey(n) for n in RESULT_ASSETS)
LEADERBOARD_ASSET = AssetKey("leaderboard")
INCIDENTS_ASSET = AssetKey("incidents")
INCIDENT_REVIEWS = AssetKey("incident_reviews")
MODEL_QUARANTINE = AssetKey("model_quarantine")
ALERT_DELIVERIES = AssetKey("alert_deliveries")
# The analytics assets, downstream of every partition's task scores.
HISTORY, TRENDS, COMPARISON, OUTCOMES = (
    "evaluation_history",
    "score_trends",
    "model_comparison",
    "evaluation_outcomes",
)
ANALYTICS_ASSETS = (HISTORY, TRENDS, COMPARISON, OUTCOMES)

# --- Resource keys --------------------------------------------------------------------------
RESULTS_IO_MANAGER = "results_io_manager"

# --- Run tags: Dagster's own ----------------------------------------------------------------
PARTITION_TAG = "dagster/partition"
RUN_KEY_TAG = "dagster/run_key"

# --- Run tags: ours -------------------------------------------------------------------------
# Why a run was stopped (an operator, the safety monitor or sensor).
STOP_REASON_TAG = "eval/stop-reason"
# Set with the reason when the safety monitor or sensor stopped the run.
SAFETY_STOPPED_TAG = "eval/safety-stopped"
# Set on a run by the quarantine job (eval_pipelines.safety.quarantine).
QUARANTINED_TAG = "eval/quarantined"
# The run worker process (host, pid, start), so a dead worker is noticed.
WORKER_TAG = "eval/worker"
# Set by `prepare_evaluation` once the suite resolved: the suite version that ran, and when
# it started evaluating (read by `eval_pipelines.results.provenance`).
SUITE_VERSION_TAG = "eval/suite-version"
EVALUATED_AT_TAG = "eval/evaluated-at"
# Resume: the settings a run's results depend on, and each task's checkpoint.
FINGERPRINT_TAG = "eval/fingerprint"
TASK_TAG_PREFIX = "eval/task/"
# On every alert and quarantine run: the incident it answers; on alert runs, the channel.
INCIDENT_TAG = "eval/incident"
ALERT_TAG = "eval/alert"
