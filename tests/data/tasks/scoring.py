"""Tasks that score the ways third-party tasks do: two metrics from one dict-valued scorer,
their own epochs and reducer, and samples that error."""

from inspect_ai import Epochs, Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import CORRECT, INCORRECT, Score, Target, accuracy, mean, scorer, stderr
from inspect_ai.solver import Generate, TaskState, generate, solver

DATASET = [Sample(id=i, input=f"Question {i}", target="x") for i in range(1, 5)]


@scorer(metrics={"utility": [mean()], "security": [mean()]})
def utility_and_security():
    """Like AgentDojo's: utility on every sample, security on the even ones only."""

    async def score(state: TaskState, target: Target) -> Score:
        return Score(value={"utility": 1.0, "security": float(int(state.sample_id) % 2 == 0)})

    return score


@task
def two_metrics():
    return Task(dataset=DATASET, solver=generate(), scorer=utility_and_security())


@scorer(metrics=[accuracy(), stderr()])
def right_on_the_last_epoch():
    async def score(state: TaskState, target: Target) -> Score:
        return Score(value=CORRECT if state.epoch == 3 else INCORRECT)

    return score


@task
def best_of_three():
    """Solved on one epoch in three: its own reducer (max) makes that a 1."""
    return Task(
        dataset=DATASET,
        solver=generate(),
        scorer=right_on_the_last_epoch(),
        epochs=Epochs(3, "max"),
    )


@solver
def broken_tool():
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        raise RuntimeError("setup script /challenge/setup.sh not found")

    return solve


@task
def always_errors():
    return Task(dataset=DATASET, solver=broken_tool(), scorer=right_on_the_last_epoch())
