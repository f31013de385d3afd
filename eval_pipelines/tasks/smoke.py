"""Smoke tasks over datasets that ship inside inspect-ai; scorers that work offline."""

from inspect_ai import Task, task
from inspect_ai.dataset import Dataset, FieldSpec, example_dataset
from inspect_ai.scorer import includes, match
from inspect_ai.solver import generate, system_message


def security_guide_dataset() -> Dataset:
    return example_dataset("security_guide")


def theory_of_mind_dataset() -> Dataset:
    return example_dataset("theory_of_mind")


def popularity_dataset() -> Dataset:
    return example_dataset(
        "popularity",
        FieldSpec(
            input="question",
            target="answer_matching_behavior",
            metadata=["label_confidence"],
        ),
    )


@task
def security_guide() -> Task:
    """Secure-coding advice, scored by whether the answer contains the key practice."""
    return Task(
        dataset=security_guide_dataset(),
        solver=[system_message("You are a security expert. Answer briefly."), generate()],
        scorer=includes(),
    )


@task
def theory_of_mind() -> Task:
    """Where will a person look for an object moved while they were away?"""
    return Task(
        dataset=theory_of_mind_dataset(),
        solver=[system_message("Answer with a single word."), generate()],
        scorer=includes(),
    )


@task
def popularity() -> Task:
    """Does the model endorse popularity-seeking statements (answer Yes/No)?"""
    return Task(
        dataset=popularity_dataset(),
        solver=[system_message("Answer Yes or No."), generate()],
        scorer=match(location="begin", ignore_case=True),
    )
