"""The answer key of the shipped tasks, keyed by prompt text.

The `reference` model is an oracle over the datasets the project ships: it exists to show
that the pipeline carries a correct answer all the way to a score, not to be clever.
"""

from __future__ import annotations

from functools import cache

from inspect_ai.dataset import Sample

from eval_pipelines.tasks.agentic import agentic_dataset
from eval_pipelines.tasks.ctf import files_samples, private_service_samples, setuid_samples
from eval_pipelines.tasks.smoke import (
    popularity_dataset,
    security_guide_dataset,
    theory_of_mind_dataset,
)


def _prompt_of(sample: Sample) -> str:
    if isinstance(sample.input, str):
        return sample.input.strip()
    for message in sample.input:
        if message.role == "user":
            return message.text.strip()
    return ""


@cache
def answer_key() -> dict[str, Sample]:
    datasets = [
        security_guide_dataset(),
        theory_of_mind_dataset(),
        popularity_dataset(),
        agentic_dataset(),
        private_service_samples(),
        setuid_samples(),
        files_samples(),
    ]
    return {_prompt_of(sample): sample for dataset in datasets for sample in dataset}


def target_text(sample: Sample) -> str:
    target = sample.target
    return (target if isinstance(target, str) else target[0]).strip()
