from pathlib import Path

import pytest

from eval_pipelines.catalog.spec_files import SpecError, load_yaml_spec
from eval_pipelines.catalog.specs import ModelSpec, SuiteSpec, UsageLimits


def test_invalid_suite_error_names_file_field_and_problem(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\nversion: '1'\ntasks:\n  - name: a\n    task: x\n    epochs: 0\n")
    with pytest.raises(SpecError) as error:
        load_yaml_spec(path, SuiteSpec)
    message = str(error.value)
    assert str(path) in message
    assert "tasks.0.epochs" in message
    assert "greater than 0" in message


@pytest.mark.parametrize(
    "text, expected",
    [
        ("name: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        ("name: s\nversion: '1'\ntasks: []\n", "tasks: List should have at least 1 item"),
        (
            "name: s\nversion: '1'\nsurprise: 1\ntasks: [{name: a, task: x}]\n",
            "surprise: Extra inputs are not permitted",
        ),
        (
            "name: Bad Name\nversion: '1'\ntasks: [{name: a, task: x}]\n",
            "name: String should match pattern",
        ),
        (
            "name: s\nversion: '1'\ntasks: [{name: a, task: x}, {name: a, task: y}]\n",
            "repeated: a",
        ),
    ],
)
def test_suite_file_problems_are_reported(tmp_path: Path, text: str, expected: str):
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match="suite.yaml") as error:
        load_yaml_spec(path, SuiteSpec)
    assert expected in str(error.value)


def test_numeric_version_is_kept_as_text(tmp_path: Path):
    path = tmp_path / "suite.yaml"
    path.write_text("name: s\nversion: 2\ntasks: [{name: a, task: x}]\n")
    assert load_yaml_spec(path, SuiteSpec).version == "2"


def test_model_spec_takes_the_key_variable_name_never_the_key():
    spec = ModelSpec(id="gpt", model="openai/gpt-4o", api_key_env="OPENAI_API_KEY")
    assert spec.api_key_env == "OPENAI_API_KEY"
    with pytest.raises(ValueError, match="environment variable name"):
        ModelSpec(id="gpt", model="openai/gpt-4o", api_key_env="sk-live-1234567890abcdef")


def test_model_string_needs_provider_and_name():
    with pytest.raises(ValueError, match="provider"):
        ModelSpec(id="x", model="gpt-4o")


def test_task_limits_override_suite_limits_field_by_field():
    suite = UsageLimits(messages=10, time_seconds=60)
    merged = suite.merged(UsageLimits(messages=3))
    assert merged == UsageLimits(messages=3, time_seconds=60)


def test_eval_request_tags_become_run_tags():
    from eval_pipelines.catalog.specs import EvalRequest

    request = EvalRequest(model="reference", suite="smoke", tags={"ticket": "SAFE-1"})
    assert request.run_tags() == {
        "eval/model": "reference",
        "eval/suite": "smoke",
        "eval/ticket": "SAFE-1",
    }
    with pytest.raises(ValueError, match="tag keys"):
        EvalRequest(model="reference", suite="smoke", tags={"bad key": "x"})
