"""Timestamps as Kizuna stores them: UTC, ISO 8601, fixed width so strings sort by time."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stamp(at: datetime, content: object, rank: str = "") -> str:
    """A last-writer-wins version: the later time wins; at the same time, a digest of the
    content breaks the tie. The same fact sent twice (even under two event ids) has the same
    stamp, so it changes nothing and costs no write. ``rank`` decides ties before the
    digest (an opt-out beats an opt-in given at the same instant)."""
    digest = hashlib.sha256(repr(content).encode()).hexdigest()[:16]
    return f"{iso(at)}|{rank}{digest}"


def epoch_seconds(at: datetime) -> int:
    return int(at.timestamp())
