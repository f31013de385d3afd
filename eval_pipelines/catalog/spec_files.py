"""Spec files: YAML read safely into frozen pydantic specs, errors that name file and field.

Every catalog file (suites, models, programmes, safety policies) loads through here; a bad
file is refused with its path, the reason and the field, and never takes a process down.
"""

from __future__ import annotations

import os
import stat
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from eval_pipelines.core.text import validation_problems

SpecT = TypeVar("SpecT", bound=BaseModel)


class SpecError(ValueError):
    """A spec file or value is invalid; the message names the source and the field."""


class Spec(BaseModel):
    """Base of every spec: unknown keys are refused, values never change once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _format_validation_error(error: ValidationError) -> str:
    return "\n".join([f"invalid {error.title}:", *(f"  - {p}" for p in validation_problems(error))])


# Spec files are a few KiB; anything this big is a mistake (or an attack), not a spec.
MAX_SPEC_BYTES = 1024 * 1024
# YAML nodes after expanding aliases: far above any real suite, far below a "billion laughs".
MAX_SPEC_NODES = 100_000


class SpecFileError(SpecError):
    """A spec file that could not be loaded: its path, why, and the name it declares (if any)."""

    def __init__(self, path: Path, reason: str, declared: str | None = None):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason, self.declared = path, reason, declared


def _read_spec_text(path: Path) -> str:
    """The file's text, refusing what is not a small UTF-8 text file (never blocks on a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise SpecFileError(path, "not a regular file")
        with open(fd, "rb") as stream:
            data = stream.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise SpecFileError(path, f"cannot read: {exc.strerror or exc}") from exc
    if len(data) > MAX_SPEC_BYTES:
        raise SpecFileError(
            path, f"larger than {MAX_SPEC_BYTES // 1024} KiB, the limit for a spec file"
        )
    if b"\0" in data:
        raise SpecFileError(path, "binary file (contains NUL bytes), not YAML")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecFileError(
            path, f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from exc


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Nodes in `node` once aliases are expanded (memoized, so linear in the file)."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_nodes:
        raise yaml.YAMLError(f"recursive alias at line {node.start_mark.line + 1}")
    open_nodes.add(id(node))
    children: list[yaml.Node] = []
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    size = 1
    for child in children:
        size += _expanded_size(child, sizes, open_nodes)
        if size > MAX_SPEC_NODES:
            break
    open_nodes.discard(id(node))
    sizes[id(node)] = size
    return size


def _parse_yaml(path: Path, text: str) -> Any:
    """`yaml.safe_load`, refusing alias bombs and recursion before building any object."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}, set()) > MAX_SPEC_NODES:
            raise SpecFileError(
                path, f"expands to more than {MAX_SPEC_NODES} YAML nodes (alias bomb?)"
            )
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise SpecFileError(path, f"not valid YAML: {exc}") from exc
    except RecursionError as exc:
        raise SpecFileError(path, "not valid YAML: nested too deeply") from exc
    finally:
        loader.dispose()


def load_yaml_spec(path: Path, spec_type: type[SpecT], **extra: Any) -> SpecT:
    """Load one YAML file into `spec_type`, raising `SpecFileError` that names file and field."""
    return _spec_from_text(path, _read_spec_text(path), spec_type, tuple(extra.items()))


# Sensors and schedules read the whole catalog every tick: 1,000 model files took 0.4 s to
# parse and validate here (over 2 s on a busy machine), 0.06 s with this cache. Specs are
# frozen, so one parse per file content is shared; a failing file raises again each time.
@lru_cache(maxsize=4096)
def _spec_from_text(path: Path, text: str, spec_type: type[SpecT], extra: tuple) -> SpecT:
    data = _parse_yaml(path, text)
    if not isinstance(data, dict):
        raise SpecFileError(path, f"expected a mapping at the top level, got {type(data).__name__}")
    declared = next((v for k in ("name", "id") if isinstance(v := data.get(k), str)), None)
    try:
        return spec_type.model_validate({**data, **dict(extra)})
    except ValidationError as exc:
        raise SpecFileError(path, _format_validation_error(exc), declared) from exc
