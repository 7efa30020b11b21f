"""Sample recipients, coupons and triggers for previews, dry runs and template checks.

A preview or a check renders a template with the context a send would give it; these give
it a customer with every field a template may read filled in, a coupon whose code is
made with a secret no real send uses (so no sample code is ever a real one), and a
program's ``trigger`` as a journey member keeps it.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, Final

from pydantic import AwareDatetime, BaseModel

from kizuna.delivery.coupons import Coupon, issue_coupon
from kizuna.domain.customer import CartState, Customer
from kizuna.events.derived import DerivedDetail
from kizuna.programs.members import trigger_of
from kizuna.programs.model import CouponSpec
from kizuna.runtime.config import CustomAttribute, CustomConfig, KizunaConfig, ValueType

if TYPE_CHECKING:
    from kizuna.events.custom import Vocabulary

# Coupons of a template check, a dry run and a preview: none of them is a real code.
CHECK_SECRET: Final = b"kizuna template check: not a real coupon"
DRY_RUN_SECRET: Final = b"kizuna dry run: not a real coupon"
PREVIEW_SECRET: Final = b"kizuna preview: not a real coupon"
SAMPLE_UNSUBSCRIBE_URL: Final = "https://example.com/unsubscribe?t=check"


SAMPLE_TEXT: Final = "sample"
SAMPLE_DATE: Final = date(2000, 1, 1)


def sample_value(attribute: CustomAttribute) -> Any:
    """A value ``attribute`` may hold (its first allowed value, ``sample``, 1, true...), as
    stored on a customer."""
    match attribute.type:
        case ValueType.BOOLEAN:
            return True
        case ValueType.NUMBER:
            return Decimal(1)
        case ValueType.DATE:
            return SAMPLE_DATE.isoformat()
        case ValueType.STRING_LIST:
            return [attribute.enum[0] if attribute.enum else SAMPLE_TEXT[: attribute.max_length]]
    return attribute.enum[0] if attribute.enum else SAMPLE_TEXT[: attribute.max_length]


def sample_attributes(custom: CustomConfig | None) -> dict[str, Any]:
    """Every declared attribute with a sample value (what a template check renders with)."""
    return {a.name: sample_value(a) for a in (custom.attributes if custom else ())}


def rank_names(cfg: KizunaConfig) -> tuple[str, ...]:
    """The configuration's rank names, lowest first."""
    return tuple(r.name for r in cfg.loyalty.ranks)


def sample_ranks(ranks: Sequence[str] = ()) -> tuple[str, str | None]:
    """The sample customer's rank and next rank among the configured ``ranks`` (lowest
    first): the second and the third (Silver and Gold by default), so a template reading
    ``loyalty.benefits[customer.rank]`` finds the shop's own names."""
    if not ranks:
        return "Silver", "Gold"
    at = min(1, len(ranks) - 1)
    return ranks[at], ranks[at + 1] if at + 1 < len(ranks) else None


def sample_customer(
    locale: str = "ja",
    customer_id: str = "sample",
    custom: CustomConfig | None = None,
    ranks: Sequence[str] = (),
) -> Customer:
    """The customer a preview or a render bench shows: a member of the second rank (Silver
    by default) 80 points from the next, named in ``locale``, with a sample value of every
    attribute ``custom`` declares; ``ranks``: the configuration's rank names."""
    rank, next_rank = sample_ranks(ranks)
    return Customer(
        customer_id=customer_id,
        first_name="花子" if locale == "ja" else "Hanako",
        last_name="山田" if locale == "ja" else "Yamada",
        locale=locale,
        rank=rank,
        next_rank=next_rank,
        points_to_next_rank=80 if next_rank is not None else None,
        points_balance=1240,
        order_count=1,
        attributes=sample_attributes(custom),
    )


