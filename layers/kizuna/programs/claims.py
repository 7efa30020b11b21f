"""Does the customer's stored state bear out what a derived event claims?

Derived events (source ``kizuna``) start journeys, so they are claims about a customer:
"moved to Champions", "ranked up to Gold", "left a cart". The bus policy keeps producers
from putting them (kizuna_infra.bus); evaluate re-checks each claim against the state it
reads anyway before it lets the event start or convert anything, so a forged or replayed
claim sends nothing even if it reached the bus. One check per derived type (a test holds
:data:`CLAIMS` to :data:`kizuna.events.DERIVED_MODELS`): what the emitter wrote, or the
fact it read, must be in the stored state now.

A claim can be true but not stored *yet*: the daily scoring puts its events before it saves
the customers (kizuna.scoring.job). Evaluate therefore defers an event whose claim does not
hold to a later delivery, and records ``skipped: claim_not_in_state`` only on the last one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from kizuna.domain.customer import Customer
from kizuna.domain.loyalty import live_lots
from kizuna.domain.timestamps import iso
from kizuna.domain.yearly import celebrated_on
from kizuna.programs.journeys import JourneyState
from kizuna.runtime.config import LoyaltyConfig

Detail = Mapping[str, Any]
# What else the claim is checked against, besides the customer: the journey state a
# program.converted names (:func:`journey_key`), the coupon row a coupon.expiring names
# (:func:`coupon_key`), the customer's live points lots for a customer.points_expiring
# (:func:`points_lots`), else None.
Stored = JourneyState | Mapping[str, Any] | None
Check = Callable[[Detail, Customer, Stored], bool]

CLAIM_NOT_IN_STATE = "claim_not_in_state"
POINTS_EXPIRING = "customer.points_expiring"


def _text(detail: Detail, key: str) -> str | None:
    value = detail.get(key)
    return value if isinstance(value, str) and value else None


def _instant(detail: Detail, key: str) -> datetime | None:
    value = detail.get(key)
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return parsed if parsed.tzinfo is not None else None


def _order_counts(detail: Detail, c: Customer, _: Stored) -> bool:
    """first_purchase, repeat_purchase: the order is one the customer placed (and it counts)."""
    order_id = _text(detail, "order_id")
    fact = c.orders.get(order_id) if order_id else None
    return fact is not None and fact.counts


def _rank(detail: Detail, c: Customer, _: Stored) -> bool:
    to_rank = _text(detail, "to_rank")
    return to_rank is not None and c.rank == to_rank


def _near_next_rank(detail: Detail, c: Customer, _: Stored) -> bool:
    rank, next_rank = _text(detail, "rank"), _text(detail, "next_rank")
    return rank is not None and next_rank is not None and (c.rank, c.next_rank) == (rank, next_rank)


def _dormancy(detail: Detail, c: Customer, _: Stored) -> bool:
    last = _instant(detail, "last_order_at")
    return last is not None and c.last_order_at == last


def _points_expiring(detail: Detail, c: Customer, lots: Stored) -> bool:
    """The points expiring then are the customer's earliest (as stored), or, given the
    customer's live lots (:func:`points_lots`), a later lot's: the sweep warns of each."""
    at = _instant(detail, "expires_at")
    if at is None:
        return False
    if c.points_next_expiry_at == at and c.points_next_expiry_amount > 0:
        return True
    if lots is None or isinstance(lots, JourneyState):
        return False
    points = lots.get(iso(at))
    return isinstance(points, int) and points > 0


def points_lots(c: Customer, cfg: LoyaltyConfig) -> dict[str, int]:
    """The lots a customer.points_expiring is checked against: those still holding points
    at the customer's ``as_of``, as ISO expiry -> points."""
    return {iso(at): n for at, n in live_lots(c, cfg, c.as_of).items()}


def _cart(detail: Detail, c: Customer, _: Stored) -> bool:
    cart_id = _text(detail, "cart_id")
    return (
        cart_id is not None
        and c.cart is not None
        and c.cart.cart_id == cart_id
        and c.cart_open_at is not None
    )


