"""The EventBridge bus every producer and every Kizuna component talks through."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from constructs import Construct

from kizuna_infra import names


class EventBus(Construct):
    """A named custom bus plus an archive of all its events, kept for replay."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bus_name: str = names.DEFAULT_BUS_NAME,
        archive_retention: Duration | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bus = events.EventBus(self, names.BUS_ID, event_bus_name=bus_name)
        self.archive = self.bus.archive(
            names.ARCHIVE_ID,
            description=f"All events on the {bus_name} bus, for replay",
            # An empty pattern renders no EventPattern property: the archive keeps every event.
            event_pattern=events.EventPattern(),
            retention=archive_retention or Duration.days(names.ARCHIVE_RETENTION_DAYS),
        )

    @property
    def bus_name(self) -> str:
        return self.bus.event_bus_name

    @property
    def bus_arn(self) -> str:
        return self.bus.event_bus_arn
