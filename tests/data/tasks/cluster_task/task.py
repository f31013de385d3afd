"""A compose task with registry images only: what runs unchanged on a cluster."""

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import includes
from inspect_ai.solver import generate


@task
def cluster_task():
    return Task(
        dataset=[Sample(input="What is the flag?", target="flag")],
        solver=generate(),
        scorer=includes(),
        sandbox=("docker", "compose.yaml"),
    )
