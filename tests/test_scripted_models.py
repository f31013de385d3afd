"""The scripted providers through plain Inspect: offline, deterministic, usage filled in."""

from pathlib import Path

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.model import ChatMessageUser, get_model

from eval_pipelines.tasks.smoke import security_guide, theory_of_mind


def _accuracy(log) -> float:
    return log.results.scores[0].metrics["accuracy"].value


def test_reference_answers_shipped_tasks_correctly_and_reports_usage(tmp_path: Path):
    [log] = inspect_eval(
        theory_of_mind(),
        model="scripted/reference",
        limit=10,
        display="none",
        log_dir=str(tmp_path),
    )
    assert log.status == "success"
    assert _accuracy(log) == 1.0
    usage = log.stats.model_usage["scripted/reference"]
    assert usage.input_tokens > 0 and usage.output_tokens > 0


def test_weak_is_worse_than_reference_and_deterministic(tmp_path: Path):
    runs = [
        inspect_eval(
            security_guide(), model="scripted/weak", display="none", log_dir=str(tmp_path)
        )[0]
        for _ in range(2)
    ]
    assert 0.0 < _accuracy(runs[0]) < 1.0
    assert _accuracy(runs[0]) == _accuracy(runs[1])
    assert [s.output.completion for s in runs[0].samples] == [
        s.output.completion for s in runs[1].samples
    ]


def test_reference_does_not_know_unshipped_prompts():
    model = get_model("scripted/reference")
    import asyncio

    output = asyncio.run(model.generate([ChatMessageUser(content="What is the capital of Mars?")]))
    assert output.completion == "I don't know."


def test_unknown_scripted_policy_is_a_clear_error():
    with pytest.raises(
        ValueError, match="unknown scripted model 'genius'; known: red-team, reference, weak"
    ):
        get_model("scripted/genius", memoize=False)
