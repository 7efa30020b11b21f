"""Count AWS API calls (the unit of cost) with a botocore event hook."""

from __future__ import annotations

from collections import Counter
from typing import Any


class ApiCallCounter:
    """Counts ``(service, operation)`` for every call made by clients of a boto3 session."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()

    def attach(self, events: Any) -> ApiCallCounter:
        """Register on an event emitter (``session.events`` or ``client.meta.events``)."""
        events.register("before-call.*.*", self._count)
        return self

    def _count(self, event_name: str, **kwargs: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        self.calls[(service, operation)] += 1

    def total(self, service: str | None = None) -> int:
        return sum(n for (svc, _), n in self.calls.items() if service in (None, svc))

    def reset(self) -> None:
        self.calls.clear()
