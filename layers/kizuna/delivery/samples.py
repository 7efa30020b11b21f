"""Sample recipients and coupons for previews, dry runs and template checks.

A preview or a check renders a template with the context a send would give it; these give
it a customer with every field a template may read filled in, and a coupon whose code is
made with a secret no real send uses (so no sample code is ever a real one).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from kizuna.delivery.coupons import Coupon, issue_coupon
from kizuna.domain.customer import CartState, Customer
from kizuna.programs.model import CouponSpec
from kizuna.runtime.config import CustomAttribute, CustomConfig, ValueType

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


def sample_customer(
    locale: str = "ja", customer_id: str = "sample", custom: CustomConfig | None = None
) -> Customer:
    """The customer a preview or a render bench shows: a Silver member 80 points from Gold,
    named in ``locale``, with a sample value of every attribute ``custom`` declares."""
    return Customer(
        customer_id=customer_id,
        first_name="花子" if locale == "ja" else "Hanako",
        last_name="山田" if locale == "ja" else "Yamada",
        locale=locale,
        rank="Silver",
        next_rank="Gold",
        points_to_next_rank=80,
        points_balance=1240,
        order_count=1,
        attributes=sample_attributes(custom),
    )


def sample_recipient(locale: str, now: datetime, custom: CustomConfig | None = None) -> Customer:
    """A customer reading ``locale`` with every field a template may read filled in: names,
    rank and next rank, orders, points about to expire, an open cart, every attribute
    ``custom`` declares."""
    base = sample_customer(locale, custom=custom)
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
