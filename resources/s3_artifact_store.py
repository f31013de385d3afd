"""Artifacts in S3 (any S3 API): the scale-out deployment's store.

Kept apart from the local store so the local deployment never imports the AWS stack.
"""

import base64
import hashlib

from botocore.exceptions import ClientError
from dagster_aws.s3 import S3Resource
from pydantic import PrivateAttr

from resources.artifact_store import (
    ArtifactConflictError,
    ArtifactIntegrityError,
    ArtifactStore,
    ArtifactWriteError,
    check_content,
)

# S3 answers a conditional put on an existing key with one of these.
_KEY_EXISTS = {"PreconditionFailed", "ConditionalRequestConflict"}


class S3ArtifactStore(ArtifactStore):
    """Artifacts in an S3 bucket (versioning recommended); works with any S3 API.

    A put is one PutObject, which S3 makes visible whole or not at all. It carries the
    SHA-256 of our bytes (`ChecksumSHA256`), so S3 refuses an upload damaged on the way,
    and `If-None-Match: *`, so a concurrent writer can never replace an existing key. The
    object is then read back and checked, for S3 APIs that do not verify checksums (moto,
    some gateways); a mismatching version is deleted before the error is raised.
    """

    s3: S3Resource
    bucket: str
    prefix: str = "evals"
    _client: object = PrivateAttr(default=None)

    def _s3(self):
        if self._client is None:
            self._client = self.s3.get_client()
        return self._client

    def put(self, key: str, data: bytes) -> str:
        digest = check_content(key, data)
        full_key = f"{self.prefix.strip('/')}/{key}"
        uri = f"s3://{self.bucket}/{full_key}"
        client = self._s3()
        try:
            response = client.put_object(
                Bucket=self.bucket,
                Key=full_key,
                Body=data,
                ChecksumSHA256=base64.b64encode(bytes.fromhex(digest)).decode(),
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in _KEY_EXISTS:
                raise ArtifactWriteError(f"could not write artifact {uri}: {exc}") from exc
            if self._read(uri) != data:
                raise ArtifactConflictError(f"{uri} exists with different content") from None
            return uri
        version = response.get("VersionId")
        stored = self._read(uri, version)
        if hashlib.sha256(stored).hexdigest() != digest:
            extra = {"VersionId": version} if version else {}
            client.delete_object(Bucket=self.bucket, Key=full_key, **extra)
            raise ArtifactIntegrityError(
                f"artifact {uri}: S3 stored bytes with another sha256 than sent; deleted"
            )
        return uri

    def _split(self, uri: str) -> tuple[str, str]:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return bucket, key

    def _read(self, uri: str, version: str | None = None) -> bytes:
        bucket, key = self._split(uri)
        extra = {"VersionId": version} if version else {}
        return self._s3().get_object(Bucket=bucket, Key=key, **extra)["Body"].read()

    def local_path(self, uri: str) -> str:
        return uri
