from pathlib import Path

import pytest

from eval_pipelines.catalog import Catalog
from eval_pipelines.specs import SpecError
from tests.conftest import write_suite


def test_shipped_catalog_loads_cleanly():
    catalog = Catalog.default()
    assert {"smoke", "agentic-smoke"} <= set(catalog.suites)
    assert {"reference", "weak", "red-team"} <= set(catalog.models)
    assert catalog.errors == []
    assert catalog.suite("agentic-smoke").needs_sandbox
    assert not catalog.suite("smoke").needs_sandbox


def test_bad_user_file_is_skipped_and_reported_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    write_suite(tmp_path, "broken", "name: broken\nversion: '1'\ntasks: nope\n")
    write_suite(
        tmp_path,
        "fine",
        "name: fine\nversion: '1'\ntasks: [{name: a, task: eval_pipelines/popularity}]\n",
    )
    monkeypatch.setenv("EVAL_SUITE_PATH", str(tmp_path))
    catalog = Catalog.default()
    assert "fine" in catalog.suites and "smoke" in catalog.suites
    assert "broken" not in catalog.suites
    assert len(catalog.errors) == 1 and "broken.yaml" in catalog.errors[0]
    with pytest.raises(SpecError, match="unknown suite 'broken'") as error:
        catalog.suite("broken")
    assert "broken.yaml" in str(error.value)


def test_duplicate_suite_name_keeps_first_and_reports_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    write_suite(tmp_path, "again", "name: smoke\nversion: '9'\ntasks: [{name: a, task: x}]\n")
    monkeypatch.setenv("EVAL_SUITE_PATH", str(tmp_path))
    catalog = Catalog.default()
    assert catalog.suite("smoke").version == "1.0.0"
    assert any("already defined" in e and "again.yaml" in e for e in catalog.errors)


def test_unknown_model_lists_known_ones():
    with pytest.raises(SpecError, match="unknown model 'gpt-9'; known models: .*reference"):
        Catalog.default().model("gpt-9")


def test_broken_files_are_reported_when_the_code_location_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    from eval_pipelines.definitions import build_definitions

    write_suite(tmp_path / "suites", "broken", "name: broken\nversion: '1'\ntasks: nope\n")
    write_suite(tmp_path / "models", "broken-model", "id: x\nmodel: no-slash\n")
    monkeypatch.setenv("EVAL_SUITE_PATH", str(tmp_path / "suites"))
    monkeypatch.setenv("EVAL_MODEL_PATH", str(tmp_path / "models"))
    with caplog.at_level("WARNING", logger="eval_pipelines.definitions"):
        defs = build_definitions()
    assert defs.resolve_job_def("evaluate") is not None  # the location still loads
    skipped = [r.getMessage() for r in caplog.records if "catalog file skipped" in r.getMessage()]
    assert any("broken.yaml" in m for m in skipped) and any(
        "broken-model.yaml" in m for m in skipped
    )
