"""The analytics bucket (S3): the scoring job's per-shard work files and the daily
snapshot export, the campaign manifests. Nothing else in Kizuna talks to S3."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from kizuna.adapters.retry import retrying


class S3Objects:
    """Whole objects by key: a put (the same body again) and a get are idempotent, so each
    is retried in place after a transient failure (:mod:`kizuna.adapters.retry`)."""

    def __init__(self, s3: Any, bucket: str, server_side_encryption: str | None = "AES256") -> None:
        """``server_side_encryption`` None: no header, the bucket's default encryption applies
        (a bucket with its own KMS key: an explicit ``aws:kms`` without the key's id would
        use the AWS managed key instead)."""
        self._s3 = s3
        self.bucket = bucket
        self._encryption: dict[str, Any] = (
            {}
            if server_side_encryption is None
            else {"ServerSideEncryption": server_side_encryption}
        )

    def put(self, key: str, body: bytes, content_type: str = "application/json") -> None:
        retrying(
            self._s3.put_object,
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
            **self._encryption,
        )

    def get(self, key: str) -> bytes | None:
        return retrying(self._get, key)

    def _get(self, key: str) -> bytes | None:
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

    # campaign manifests: JSON Lines, one object per line -----------------------------------
    def put_lines(self, key: str, lines: Sequence[Mapping[str, Any]]) -> None:
        body = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
        self.put(key, body.encode(), content_type="application/x-ndjson")

    def get_lines(self, key: str) -> list[dict[str, Any]]:
        """The object's lines; none when it does not exist."""
        body = self.get(key)
        if body is None:
            return []
        return [json.loads(line) for line in body.decode().splitlines() if line.strip()]
