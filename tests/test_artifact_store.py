"""Artifact stores are write-once and all or nothing, locally and on a real S3 API."""

import os
import threading
from pathlib import Path

import boto3
import pytest
from dagster_aws.s3 import S3Resource

from resources.artifact_store import (
    ArtifactConflictError,
    ArtifactIntegrityError,
    ArtifactWriteError,
    LocalArtifactStore,
    content_key,
)
from resources.s3_artifact_store import S3ArtifactStore
from tests.services import small_tmpfs

FIRST_KEY = content_key("logs", b"first", ".eval")


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def small_disk(tmp_path: Path):
    with small_tmpfs(tmp_path / "small-disk") as mount_point:
        yield mount_point


def test_content_key_depends_only_on_content():
    assert content_key("a/b", b"x", ".eval") == content_key("a/b/", b"x", ".eval")
    assert content_key("a/b", b"x", ".eval") != content_key("a/b", b"y", ".eval")


def test_store_names_an_artifact_by_its_content(tmp_path: Path):
    store = LocalArtifactStore(root=str(tmp_path))
    uri = store.store("logs", b"first", ".eval")
    assert uri.endswith(FIRST_KEY) and store.get(uri) == b"first"
    assert store.store("logs", b"second", ".eval") != uri


def test_local_store_is_write_once(tmp_path: Path):
    store = LocalArtifactStore(root=str(tmp_path))
    uri = store.put(FIRST_KEY, b"first")
    assert store.put(FIRST_KEY, b"first") == uri  # same bytes: idempotent
    Path(store.local_path(uri)).chmod(0o644)
    Path(store.local_path(uri)).write_bytes(b"damaged")
    with pytest.raises(ArtifactConflictError):
        store.put(FIRST_KEY, b"first")


def test_local_store_refuses_keys_outside_its_root(tmp_path: Path):
    store = LocalArtifactStore(root=str(tmp_path / "store"))
    with pytest.raises(ValueError, match="escapes the store root"):
        store.put(content_key("..", b"x", ".txt"), b"x")


def test_a_key_must_name_its_content(tmp_path: Path):
    store = LocalArtifactStore(root=str(tmp_path))
    with pytest.raises(ValueError, match="sha256"):
        store.put("logs/one.eval", b"first")
    with pytest.raises(ArtifactIntegrityError, match="not the"):
        store.put(content_key("logs", b"other", ".eval"), b"first")
    assert files_under(tmp_path) == []


def test_local_store_refuses_to_serve_a_damaged_artifact(tmp_path: Path):
    store = LocalArtifactStore(root=str(tmp_path))
    path = Path(store.local_path(store.put(FIRST_KEY, b"first")))
    path.chmod(0o644)
    path.write_bytes(b"first, truncat")
    with pytest.raises(ArtifactIntegrityError, match=path.name[:16]):
        store.get(f"file://{path}")


def test_concurrent_writers_of_one_key_all_succeed_with_one_file(tmp_path: Path):
    store = LocalArtifactStore(root=str(tmp_path))
    data = os.urandom(4 << 20)
    key = content_key("logs", data, ".eval")
    uris, errors = [], []

    def write():
        try:
            uris.append(store.put(key, data))
        except Exception as exc:  # noqa: BLE001 (collected, asserted below)
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(set(uris)) == 1
    assert [p.name for p in files_under(tmp_path)] == [Path(key).name]
    assert store.get(uris[0]) == data


def test_disk_full_leaves_nothing_under_the_final_name(small_disk: Path):
    store = LocalArtifactStore(root=str(small_disk))
    data = os.urandom(256 << 10)  # four times the disk
    key = content_key("eval-logs/model=weak/suite=smoke/task=t/run", data, ".eval")
    with pytest.raises(ArtifactWriteError) as failure:
        store.put(key, data)
    assert key in str(failure.value) and "No space left on device" in str(failure.value)
    assert files_under(small_disk) == []  # neither the final nor a temporary name
    small = b"fits"
    assert store.get(store.put(content_key("eval-logs", small, ".eval"), small)) == small


def _s3_store(endpoint: str) -> S3ArtifactStore:
    return S3ArtifactStore(s3=S3Resource(endpoint_url=endpoint), bucket="evals", prefix="p")


def _versions(endpoint: str) -> list[dict]:
    listing = boto3.client("s3", endpoint_url=endpoint).list_object_versions(Bucket="evals")
    return listing.get("Versions", [])


def test_s3_store_is_write_once_on_a_real_s3_api(s3_endpoint: str):
    store = _s3_store(s3_endpoint)
    uri = store.put(FIRST_KEY, b"first")
    assert uri == f"s3://evals/p/{FIRST_KEY}"
    assert store.put(FIRST_KEY, b"first") == uri
    boto3.client("s3", endpoint_url=s3_endpoint).put_object(
        Bucket="evals", Key=f"p/{FIRST_KEY}", Body=b"damaged"
    )
    with pytest.raises(ArtifactConflictError):
        store.put(FIRST_KEY, b"first")
    with pytest.raises(ArtifactIntegrityError):
        store.get(uri)  # the newest version is not what the key names
    assert len(_versions(s3_endpoint)) == 2  # ours was never replaced, only shadowed by hand


def test_s3_store_refuses_an_upload_damaged_in_transit(s3_endpoint: str):
    store = _s3_store(s3_endpoint)

    def damage(request, **_):
        body = request.body.read() if hasattr(request.body, "read") else request.body
        request.body = b"X" + body[1:]

    store._s3().meta.events.register("before-send.s3.PutObject", damage)
    with pytest.raises(ArtifactIntegrityError, match="another sha256"):
        store.put(FIRST_KEY, b"first")
    assert _versions(s3_endpoint) == []  # nothing left under the key
