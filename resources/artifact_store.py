"""Artifact stores: where eval logs and result snapshots live, immutably.

Keys embed the content's SHA-256, and a store refuses to replace an existing key with
different bytes, so a re-run adds a version and never overwrites an earlier one.
"""

import hashlib
import os
from abc import ABC, abstractmethod
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field


class ArtifactConflictError(RuntimeError):
    """An artifact key already holds different content; artifacts are immutable."""


def content_key(prefix: str, data: bytes, suffix: str) -> str:
    """`prefix/<sha256[:16]><suffix>`: the same bytes always get the same key."""
    return f"{prefix.strip('/')}/{hashlib.sha256(data).hexdigest()[:16]}{suffix}"


class ArtifactStore(ConfigurableResource, ABC):
    """Write-once blob storage addressed by URI."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> str:
        """Store `data` at `key` (idempotent for identical bytes) and return its URI."""

    @abstractmethod
    def get(self, uri: str) -> bytes: ...

    @abstractmethod
    def local_path(self, uri: str) -> str:
        """A path or URL Inspect's `read_eval_log` can open directly."""


class LocalArtifactStore(ArtifactStore):
    """Artifacts in a local folder: the embedded default."""

    root: str = Field(description="Folder holding the artifacts.")

    def _path(self, key: str) -> Path:
        root = Path(self.root).resolve()
        path = (root / key).resolve()
        if root not in path.parents:
            raise ValueError(f"artifact key {key!r} escapes the store root {root}")
        return path

    def put(self, key: str, data: bytes) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        except FileExistsError:
            if path.read_bytes() != data:
                raise ArtifactConflictError(f"{path} exists with different content") from None
            return f"file://{path}"
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return f"file://{path}"

    def get(self, uri: str) -> bytes:
        return Path(self.local_path(uri)).read_bytes()

    def local_path(self, uri: str) -> str:
        return uri.removeprefix("file://")
