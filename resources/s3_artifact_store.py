"""Artifacts in S3 (any S3 API): the scale-out deployment's store.

Kept apart from the local store so the local deployment never imports the AWS stack.
"""

from dagster_aws.s3 import S3Resource
from pydantic import PrivateAttr

from resources.artifact_store import ArtifactConflictError, ArtifactStore


class S3ArtifactStore(ArtifactStore):
    """Artifacts in an S3 bucket (versioning recommended); works with any S3 API."""

    s3: S3Resource
    bucket: str
    prefix: str = "evals"
    _client: object = PrivateAttr(default=None)

    def _s3(self):
        if self._client is None:
            self._client = self.s3.get_client()
        return self._client

    def put(self, key: str, data: bytes) -> str:
        full_key = f"{self.prefix.strip('/')}/{key}"
        client = self._s3()
        try:
            existing = client.get_object(Bucket=self.bucket, Key=full_key)["Body"].read()
        except client.exceptions.NoSuchKey:
            client.put_object(Bucket=self.bucket, Key=full_key, Body=data)
        else:
            if existing != data:
                raise ArtifactConflictError(
                    f"s3://{self.bucket}/{full_key} exists with different content"
                )
        return f"s3://{self.bucket}/{full_key}"

    def _split(self, uri: str) -> tuple[str, str]:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return bucket, key

    def get(self, uri: str) -> bytes:
        bucket, key = self._split(uri)
        return self._s3().get_object(Bucket=bucket, Key=key)["Body"].read()

    def local_path(self, uri: str) -> str:
        return uri
