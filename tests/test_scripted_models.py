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
        ValueError, match="unknown scripted model 'genius'; known: idle, red-team, reference, weak"
    ):
        get_model("scripted/genius", memoize=False)


def _call(model_args: dict) -> float:
    """One generate() call; returns when it was answered (wall time)."""
    import asyncio
    import time

    model = get_model("scripted/reference", memoize=False, **model_args)
    asyncio.run(model.generate([ChatMessageUser(content="What is the capital of Mars?")]))
    return time.time()


def test_a_rendezvous_holds_each_process_first_call_until_the_others_have_called(
    tmp_path: Path,
):
    import subprocess
    import sys
    import time

    ledger = tmp_path / "calls.log"
    args = {"call_log": str(ledger), "rendezvous_processes": 2}
    other = subprocess.Popen(
        [sys.executable, "-c", f"from tests.test_scripted_models import _call; _call({args!r})"]
    )
    try:
        while not ledger.exists():  # the other process has called and now waits for us
            assert other.poll() is None, "the other process answered without a rendezvous"
            time.sleep(0.05)
        time.sleep(1.0)
        assert other.poll() is None, "the other process answered without a rendezvous"
        _call(args)  # this process's call completes the rendezvous: both are answered
        assert other.wait(timeout=60) == 0
        assert len({line.split()[-1] for line in ledger.read_text().splitlines()}) == 2
        started = time.monotonic()
        _call(args)  # a later call in a process that has met does not wait (300 s if it did)
        assert time.monotonic() - started < 60
    finally:
        other.kill()


def test_a_rendezvous_needs_a_call_log():
    with pytest.raises(ValueError, match="rendezvous_processes needs a call_log"):
        get_model("scripted/reference", memoize=False, rendezvous_processes=2)
