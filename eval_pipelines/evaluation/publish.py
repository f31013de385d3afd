"""The evaluation's last op: turn the task runs into the three result assets, all or nothing."""

from dagster import DataVersion, MetadataValue, OpExecutionContext, Out, Output, op

from eval_pipelines.catalog.launch_config import is_limited
from eval_pipelines.core.log_viewer import transcript_url
from eval_pipelines.core.names import RESULTS_IO_MANAGER
from eval_pipelines.core.text import canonical_json, markdown_table
from eval_pipelines.core.versions import code_version
from eval_pipelines.evaluation.plan import PreparedEvaluation, TaskRunResult
from eval_pipelines.execution.k8s import op_k8s_tags
from resources.artifact_store import ArtifactStore, content_key


@op(
    out={
        # Stored and loaded by the results IO manager: see `eval_pipelines.results.io_manager`.
        "eval_logs": Out(dict, io_manager_key=RESULTS_IO_MANAGER),
        "sample_results": Out(list, io_manager_key=RESULTS_IO_MANAGER),
        "task_scores": Out(dict, io_manager_key=RESULTS_IO_MANAGER),
    },
    tags={**op_k8s_tags("publish"), "stage": "publish"},
)
def publish_results(
    context: OpExecutionContext,
    evaluation: PreparedEvaluation,
    results: list[TaskRunResult],
    artifacts: ArtifactStore,
):
    """Turn the task runs into the three result assets, each versioned and traceable.

    Readers take a partition's result from the latest run that recorded all three
    (`eval_pipelines.results.records`), so a run that fails here publishes nothing.
    """
    model, suite = evaluation.model, evaluation.suite
    results = sorted(results, key=lambda r: [t.name for t in suite.tasks].index(r.task))
    identity = {
        "model_id": model.id,
        "model": model.model,
        "suite": suite.name,
        "suite_version": suite.version,
    }
    common = {
        **identity,
        **evaluation.versions,
        "code_version": code_version(suite.version),
        "run_id": evaluation.run_id,
    }

    logs = {r.task: {"uri": r.log_uri, "inspect_status": r.inspect_status} for r in results}
    rows = [{**identity, **row.model_dump()} for r in results for row in r.rows]
    # How each number was obtained: the overrides; each task's own score records the epochs
    # and reducer it really ran with, its headline metric and its sandbox.
    overrides = {"sample_limit": evaluation.sample_limit, "epochs": evaluation.epochs}
    score_rows = [r.score.model_dump() for r in results]
    scores = {
        **identity,
        "run_id": evaluation.run_id,
        "evaluated_at": evaluation.started_at,
        "limited": is_limited(**overrides),
        **overrides,
        "tasks": score_rows,
    }
    prefix = f"results/model={model.id}/suite={suite.name}/{evaluation.run_id}"
    # What ran, for container tasks: every service's image id.
    images = [
        {"task": t["task"], "service": service, "image": image}
        for t in score_rows
        for service, image in t["images"].items()
    ]

    errored = sum(r["error"] is not None for r in rows)
    outputs = {
        "eval_logs": (
            logs,
            {
                f"log/{task}": MetadataValue.url(transcript_url(entry["uri"]))
                for task, entry in logs.items()
            },
        ),
        "sample_results": (
            rows,
            {
                "samples": len(rows),
                "errored_samples": errored,
                "max_error_rate": suite.max_error_rate,
                "preview": MetadataValue.md(
                    markdown_table(
                        [
                            {
                                **r,
                                "transcript": f"[open]({transcript_url(logs[r['task']]['uri'], r['sample_id'], r['epoch'])})",
                            }
                            for r in rows[:20]
                        ],
                        [
                            "task",
                            "sample_id",
                            "epoch",
                            "score",
                            "total_tokens",
                            "error",
                            "transcript",
                        ],
                    )
                ),
            },
        ),
        "task_scores": (
            scores,
            {
                # Numeric metadata per task: the UI plots these across materializations.
                **{f"score/{s['task']}": s["mean"] for s in score_rows if s["mean"] is not None},
                "scores": MetadataValue.md(
                    markdown_table(
                        score_rows,
                        [
                            "task",
                            "mean",
                            "stderr",
                            "ci95_low",
                            "ci95_high",
                            "n",
                            "epochs",
                            "errors",
                            "headline",
                            "sandbox",
                            "problem",
                        ],
                    )
                ),
                **(
                    {
                        "images": MetadataValue.md(
                            markdown_table(images, ["task", "service", "image"])
                        )
                    }
                    if images
                    else {}
                ),
                "limited": scores["limited"],
                "overrides": ", ".join(f"{k}={v}" for k, v in overrides.items() if v) or "-",
                # Resume: what this run took over from failed or stopped runs before it.
                "reused_samples": sum(r.reused_samples for r in results),
                "reused_from": ", ".join(
                    sorted({r.reused_from_run for r in results if r.reused_from_run})
                )
                or "-",
            },
        ),
    }

    def write_snapshot(name: str, value: object) -> tuple[DataVersion, str]:
        data = canonical_json(value)
        version = DataVersion(content_key("", data, "").strip("/"))
        return version, artifacts.store(f"{prefix}/{name}", data, ".json")

    # All or nothing: every snapshot is written before any output is yielded, and the
    # results IO manager stores nothing, so a failed write records none of the three.
    snapshots = {name: write_snapshot(name, value) for name, (value, _) in outputs.items()}
    for name, (value, extra) in outputs.items():
        version, uri = snapshots[name]
        metadata = {
            **common,
            "data_version": version.value,
            "snapshot": MetadataValue.url(uri),
            **extra,
        }
        yield Output(value, name, data_version=version, metadata=metadata)
