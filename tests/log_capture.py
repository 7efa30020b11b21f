"""Kizuna's structured log lines, as CloudWatch would get them: a handler with the Logger's
own JSON formatter on the logger underneath it (its stdout handler may be bound to a stream
an earlier test captured)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from kizuna.runtime.observability import logger as kizuna_logger


class KizunaLogs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def records(self, message: str) -> list[dict[str, Any]]:
        """The JSON lines whose message is ``message``."""
        found = [json.loads(line) for line in self.lines]
        return [r for r in found if r.get("message") == message]


@pytest.fixture
def kizuna_logs() -> Iterator[KizunaLogs]:
    handler = KizunaLogs()
    handler.setFormatter(kizuna_logger.registered_formatter)
    underlying = logging.getLogger(kizuna_logger.name)
    level = underlying.level
    underlying.addHandler(handler)
    underlying.setLevel(logging.DEBUG)
    yield handler
    underlying.removeHandler(handler)
    underlying.setLevel(level)
