"""Kizuna's own inbound events (suppressions, dead tokens, unsubscribes) go on the bus as
their typed models, under the detail-type the model is registered with."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from kizuna.adapters.inbound import BusInbound
from kizuna.events import (
    INBOUND_MODELS,
    Channel,
    ChannelSuppressed,
    DeviceUnregistered,
    InboundDetail,
    inbound_type,
)
from tests.factories import unsubscribed

AT = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)


class FakeEvents:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.entries += Entries
        return {"FailedEntryCount": 0}


@pytest.mark.parametrize(
    "detail",
    [
        ChannelSuppressed(customer_id="c1", occurred_at=AT, channel=Channel.SMS, reason="opt_out"),
        DeviceUnregistered(customer_id="c1", occurred_at=AT, token="t" * 40),
        unsubscribed("c1", AT),
    ],
)
def test_a_typed_detail_goes_on_the_bus_as_ingest_will_read_it(detail: InboundDetail) -> None:
    # given the bus adapter (when a typed detail is put)
    client = FakeEvents()
    BusInbound(client, "bus").put_inbound(detail)
    # then it travels under its registered detail-type and parses back to the same model
    (entry,) = client.entries
    assert (entry["EventBusName"], entry["Source"]) == ("bus", "kizuna.feedback")
    model = INBOUND_MODELS[entry["DetailType"]]
    assert model.model_validate(json.loads(entry["Detail"])) == detail


def test_the_detail_type_is_the_one_the_model_is_registered_under() -> None:
    suppressed = ChannelSuppressed(
        customer_id="c1", occurred_at=AT, channel=Channel.SMS, reason="x"
    )
    unregistered = DeviceUnregistered(customer_id="c1", occurred_at=AT, token="t" * 40)
    assert inbound_type(suppressed) == "channel.suppressed"
    assert inbound_type(unregistered) == "device.unregistered"
