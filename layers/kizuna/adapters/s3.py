"""The analytics bucket (S3): the scoring job's per-shard work files and the daily
snapshot export. Nothing else in Kizuna talks to S3."""

from __future__ import annotations

from typing import Any


class S3Objects:
    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self.bucket = bucket

    def put(self, key: str, body: bytes, content_type: str = "application/json") -> None:
        self._s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
            ServerSideEncryption="AES256",
        )

    def get(self, key: str) -> bytes | None:
        try:
            resp = self._s3.get_object(Bucket=self.bucket, Key=key)
        except self._s3.exceptions.NoSuchKey:
            return None
        body: bytes = resp["Body"].read()
        return body

    def keys(self, prefix: str) -> list[str]:
        out: list[str] = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            out += [str(o["Key"]) for o in page.get("Contents", [])]
        return sorted(out)
