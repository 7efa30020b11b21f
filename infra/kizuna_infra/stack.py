"""``KizunaStack``: deploys the ``Kizuna`` construct on its own, with its outputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from constructs import Construct

from kizuna_infra import names
from kizuna_infra.kizuna import Kizuna


class KizunaStack(Stack):
    """Wires ``Kizuna`` and exports what producers and operators need."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str = names.STACK_ID,
        *,
        config: Mapping[str, Any] | None = None,
        bus_name: str | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        if config is None:
            config = self.node.try_get_context(names.CONTEXT_CONFIG_KEY) or {}
        if bus_name is None:
            bus_name = self.node.try_get_context(names.CONTEXT_BUS_NAME_KEY) or (
                names.DEFAULT_BUS_NAME
            )

        self.kizuna = Kizuna(
            self,
            names.KIZUNA_CONSTRUCT_ID,
            bus_name=bus_name,
            config=config,
            removal_policy=removal_policy,
        )

        k = self.kizuna
        for output_id, value, description in (
            (names.OUTPUT_BUS_NAME, k.bus.bus_name, "EventBridge bus producers put events on"),
            (names.OUTPUT_BUS_ARN, k.bus.bus_arn, "ARN of the Kizuna event bus"),
            (names.OUTPUT_CUSTOMERS_TABLE, k.tables.customers.table_name, "Customers table"),
            (names.OUTPUT_ACTIVITY_TABLE, k.tables.activity.table_name, "Activity table"),
            (names.OUTPUT_IDEMPOTENCY_TABLE, k.tables.idempotency.table_name, "Idempotency"),
            (
                names.OUTPUT_INGEST_DLQ_URL,
                k.ingest.dead_letter_queue.queue_url,
                "Dead-letter queue of inbound events",
            ),
        ):
            CfnOutput(self, output_id, value=value, description=description)
