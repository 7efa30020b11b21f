"""The bus contract: inbound events (from the user's systems) and derived events (from Kizuna)."""

import typing
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from kizuna.events.derived import (
    DERIVED_MODELS,
    Anniversary,
    Birthday,
    CartAbandoned,
    Cause,
    CouponExpiring,
    DerivedDetail,
    DerivedEvent,
    DormancyRisk,
    FirstPurchase,
    PointsExpiring,
    PointsNearNextRank,
    ProgramConverted,
    RankChanged,
    RankDirection,
    RepeatPurchase,
    SegmentChanged,
    derived_event,
)
from kizuna.events.inbound import (
    BEHAVIOUR_TYPES,
    ERASE_TYPE,
    INBOUND_MODELS,
    PUSH_OPENED_TYPE,
    AppOpened,
    CartItem,
    CartUpdated,
    Channel,
    ChannelSuppressed,
    ConsentChanged,
    ConsentChannel,
    ConsentStatus,
    CustomerErase,
    CustomerUpserted,
    DeviceRegistered,
    DeviceUnregistered,
    Gender,
    InboundDetail,
    LineLinked,
    OrderCancelled,
    OrderLine,
    OrderPlaced,
    OrderRefunded,
    PointsAdjusted,
    PreferencesChanged,
    ProductViewed,
    PushOpened,
    PushPlatform,
    SalesChannel,
    inbound_type,
)

if TYPE_CHECKING:
    from kizuna.events.custom import Vocabulary

INBOUND_EVENT_TYPES: tuple[str, ...] = tuple(INBOUND_MODELS)
DERIVED_EVENT_TYPES: tuple[str, ...] = tuple(DERIVED_MODELS)


def detail_fields(detail_type: str, vocab: "Vocabulary | None" = None) -> dict[str, Any] | None:
    """The fields of an event's detail, as a condition on it may name them (an object's or
    an array of objects' own fields nested: ``lines.product_id``); None for a detail-type
    that is not part of the contract. With a shop's ``vocab``
    (:func:`kizuna.events.custom.vocabulary`), its declared events are part of it too."""
    model: type[BaseModel] | None
    if vocab is not None:
        model = vocab.model_of(detail_type)
    else:
        model = INBOUND_MODELS.get(detail_type) or DERIVED_MODELS.get(detail_type)
    if model is None:
        return None
    fields = _model_fields(model)
    # the producer's retry key identifies an event, it says nothing about it
    fields.pop("idempotency_key", None)
    return fields


def _model_fields(model: type[BaseModel]) -> dict[str, Any]:
    return {name: _nested(info.annotation) for name, info in model.model_fields.items()}


def _nested(annotation: Any) -> dict[str, Any] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _model_fields(annotation)
    for arg in typing.get_args(annotation):  # tuple[OrderLine, ...], X | None
        found = _nested(arg)
        if found is not None:
            return found
    return None


__all__ = [
    "BEHAVIOUR_TYPES",
    "DERIVED_EVENT_TYPES",
    "DERIVED_MODELS",
    "ERASE_TYPE",
    "INBOUND_EVENT_TYPES",
    "INBOUND_MODELS",
    "PUSH_OPENED_TYPE",
    "Anniversary",
    "AppOpened",
    "Birthday",
    "CartAbandoned",
    "CartItem",
    "CartUpdated",
    "Cause",
    "Channel",
    "ChannelSuppressed",
    "ConsentChanged",
    "ConsentChannel",
    "ConsentStatus",
    "CouponExpiring",
    "CustomerErase",
    "CustomerUpserted",
    "DerivedDetail",
    "DerivedEvent",
    "DeviceRegistered",
    "DeviceUnregistered",
    "DormancyRisk",
    "FirstPurchase",
    "Gender",
    "InboundDetail",
    "LineLinked",
    "OrderCancelled",
    "OrderLine",
    "OrderPlaced",
    "OrderRefunded",
    "PointsAdjusted",
    "PointsExpiring",
    "PointsNearNextRank",
    "PreferencesChanged",
    "ProductViewed",
    "ProgramConverted",
    "PushOpened",
    "PushPlatform",
    "RankChanged",
    "RankDirection",
    "RepeatPurchase",
    "SalesChannel",
    "SegmentChanged",
    "derived_event",
    "detail_fields",
    "inbound_type",
]
