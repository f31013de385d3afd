"""A sample whose tool call runs for ten minutes: long enough to be stopped mid-call."""

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import includes
from inspect_ai.solver import Generate, TaskState, solver
from inspect_ai.util import sandbox


@solver
def sleeps():
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        await sandbox().exec(["sleep", "600"], timeout=900)
        return state

    return solve


@task
def long_exec():
    return Task(
        dataset=[Sample(input="wait", target="x")],
        solver=sleeps(),
        scorer=includes(),
        sandbox="docker",
    )
