"""Inbound events: bus rule -> SQS (with DLQ) -> ingest function.

The rule takes *every* event not from Kizuna itself, whatever its detail-type: ingest knows
the inbound types, so an unknown one (``bogus.type``, ``Order.Placed``) is dead-lettered with
its reason instead of matching no rule and vanishing. The handler reports partial batch
failures; after ``max_receive_count`` receives SQS moves a record to the dead-letter queue,
and the handler (which knows the validation error) may also send it there itself with the
reason, so nothing is dropped silently.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from constructs import Construct

from kizuna.runtime.settings import (
    KIZUNA_EVENT_SOURCE,
)
from kizuna_infra import names
from kizuna_infra.functions import (
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT,
    Wiring,
)
from kizuna_infra.queues import DEFAULT_MAX_RECEIVE_COUNT, QueuedFunction


class Ingest(QueuedFunction):
    """Validates inbound events and updates customer state."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        wiring: Wiring,
        timeout: Duration = DEFAULT_TIMEOUT,
        memory_size: int = DEFAULT_MEMORY_MB,
        max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            folder=names.INGEST_FUNCTION_NAME,
            description="Kizuna ingest: validate inbound events, update customer state",
            environment=wiring.environment(),
            timeout=timeout,
            memory_size=memory_size,
            max_receive_count=max_receive_count,
            **wiring.shared,
        )
        self.rule = self.add_rule(
            names.INGEST_RULE_ID,
            bus=wiring.bus,
            description="Every event from producers (not Kizuna's own) to the ingest queue",
            event_pattern=events.EventPattern(
                source=events.Match.anything_but(KIZUNA_EVENT_SOURCE),
            ),
        )
        for table in (wiring.tables.customers, wiring.tables.activity):
            table.grant_read_write_data(self.function)
        wiring.bus.grant_put_events_to(self.function)
