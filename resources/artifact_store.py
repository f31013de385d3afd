"""Artifact stores: where eval logs and result snapshots live, immutably.

Keys embed the content's SHA-256 (`content_key`), and a store refuses to replace an
existing key with different bytes, so a re-run adds a version and never overwrites an
earlier one. A write is all or nothing: either the final key holds exactly the bytes whose
digest it names, or it does not exist. Reads check the digest too, so a damaged artifact is
refused rather than served.
"""

import hashlib
import os
import re
import secrets
from abc import ABC, abstractmethod
from pathlib import Path, PurePosixPath

from dagster import ConfigurableResource
from pydantic import Field

_KEY_DIGEST = re.compile(r"^([0-9a-f]{16})")


class ArtifactConflictError(RuntimeError):
    """An artifact key already holds different content; artifacts are immutable."""


class ArtifactIntegrityError(RuntimeError):
    """An artifact's bytes do not have the digest its key names."""


class ArtifactWriteError(RuntimeError):
    """Writing an artifact failed (disk full, permissions...); nothing was stored."""


def content_key(prefix: str, data: bytes, suffix: str) -> str:
    """`prefix/<sha256[:16]><suffix>`: the same bytes always get the same key."""
    return f"{prefix.strip('/')}/{hashlib.sha256(data).hexdigest()[:16]}{suffix}"


def check_content(key: str, data: bytes) -> str:
    """The full SHA-256 of `data`, after checking `key` names it (see `content_key`)."""
    match = _KEY_DIGEST.match(PurePosixPath(key).name)
    if not match:
        raise ValueError(f"artifact key {key!r} does not start its name with sha256[:16]")
    digest = hashlib.sha256(data).hexdigest()
    if not digest.startswith(match.group(1)):
        raise ArtifactIntegrityError(
            f"artifact {key}: content has sha256 {digest[:16]}..., not the {match.group(1)} its key names"
        )
    return digest


class ArtifactStore(ConfigurableResource, ABC):
    """Write-once, content-addressed blob storage addressed by URI."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> str:
        """Store `data` at `key` (idempotent for identical bytes) and return its URI.

        `key` must come from `content_key(..., data, ...)`. Raises `ArtifactWriteError` (nothing
        stored), `ArtifactConflictError` or `ArtifactIntegrityError`.
        """

    def store(self, prefix: str, data: bytes, suffix: str) -> str:
        """Store `data` under `prefix/`, named by its content (`content_key`): its URI."""
        return self.put(content_key(prefix, data, suffix), data)

    def get(self, uri: str) -> bytes:
        """The artifact's bytes, refused if they are not the ones its key names."""
        data = self._read(uri)
        check_content(uri, data)
        return data

    @abstractmethod
    def _read(self, uri: str) -> bytes: ...

    @abstractmethod
    def local_path(self, uri: str) -> str:
        """A path or URL Inspect's `read_eval_log` can open directly."""


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalArtifactStore(ArtifactStore):
    """Artifacts in a local folder: the embedded default.

    A put writes a hidden temporary file next to the final name, fsyncs it, reads it back
    and checks its full SHA-256, then hard-links it to the final name (`link` never replaces
    an existing file, so concurrent writers of one key cannot clobber each other) and removes
    the temporary name. A failure at any point leaves neither name behind.
    """

    root: str = Field(description="Folder holding the artifacts.")

    def _path(self, key: str) -> Path:
        root = Path(self.root).resolve()
        path = (root / key).resolve()
        if root not in path.parents:
            raise ValueError(f"artifact key {key!r} escapes the store root {root}")
        return path

    def put(self, key: str, data: bytes) -> str:
        path = self._path(key)
        digest = check_content(key, data)
        if path.exists():
            return self._existing(path, data)
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(temp, "xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            written = hashlib.sha256(temp.read_bytes()).hexdigest()
            if written != digest:
                raise ArtifactIntegrityError(
                    f"artifact {key}: wrote sha256 {written}, expected {digest}"
                )
            temp.chmod(0o444)
            try:
                os.link(temp, path)
            except FileExistsError:
                return self._existing(path, data)  # a concurrent writer got there first
            _fsync_dir(path.parent)
        except OSError as exc:
            raise ArtifactWriteError(f"could not write artifact {key} to {path}: {exc}") from exc
        finally:
            temp.unlink(missing_ok=True)
        return f"file://{path}"

    def _existing(self, path: Path, data: bytes) -> str:
        if path.read_bytes() != data:
            raise ArtifactConflictError(f"{path} exists with different content")
        return f"file://{path}"

    def _read(self, uri: str) -> bytes:
        return Path(self.local_path(uri)).read_bytes()

    def local_path(self, uri: str) -> str:
        return uri.removeprefix("file://")
