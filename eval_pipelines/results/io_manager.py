"""IO for the evaluation result assets: they are snapshots already in the artifact store.

`publish_results` writes every snapshot before it yields any of its three outputs, so storing
an output here does no I/O at all: nothing can fail between the three materializations
except the event log itself. Loading resolves the partition's published result (the latest
run that recorded all three, see `eval_pipelines.results.records`) and reads its snapshot.
"""

from dagster import ConfigurableIOManager, InputContext, OutputContext, ResourceDependency

from eval_pipelines.results.records import published_result
from resources.artifact_store import ArtifactStore


class PublishedResultIOManager(ConfigurableIOManager):
    """Stores nothing (the snapshot is written); loads the partition's published snapshot."""

    artifacts: ResourceDependency[ArtifactStore]

    def handle_output(self, context: OutputContext, obj: object) -> None:
        if "snapshot" not in context.output_metadata:
            raise ValueError(
                f"{context.asset_key.to_user_string()}: a result output must carry the URI of "
                "its already written snapshot in metadata['snapshot']"
            )

    def load_input(self, context: InputContext) -> object:
        keys = context.asset_partition_keys
        asset = context.asset_key.to_user_string()
        if len(keys) != 1:
            raise ValueError(
                f"{asset}: load one partition at a time (got {len(keys)}); read several "
                "with eval_pipelines.results.records.published_result"
            )
        # Inside an evaluation run (its checks), read what that run published.
        result = published_result(context.instance, keys[0], prefer_run=context.step_context.run_id)
        return result.value(asset, self.artifacts)
