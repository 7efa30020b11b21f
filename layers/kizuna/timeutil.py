"""Timestamps as Kizuna stores them: UTC, ISO 8601, fixed width so strings sort by time."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stamp(at: datetime, event_id: str) -> str:
    """A last-writer-wins version: later time wins, the event id breaks ties."""
    return f"{iso(at)}|{event_id}"


def epoch_seconds(at: datetime) -> int:
    return int(at.timestamp())
