"""The analytics bucket (S3): the scoring job's per-shard work files and the daily
snapshot export, the campaign manifests (tagged; deleted when their occurrence completes).
Nothing else in Kizuna talks to S3."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from botocore.exceptions import BotoCoreError, ClientError

from kizuna.adapters.retry import ATTEMPTS, RETRYABLE_CODES, retrying
from kizuna.ports import ManifestNotDeleted
from kizuna.runtime.settings import CAMPAIGN_MANIFEST_TAG_KEY, CAMPAIGN_MANIFEST_TAG_VALUE

DELETE_BATCH = 1000  # keys per DeleteObjects call (S3's maximum)


def _failure(err: Exception) -> str:
    """A failed call, as a short code: ``ListObjectsV2: AccessDenied``, ``ReadTimeoutError``."""
    if isinstance(err, ClientError):
        return f"{err.operation_name}: {err.response.get('Error', {}).get('Code')}"
    return type(err).__name__


class S3Objects:
    """Whole objects by key: a put (the same body again) and a get are idempotent, so each
    is retried in place after a transient failure (:mod:`kizuna.adapters.retry`)."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        server_side_encryption: str | None = "AES256",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``server_side_encryption`` None: no header, the bucket's default encryption applies
        (a bucket with its own KMS key: an explicit ``aws:kms`` without the key's id would
        use the AWS managed key instead)."""
        self._s3 = s3
        self.bucket = bucket
        self._sleep = sleep
        self._encryption: dict[str, Any] = (
            {}
            if server_side_encryption is None
            else {"ServerSideEncryption": server_side_encryption}
        )

    def put(
        self,
        key: str,
        body: bytes,
        content_type: str = "application/json",
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """``tags``: the object's tags, set with the put (the caller needs
        ``s3:PutObjectTagging`` as well as ``s3:PutObject``)."""
        tagging: dict[str, Any] = {"Tagging": urlencode(dict(tags))} if tags else {}
        retrying(
            self._s3.put_object,
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
            **self._encryption,
            **tagging,
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

    def delete_prefix(self, prefix: str, attempts: int = ATTEMPTS) -> int:
        """Deletes every object under ``prefix``, a thousand a call; how many there were.
        Idempotent (a retry finds fewer, or none). Keys DeleteObjects reports as failed with
        a transient code (``InternalError``, ``SlowDown``: inside a 200 answer) are tried
        again; any left after ``attempts``, or refused (``AccessDenied``), raise."""
        if not prefix.endswith("/"):
            raise ValueError(f"not a folder prefix: {prefix!r}")
        try:
            keys = retrying(self.keys, prefix, sleep=self._sleep)
        except (ClientError, BotoCoreError) as err:
            raise ManifestNotDeleted(_failure(err)) from err
        left: list[dict[str, Any]] = []
        for start in range(0, len(keys), DELETE_BATCH):  # a failed batch stops no other
            batch = keys[start : start + DELETE_BATCH]
            try:
                left += self._delete_batch(batch, attempts)
            except (ClientError, BotoCoreError) as err:
                left += [{"Key": k, "Code": _failure(err)} for k in batch]
        if left:
            codes = sorted({str(e.get("Code")) for e in left})
            raise ManifestNotDeleted(f"{len(left)} of {len(keys)} objects not deleted: {codes}")
        return len(keys)

    def _delete_batch(self, batch: list[str], attempts: int) -> list[dict[str, Any]]:
        """The batch's keys S3 would not delete: refused at once, or still failing with a
        transient code after ``attempts``."""
        for attempt in range(1, attempts + 1):
            errors = retrying(self._delete, batch, sleep=self._sleep)
            codes = {str(e.get("Code")) for e in errors}
            if not errors or attempt == attempts or not codes <= RETRYABLE_CODES:
                return errors
            batch = [str(e["Key"]) for e in errors]
            self._sleep(min(0.1 * 2**attempt, 2.0))
        return []  # pragma: no cover (attempts >= 1)

    def _delete(self, keys: Sequence[str]) -> list[dict[str, Any]]:
        """The keys DeleteObjects could not delete (a key that does not exist is deleted)."""
        resp = self._s3.delete_objects(
            Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
        )
        return list(resp.get("Errors") or [])

    # campaign manifests: JSON Lines, one object per line -----------------------------------
    def put_lines(self, key: str, lines: Sequence[Mapping[str, Any]]) -> None:
        """A manifest object, tagged for the bucket's lifecycle rule (expired after the
        longest an occurrence runs, if Complete never deleted it)."""
        body = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
        self.put(
            key,
            body.encode(),
            content_type="application/x-ndjson",
            tags={CAMPAIGN_MANIFEST_TAG_KEY: CAMPAIGN_MANIFEST_TAG_VALUE},
        )

    def get_lines(self, key: str) -> list[dict[str, Any]] | None:
        """The object's lines; None when it does not exist."""
        body = self.get(key)
        if body is None:
            return None
        return [json.loads(line) for line in body.decode().splitlines() if line.strip()]
