"""Loading tasks, resolving models and failing closed on isolation."""

from pathlib import Path

import pytest

from eval_pipelines.catalog import Catalog
from eval_pipelines.catalog.spec_files import SpecError
from eval_pipelines.catalog.specs import ModelSpec, SuiteSpec, TaskSpec
from eval_pipelines.engine.bridge import (
    ModelResolutionError,
    SandboxUnavailableError,
    TaskLoadError,
    check_isolation,
    load_task,
    resolve_model,
)
from resources.sandbox import SandboxBackend

SANDBOXED_TASK_FILE = """
from inspect_ai import Task, task
from inspect_ai.dataset import Sample

@task
def wants_local():
    return Task(dataset=[Sample(input="hi", target="hi")], sandbox="local")
"""


def test_sandboxed_task_without_backend_fails_closed():
    suite = Catalog.default().suite("agentic-smoke")
    spec = suite.tasks[0]
    task = load_task(suite, spec)
    with pytest.raises(SandboxUnavailableError, match="never fall back to Inspect's unisolated"):
        check_isolation(suite, spec, task, SandboxBackend(backend="none"))


def test_sandbox_limits_above_platform_maxima_are_refused():
    spec = TaskSpec(name="t", task="x", sandbox={"memory_mb": 65536})
    suite = SuiteSpec(name="s", version="1", tasks=[spec])
    with pytest.raises(SpecError, match="memory_mb 65536 exceeds the platform maximum 8192"):
        check_isolation(suite, spec, task=None, backend=SandboxBackend(backend="bwrap"))


def test_task_that_declares_a_sandbox_must_be_marked_in_the_suite(tmp_path: Path):
    (tmp_path / "tasks.py").write_text(SANDBOXED_TASK_FILE)
    spec = TaskSpec(name="sneaky", task="tasks.py@wants_local")
    suite = SuiteSpec(name="s", version="1", tasks=[spec], source_dir=tmp_path)
    task = load_task(suite, spec)
    with pytest.raises(SandboxUnavailableError, match="declares a sandbox"):
        check_isolation(suite, spec, task, SandboxBackend(backend="bwrap"))


def test_file_tasks_resolve_against_the_suite_folder(tmp_path: Path):
    (tmp_path / "tasks.py").write_text(SANDBOXED_TASK_FILE)
    suite = SuiteSpec(
        name="s",
        version="1",
        tasks=[TaskSpec(name="t", task="tasks.py@wants_local")],
        source_dir=tmp_path,
    )
    assert load_task(suite, suite.tasks[0]).name == "wants_local"


@pytest.mark.parametrize(
    "reference, expected",
    [
        ("eval_pipelines/no_such_task", "found no Inspect task"),
        ("missing.py@task", "does not exist"),
        (
            "inspect_evals/gdm_intercode_ctf",
            "the eval package 'inspect_evals' is not installed in this environment; add it "
            "with `uv add --group evals inspect_evals`",
        ),
    ],
)
def test_unknown_tasks_name_suite_and_task(tmp_path: Path, reference: str, expected: str):
    suite = SuiteSpec(
        name="s", version="1", tasks=[TaskSpec(name="t", task=reference)], source_dir=tmp_path
    )
    with pytest.raises(TaskLoadError, match=f"suite 's', task 't'.*{expected}"):
        load_task(suite, suite.tasks[0])


def test_missing_api_key_names_the_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("EVAL_TEST_KEY", raising=False)
    spec = ModelSpec(id="m", model="scripted/reference", api_key_env="EVAL_TEST_KEY")
    with pytest.raises(ModelResolutionError, match="EVAL_TEST_KEY, which is not set"):
        resolve_model(spec)


def test_unknown_provider_is_a_model_error():
    with pytest.raises(ModelResolutionError, match="model 'm' \\(nosuch/model\\)"):
        resolve_model(ModelSpec(id="m", model="nosuch/model"))