def _day(detail: Detail, key: str) -> date | None:
    value = detail.get(key)
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _birthday(detail: Detail, c: Customer, _: Stored) -> bool:
    """The date is the customer's birthday that year, at the age claimed."""
    day, age = _day(detail, "date"), detail.get("age")
    if day is None or c.birth_date is None or not isinstance(age, int):
        return False
    return celebrated_on(c.birth_date, day.year) == day and day.year - c.birth_date.year == age


def _anniversary(detail: Detail, c: Customer, _: Stored) -> bool:
    """The date is the anniversary of the customer's current membership start, at the
    number of years claimed (a start changed since the sweep enters nobody)."""
    day, since, years = _day(detail, "date"), _day(detail, "member_since"), detail.get("years")
    if day is None or c.member_since is None or since != c.member_since:
        return False
    if not isinstance(years, int) or years < 1:
        return False
    return celebrated_on(since, day.year) == day and day.year - since.year == years


def _segment(detail: Detail, c: Customer, _: Stored) -> bool:
    to_segment = _text(detail, "to_segment")
    return to_segment is not None and c.rfm_segment == to_segment


def _coupon(detail: Detail, c: Customer, row: Stored) -> bool:
    """The customer's coupon row is still issued, expiring when claimed, from the program
    claimed (a redeemed coupon's reminder, delivered late or replayed, enters nobody)."""
    if row is None or isinstance(row, JourneyState):
        return False
    at = _instant(detail, "expires_at")
    return (
        row.get("status") == "issued"
        and row.get("pk") == c.customer_id
        and row.get("program") == detail.get("program")
        and at is not None
        and _instant(row, "valid_until") == at
    )


def _converted(detail: Detail, _: Customer, journey: Stored) -> bool:
    """Evaluate itself emits it after saving the conversion on the program's journey."""
    at = _instant(detail, "occurred_at")
    return (
        at is not None
        and isinstance(journey, JourneyState)
        and journey.goal_reached_at == at
        and journey.converted_execution == detail.get("execution")
    )


CLAIMS: dict[str, Check] = {
    "customer.first_purchase": _order_counts,
    "customer.repeat_purchase": _order_counts,
    "customer.rank_changed": _rank,
    "customer.points_near_next_rank": _near_next_rank,
    "customer.dormancy_risk": _dormancy,
    POINTS_EXPIRING: _points_expiring,
    "cart.abandoned": _cart,
    "customer.birthday": _birthday,
    "customer.anniversary": _anniversary,
    "coupon.expiring": _coupon,
    "customer.segment_changed": _segment,
    "program.converted": _converted,
}


def journey_key(detail_type: str, detail: Detail) -> str | None:
    """The program whose journey state a claim is checked against (program.converted)."""
    return _text(detail, "program") if detail_type == "program.converted" else None


def coupon_key(detail_type: str, detail: Detail) -> tuple[str, str] | None:
    """The coupon row (customer, code) a coupon.expiring claim is checked against."""
    if detail_type != "coupon.expiring":
        return None
    cid, code = _text(detail, "customer_id"), _text(detail, "code")
    return (cid, code) if cid and code else None


def recorded_by_ingest(detail_type: str, detail: Detail, customer: Customer) -> bool:
    """Ingest keeps, on the customer, the derived events each inbound event produced (its
    idempotency record, ``Customer.processed``): a claim found there, as written, is what
    ingest derived, even if a later fact has moved the state on since (two rank-ups of one
    batch: the Silver one is true though the customer is Gold now)."""
    cause = _text(detail, "caused_by")
    record = customer.processed.get(cause) if cause else None
    if record is None:
        return False
    claimed = {k: v for k, v in detail.items() if v is not None}
    for written in record.derived:
        if written.get("detail_type") != detail_type:
            continue
        stored = {k: v for k, v in dict(written.get("detail") or {}).items() if v is not None}
        if stored == claimed:
            return True
    return False


def claim_holds(
    detail_type: str, detail: Detail, customer: Customer, journey: Stored = None
) -> bool:
    """True if ingest recorded the derived event (:func:`recorded_by_ingest`) or the stored
    state bears it out; False for a derived type without a check (none: the tests hold every
    type to one), so nothing unchecked passes."""
    check = CLAIMS.get(detail_type)
    if check is None:
        return False
    return recorded_by_ingest(detail_type, detail, customer) or check(detail, customer, journey)
