"""Run tags that stay written while other processes update the same run.

Dagster's `add_run_tags` (and every run status change) reads the run, merges and writes its
whole stored body back: a writer in another process that read the run just before ours
writes its older copy over our tags. It happens when several processes touch one run at
once, which is exactly when a run stops: each op process stores its partial checkpoint while
the run worker moves the run to CANCELING and CANCELED (measured: a checkpoint tag lost in 2
of 3 two-op safety stops on a loaded 2-core host, and a resume then misses that task's work).
"""

import time
from collections.abc import Mapping

from dagster import DagsterInstance

# A writer that read the run before ours wrote it writes within this long, on a loaded host.
SETTLE_SECONDS = 0.5
ATTEMPTS = 10


def add_run_tags_durably(instance: DagsterInstance, run_id: str, tags: Mapping[str, str]) -> None:
    """`instance.add_run_tags`, then check after a moment that the tags are still on the run,
    and write them again until they are (a few attempts; the run may also be gone)."""
    for _ in range(ATTEMPTS):
        instance.add_run_tags(run_id, tags)
        time.sleep(SETTLE_SECONDS)
        run = instance.get_run_by_id(run_id)
        if run is None or all(run.tags.get(k) == v for k, v in tags.items()):
            return
