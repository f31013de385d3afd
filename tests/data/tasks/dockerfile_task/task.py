"""A task whose sandbox is the image its folder's Dockerfile builds."""

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import includes
from inspect_ai.solver import generate


@task
def dockerfile_task():
    return Task(
        dataset=[Sample(input="Who are you?", target="challenge_user")],
        solver=generate(),
        scorer=includes(),
        sandbox="docker",
    )
