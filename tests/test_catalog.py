import os
from pathlib import Path

import pytest

from eval_pipelines.catalog import Catalog
from eval_pipelines.catalog.spec_files import SpecError
from tests.conftest import PROJECT_ROOT, write_suite

FINE_SUITE = "name: fine\nversion: '1'\ntasks: [{name: a, task: eval_pipelines/popularity}]\n"


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
    write_suite(tmp_path, "fine", FINE_SUITE)
    monkeypatch.setenv("EVAL_SUITE_PATH", str(tmp_path))
    catalog = Catalog.default()
    assert "fine" in catalog.suites and "smoke" in catalog.suites
    assert "broken" not in catalog.suites
    assert len(catalog.errors) == 1 and "broken.yaml" in catalog.errors[0]
    with pytest.raises(SpecError, match=r"suite file .*broken.yaml failed to load: invalid"):
        catalog.suite("broken")


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
    with pytest.raises(SpecError, match="known models: .*did you mean 'reference'"):
        Catalog.default().model("Reference")


def test_missing_folder_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("EVAL_MODEL_PATH", str(tmp_path / "nowhere"))
    catalog = Catalog.default()
    assert "reference" in catalog.models
    assert catalog.bad_folders() == [
        f"{tmp_path / 'nowhere'}: folder in EVAL_MODEL_PATH does not exist"
    ]
    assert catalog.problems() == catalog.bad_folders()


LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
)


def _make_bad_files(folder: Path) -> dict[str, str]:
    """One file of each kind that used to crash or hang loading; name -> expected reason."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "latin1.yaml").write_bytes(b"name: caf\xe9\nversion: '1'\n")
    (folder / "binary.yaml").write_bytes(b"\x7fELF\x02\x01\x01\x00" * 64)
    (folder / "huge.yaml").write_text("# padding\n" * 200_000)
    (folder / "dir.yaml").mkdir()
    os.mkfifo(folder / "fifo.yaml")  # opening it for reading would block forever
    (folder / "laughs.yaml").write_text(LAUGHS)
    (folder / "loop.yaml").write_text("name: &x [*x]\n")
    (folder / "deep.yaml").write_text("[" * 100_000 + "]" * 100_000)
    return {
        "latin1.yaml": "not UTF-8 text (byte 0xe9 at offset 9)",
        "binary.yaml": "binary file",
        "huge.yaml": "larger than 1024 KiB",
        "dir.yaml": "not a regular file",
        "fifo.yaml": "not a regular file",
        "laughs.yaml": "expands to more than 100000 YAML nodes",
        "loop.yaml": "recursive alias",
        "deep.yaml": "nested too deeply",
    }


@pytest.mark.timeout(60)
def test_unreadable_and_hostile_files_are_reported_and_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    expected = _make_bad_files(tmp_path)
    write_suite(tmp_path, "fine", FINE_SUITE)
    monkeypatch.setenv("EVAL_SUITE_PATH", str(tmp_path))
    catalog = Catalog.default()
    assert {"fine", "smoke"} <= set(catalog.suites)
    for name, reason in expected.items():
        matching = [e for e in catalog.errors if e.startswith(f"{tmp_path / name}: ")]
        assert len(matching) == 1 and reason in matching[0], (name, catalog.errors)
    with pytest.raises(SpecError, match=r"suite file .*latin1.yaml failed to load: not UTF-8"):
        catalog.suite("latin1")


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


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_hostile_files_leave_every_job_in_the_real_code_location(
    dagster_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The code location loads as the webserver and daemon load it (workspace.yaml, gRPC)."""
    from dagster import DagsterInstance
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    _make_bad_files(tmp_path / "suites")
    _make_bad_files(tmp_path / "models")
    monkeypatch.setenv("EVAL_SUITE_PATH", str(tmp_path / "suites"))
    monkeypatch.setenv("EVAL_MODEL_PATH", str(tmp_path / "models"))
    monkeypatch.chdir(PROJECT_ROOT)
    target = WorkspaceFileTarget(paths=[str(PROJECT_ROOT / "workspace.yaml")])
    with DagsterInstance.get() as instance, WorkspaceProcessContext(instance, target) as workspace:
        context = workspace.create_request_context()
        error = context.get_code_location_error("evals")
        assert error is None, error.to_string()
        repository = context.get_code_location("evals").get_repository("__repository__")
        assert {"evaluate", "refresh_leaderboard"} <= {j.name for j in repository.get_all_jobs()}
