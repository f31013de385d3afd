"""The catalog of suites and models: shipped YAML plus user folders.

Shipped specs live in `eval_pipelines/catalog/`; users add folders with the
`EVAL_SUITE_PATH`, `EVAL_MODEL_PATH` and `EVAL_PROGRAMME_PATH` environment variables
(os.pathsep-separated).
Loading is tolerant by default (a broken file is reported, never fatal) so one bad file
cannot take down the Dagster webserver or daemon; anything that is about to *run* an
evaluation asks for its suite and model strictly.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from eval_pipelines.catalog.programme import ProgrammeSpec
from eval_pipelines.catalog.spec_files import SpecError, SpecFileError, load_yaml_spec
from eval_pipelines.catalog.specs import ModelSpec, SuiteSpec

SHIPPED_DIR = Path(__file__).parent
SUITE_PATH_ENV = "EVAL_SUITE_PATH"
MODEL_PATH_ENV = "EVAL_MODEL_PATH"
PROGRAMME_PATH_ENV = "EVAL_PROGRAMME_PATH"


def _yaml_files(folders: Iterable[Path], variable: str, errors: list[str]) -> list[Path]:
    """The YAML files in `folders`; a folder that is missing or unreadable goes to `errors`."""
    files: list[Path] = []
    for folder in folders:
        if folder.is_file():
            files.append(folder)
            continue
        try:
            files.extend(sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml")))
        except FileNotFoundError:
            errors.append(f"{folder}: folder in {variable} does not exist")
        except OSError as exc:
            errors.append(f"{folder}: folder in {variable} cannot be listed: {exc.strerror}")
    return files


def _env_folders(variable: str) -> list[Path]:
    value = os.environ.get(variable, "")
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p]


@dataclass(frozen=True)
class Catalog:
    """Suites and models found in a set of folders, plus the errors of files that failed."""

    suite_dirs: tuple[Path, ...]
    model_dirs: tuple[Path, ...]
    errors: list[str] = field(default_factory=list, compare=False)
    # The structured side of `errors`: files that failed, by kind; folders that are missing.
    failed: dict[str, list[SpecFileError]] = field(default_factory=dict, compare=False)
    folder_errors: list[str] = field(default_factory=list, compare=False)
    programme_dirs: tuple[Path, ...] = ()

    @classmethod
    def default(cls) -> Catalog:
        return cls(
            suite_dirs=(SHIPPED_DIR / "suites", *_env_folders(SUITE_PATH_ENV)),
            model_dirs=(SHIPPED_DIR / "models", *_env_folders(MODEL_PATH_ENV)),
            programme_dirs=(SHIPPED_DIR / "programmes", *_env_folders(PROGRAMME_PATH_ENV)),
        )

    @cached_property
    def suites(self) -> dict[str, SuiteSpec]:
        return self._load(self.suite_dirs, SuiteSpec, SUITE_PATH_ENV)

    @cached_property
    def models(self) -> dict[str, ModelSpec]:
        return self._load(self.model_dirs, ModelSpec, MODEL_PATH_ENV)

    @cached_property
    def programmes(self) -> dict:
        """Benchmark programmes whose suites and models exist."""
        found = self._load(self.programme_dirs, ProgrammeSpec, PROGRAMME_PATH_ENV)
        for name, programme in list(found.items()):
            if reasons := programme.unknown_references(set(self.suites), set(self.models)):
                error = SpecFileError(programme.source_file, "; ".join(reasons), name)
                self.errors.append(str(error))
                self.failed.setdefault("programme", []).append(error)
                del found[name]
        return found

    def _load(self, dirs, spec_type, variable: str) -> dict:
        kind = {SuiteSpec: "suite", ModelSpec: "model"}.get(spec_type, "programme")
        found: dict[str, object] = {}
        origin: dict[str, Path] = {}
        bad_folders: list[str] = []
        files = _yaml_files(dirs, variable, bad_folders)
        self.folder_errors.extend(bad_folders)
        self.errors.extend(bad_folders)
        for path in files:
            try:
                sources = {"source_dir": path.parent.resolve(), "source_file": path}
                extra = {k: v for k, v in sources.items() if k in spec_type.model_fields}
                spec = load_yaml_spec(path, spec_type, **extra)
            except SpecFileError as exc:
                self.errors.append(str(exc))
                self.failed.setdefault(kind, []).append(exc)
                continue
            key = spec.id if spec_type is ModelSpec else spec.name
            if key in found:
                self.errors.append(f"{path}: {kind} {key!r} is already defined in {origin[key]}")
                continue
            found[key], origin[key] = spec, path
        return found

    def problems(self) -> list[str]:
        """Every file that failed to load and folder that is missing (loads every kind)."""
        self.suites, self.models, self.programmes  # noqa: B018 (loading fills self.errors)
        return list(self.errors)

    def bad_folders(self) -> list[str]:
        """Catalog folders that are missing or unreadable (loads suites and models)."""
        self.problems()
        return list(self.folder_errors)

    def suite(self, name: str) -> SuiteSpec:
        """The suite called `name`, or a `SpecError` naming its broken file or the known ones."""
        return self._get(self.suites, name, "suite")

    def model(self, model_id: str) -> ModelSpec:
        return self._get(self.models, model_id, "model")

    def _get(self, specs: dict, key: str, kind: str):
        """`specs[key]`, or a `SpecError` saying which file failed or which keys exist."""
        if key in specs:
            return specs[key]
        broken = [f for f in self.failed.get(kind, []) if key in (f.declared, f.path.stem)]
        if broken:
            raise SpecError(
                "\n".join(f"{kind} file {f.path} failed to load: {f.reason}" for f in broken)
            )
        message = f"unknown {kind} {key!r}; known {kind}s: {', '.join(sorted(specs)) or 'none'}"
        if key.lower() in specs:
            message += f" (ids are lowercase: did you mean {key.lower()!r}?)"
        raise SpecError(message)
