"""Kizuna's own functions report facts about a customer (a dead push token, a hard bounce,
an unsubscribe) as *inbound* events on the bus, so ingest stays the only writer of the
customer item."""

from __future__ import annotations

from typing import Any

from kizuna.events import InboundDetail, inbound_type

FEEDBACK_SOURCE = "kizuna.feedback"


class BusInbound:
    def __init__(self, client: Any, bus_name: str, source: str = FEEDBACK_SOURCE) -> None:
        self._client = client
        self._bus = bus_name
        self._source = source

    def put_inbound(self, detail: InboundDetail) -> None:
        """Put one typed inbound event on the bus, under its own detail-type."""
        detail_type = inbound_type(detail)
        resp = self._client.put_events(
            Entries=[
                {
                    "EventBusName": self._bus,
                    "Source": self._source,
                    "DetailType": detail_type,
                    "Detail": detail.model_dump_json(),
                }
            ]
        )
        if resp.get("FailedEntryCount"):
            raise RuntimeError(f"could not put {detail_type} on the bus")