def sample_recipient(
    locale: str, now: datetime, custom: CustomConfig | None = None, ranks: Sequence[str] = ()
) -> Customer:
    """A customer reading ``locale`` with every field a template may read filled in: names,
    rank and next rank (among ``ranks``), orders, points about to expire, an open cart, every
    attribute ``custom`` declares."""
    base = sample_customer(locale, custom=custom, ranks=ranks)
    return base.model_copy(
        update={
            "time_zone": "Asia/Tokyo" if locale.startswith("ja") else "Europe/London",
            "order_count": 2,
            "first_order_at": now - timedelta(days=90),
            "first_order_id": "sample-order-1",
            "last_order_at": now - timedelta(days=7),
            "points_next_expiry_at": now + timedelta(days=30),
            "points_next_expiry_amount": 200,
            "cart": CartState(
                cart_id="sample-cart",
                item_count=2,
                value=Decimal(3600),
                currency="JPY",
                product_ids=("tea-001", "ware-001"),
                at=now - timedelta(hours=3),
                stamp="sample",
            ),
        }
    )


def sample_coupon(
    spec: CouponSpec | None,
    secret: bytes,
    program: str,
    customer_id: str,
    execution: str,
    step: str,
    now: datetime,
) -> Coupon | None:
    """The coupon a send with ``spec`` would issue (none without one), for a preview or a dry
    run: ``secret`` keeps its code from being a real one."""
    if spec is None:
        return None
    expires_at = now + timedelta(days=spec.valid_days)
    return issue_coupon(
        secret,
        program,
        customer_id,
        execution,
        step,
        discount=spec.discount,
        expires_at=expires_at,
    )


def sample_trigger(
    event: str,
    vocab: Vocabulary,
    cfg: KizunaConfig,
    now: datetime,
    *,
    program: str = "sample",
    optional: bool = True,
) -> dict[str, Any]:
    """The ``trigger`` a member of a program started by ``event`` carries to its sends:
    :func:`kizuna.programs.members.trigger_of` of a sample detail as the bus delivers it
    (JSON values: a time or a date as ISO text, an amount as a number), so its type, its
    top-level scalars and no personal field. Every field of the event's model has a value
    of its type (ranks and currency the configuration's, the program's id as
    ``program``); without ``optional``, a field an event may lack (a producer's optional
    field, a derived one that may be null) is left out, as ``trigger_of`` leaves it out.
    Empty for an event the vocabulary does not know."""
    model = vocab.model_of(event)
    if model is None:
        return {}
    ranks = [r.name for r in cfg.loyalty.ranks] or ["Member"]
    lower, higher = (ranks[-2], ranks[-1]) if len(ranks) > 1 else (ranks[0], ranks[0])
    named: dict[str, Any] = {
        "customer_id": "sample",
        "program": program,
        "currency": cfg.loyalty.currency,
        "discount": "10%",
        "time_zone": cfg.contact.default_time_zone,
        "from_rank": lower,
        "rank": lower,
        "to_rank": higher,
        "next_rank": higher,
    }
    derived = issubclass(model, DerivedDetail)
    detail: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        nullable = _admits_none(info.annotation)
        if not optional and (nullable or (not derived and not info.is_required())):
            continue
        value = _sample_json(info.annotation, now)
        if isinstance(value, str) and name in named:
            value = named[name]
        detail[name] = value
    return trigger_of(event, detail, vocab.personal_fields(event))


def _admits_none(annotation: Any) -> bool:
    return annotation is None or type(None) in typing.get_args(annotation)


def _sample_json(annotation: Any, now: datetime) -> Any:
    """A value of ``annotation`` as a JSON event carries it."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _sample_json(args[0], now)
    if origin is typing.Union or origin is types.UnionType:
        return next((_sample_json(a, now) for a in args if a is not type(None)), None)
    if origin is typing.Literal:
        return args[0]
    if origin in (tuple, list, set, frozenset):
        return [_sample_json(args[0], now)] if args else []
    if not isinstance(annotation, type):
        return SAMPLE_TEXT
    if issubclass(annotation, Enum):
        return next(iter(annotation)).value
    if issubclass(annotation, bool):
        return True
    if issubclass(annotation, int | float | Decimal):
        return 1
    if annotation is AwareDatetime or issubclass(annotation, datetime):
        return now.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if issubclass(annotation, date):
        return now.date().isoformat()
    if issubclass(annotation, BaseModel):
        return {k: _sample_json(f.annotation, now) for k, f in annotation.model_fields.items()}
    return SAMPLE_TEXT
