"""Checks on every evaluation partition's sample results."""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    MultiPartitionsDefinition,
    asset_check,
)

from eval_pipelines.records import published_result


def build_result_checks(partitions_def: MultiPartitionsDefinition) -> list[AssetChecksDefinition]:
    @asset_check(asset="sample_results", partitions_def=partitions_def, blocking=True)
    def every_sample_scored(sample_results: list) -> AssetCheckResult:
        """Each sample that did not error has a score, and there is at least one sample."""
        unscored = [
            f"{r['task']}/{r['sample_id']}#{r['epoch']}"
            for r in sample_results
            if r["error"] is None and r["score"] is None
        ]
        return AssetCheckResult(
            passed=bool(sample_results) and not unscored,
            metadata={
                "samples": len(sample_results),
                "unscored": len(unscored),
                "first_unscored": ", ".join(unscored[:10]),
            },
        )

    @asset_check(asset="sample_results", partitions_def=partitions_def, blocking=True)
    def error_rate_within_threshold(
        context: AssetCheckExecutionContext, sample_results: list
    ) -> AssetCheckResult:
        """Errored samples stay under the `max_error_rate` of the suite version that ran.

        Taken from the materialization, not the catalog: the suite file may have changed since.
        """
        published = published_result(
            context.instance, context.partition_key, prefer_run=context.run.run_id
        )
        threshold = published.metadata("sample_results", "max_error_rate")
        errored = sum(r["error"] is not None for r in sample_results)
        rate = errored / len(sample_results) if sample_results else 1.0
        return AssetCheckResult(
            passed=rate <= threshold,
            metadata={"errored": errored, "error_rate": rate, "max_error_rate": threshold},
        )

    return [every_sample_scored, error_rate_within_threshold]
