"""Artifact stores are write-once, locally and on a real S3 API."""

from pathlib import Path

import boto3
import pytest
from dagster_aws.s3 import S3Resource

from resources.artifact_store import (
    ArtifactConflictError,
    LocalArtifactStore,
    content_key,
)
from resources.s3_artifact_store import S3ArtifactStore


def test_content_key_depends_only_on_content():
    assert content_key("a/b", b"x", ".eval") == content_key("a/b/", b"x", ".eval")
    assert content_key("a/b", b"x", ".eval") != content_key("a/b", b"y", ".eval")


def test_local_store_is_write_once(tmp_path: Path):
    store = LocalArtifactStore(root=str(tmp_path))
    uri = store.put("logs/one.eval", b"first")
    assert store.put("logs/one.eval", b"first") == uri  # same bytes: idempotent
    with pytest.raises(ArtifactConflictError):
        store.put("logs/one.eval", b"second")
    assert store.get(uri) == b"first"


def test_local_store_refuses_keys_outside_its_root(tmp_path: Path):
    store = LocalArtifactStore(root=str(tmp_path / "store"))
    with pytest.raises(ValueError, match="escapes the store root"):
        store.put("../outside.txt", b"x")


def test_s3_store_is_write_once_on_a_real_s3_api(s3_endpoint: str):
    store = S3ArtifactStore(s3=S3Resource(endpoint_url=s3_endpoint), bucket="evals", prefix="p")
    uri = store.put("logs/one.eval", b"first")
    assert uri == "s3://evals/p/logs/one.eval"
    assert store.put("logs/one.eval", b"first") == uri
    with pytest.raises(ArtifactConflictError):
        store.put("logs/one.eval", b"second")
    assert store.get(uri) == b"first"
    versions = boto3.client("s3", endpoint_url=s3_endpoint).list_object_versions(Bucket="evals")[
        "Versions"
    ]
    assert len(versions) == 1
