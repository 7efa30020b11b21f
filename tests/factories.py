"""Builders for inbound events as EventBridge delivers them, customers and the Send task."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kizuna.delivery.channels import Channel, OutboundMessage, SendResult
from kizuna.delivery.templates import Renderer
from kizuna.domain.customer import ConsentState, Customer
from kizuna.domain.loyalty import address_hash
from kizuna.events import Channel as ChannelName
from kizuna.events import ChannelSuppressed, ConsentChanged, ConsentStatus
from kizuna.events.envelope import ParsedEvent, parse_inbound
from kizuna.ports import Inbound
from kizuna.programs.loader import load_programs
from kizuna.programs.model import Program
from kizuna.runtime.clock import Clock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.contracts import SendRequest
from kizuna.services.send import SendService, SendStore
from kizuna_tools.fakes import MemoryInbound

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
FIXTURES = Path(__file__).parent / "fixtures" / "events"
ROOT = Path(__file__).resolve().parents[1]
NOON = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo


def envelope(
    detail_type: str, detail: dict[str, Any], event_id: str, source: str = "com.example.shop"
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id,
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": "2026-01-05T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def order(
    customer_id: str,
    order_id: str,
    total: int | str,
    at: datetime,
    event_id: str | None = None,
    channel: str = "web",
    product_id: str = "p-1",
    category: str = "tea",
) -> dict[str, Any]:
    return envelope(
        "order.placed",
        {
            "customer_id": customer_id,
            "occurred_at": at.isoformat(),
            "order_id": order_id,
            "lines": [
                {
                    "product_id": product_id,
                    "category": category,
                    "quantity": 1,
                    "unit_price": str(total),
                }
            ],
            "total": str(total),
            "currency": "JPY",
            "channel": channel,
        },
        event_id or f"ev-{order_id}",
    )


def cancel(
    customer_id: str, order_id: str, at: datetime, event_id: str | None = None
) -> dict[str, Any]:
    return envelope(
        "order.cancelled",
        {"customer_id": customer_id, "occurred_at": at.isoformat(), "order_id": order_id},
        event_id or f"ev-cancel-{order_id}",
    )


def refund(
    customer_id: str,
    order_id: str,
    refund_id: str,
    amount: int | str,
    at: datetime,
    event_id: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    return envelope(
        "order.refunded",
        {
            "customer_id": customer_id,
            "occurred_at": at.isoformat(),
            "order_id": order_id,
            "refund_id": refund_id,
            "amount": amount,
            "currency": "JPY",
            **fields,
        },
        event_id or f"ev-refund-{order_id}-{refund_id}",
    )


def adjust(customer_id: str, adjustment_id: str, delta: int, at: datetime) -> dict[str, Any]:
    return envelope(
        "points.adjusted",
        {
            "customer_id": customer_id,
            "occurred_at": at.isoformat(),
            "adjustment_id": adjustment_id,
            "delta": delta,
            "reason": "manual",
        },
        f"ev-adj-{adjustment_id}",
    )


def upsert(customer_id: str, at: datetime, event_id: str, **fields: Any) -> dict[str, Any]:
    return envelope(
        "customer.upserted",
        {"customer_id": customer_id, "occurred_at": at.isoformat(), **fields},
        event_id,
    )


def parsed(raw: dict[str, Any]) -> ParsedEvent:
    return parse_inbound(raw)


def days(n: float) -> timedelta:
    return timedelta(days=n)


PHONE = "+819012345678"
LINE_USER = "U" + "0" * 32


def opted_in(*channels: str, at: datetime = NOON, source: str = "t") -> dict[str, ConsentState]:
    """Consent to each of ``channels``, given at ``at``."""
    return {c: ConsentState(status="opted_in", at=at, source=source, stamp="s") for c in channels}


def customer(customer_id: str = "c1", **fields: Any) -> Customer:
    """A customer in Tokyo reading Japanese, opted in to email at ``<customer_id>@example.jp``
    since NOON; ``fields`` add to or replace these."""
    base: dict[str, Any] = {
        "email": f"{customer_id}@example.jp",
        "locale": "ja",
        "time_zone": "Asia/Tokyo",
        "consent": opted_in("email"),
    }
    return Customer(customer_id=customer_id, **{**base, **fields})


def campaign_definition(**fields: Any) -> dict[str, Any]:
    """A campaign as written: "sale", once at noon (Tokyo) on NOON's day, to everyone, by email
    with the ``news`` templates; ``fields`` add to or replace these."""
    definition: dict[str, Any] = {
        "id": "sale",
        "name": "Sale",
        "status": "scheduled",
        "audience": {"everyone": True},
        "schedule": {"type": "once", "at": "2026-01-05T12:00:00+09:00"},
        "channels": ["email"],
        "template": "news",
    }
    return {**definition, **fields}


def sms_opted_out(customer_id: str, at: datetime, phone: str) -> ChannelSuppressed:
    """What a STOP reply from ``phone`` becomes: SMS suppressed for that number (hashed)."""
    return ChannelSuppressed(
        customer_id=customer_id,
        occurred_at=at,
        channel=ChannelName.SMS,
        reason="opt_out",
        address_hash=address_hash(phone),
    )


def unsubscribed(customer_id: str, at: datetime) -> ConsentChanged:
    """What the one-click unsubscribe link sends: consent to email withdrawn."""
    return ConsentChanged(
        customer_id=customer_id,
        occurred_at=at,
        channel=ChannelName.EMAIL,
        status=ConsentStatus.OPTED_OUT,
        source="unsubscribe_link",
    )


def sample_program(*steps: str) -> str:
    """Program YAML ``sample`` (on a first purchase) whose first step sends ``hello`` by
    email, followed by ``steps`` (one YAML flow mapping each)."""
    lines = ("{id: hello, type: send, channels: [email], template: hello}", *steps)
    return (
        "id: sample\nname: Sample\ntrigger: {event: customer.first_purchase}\nsteps:\n"
        + "".join(f"  - {step}\n" for step in lines)
    )


class Email:
    """An email channel that takes every message and keeps it, in order, under ``sent``
    (provider message ids ``m-1``, ``m-2``, ...)."""

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    def send(self, message: OutboundMessage) -> SendResult:
        self.sent.append(message)
        return SendResult(provider_message_id=f"m-{len(self.sent)}")


def send_service(
    store: SendStore,
    channels: Mapping[str, Channel],
    clock: Clock,
    *,
    inbound: Inbound | None = None,
    programs: Sequence[Program] | None = None,
    **options: Any,
) -> SendService:
    """The journeys' Send task over the repository's programs and templates, the default
    configuration, a fixed coupon secret and no sleeping between retries."""
    if programs is None:
        programs, _ = load_programs(ROOT / "programs")
    return SendService(
        programs,
        store,
        Renderer(ROOT / "templates"),
        channels,
        inbound or MemoryInbound(),
        KizunaConfig(),
        clock,
        coupon_secret=b"k" * 32,
        sleep=lambda _: None,
        **options,
    )


def journey_send(customer_id: str, execution: str) -> SendRequest:
    """The coupon step of the second-purchase program, entered a day before ``T0``'s noon."""
    return SendRequest(
        program="second-purchase-coupon",
        step="coupon",
        customer_id=customer_id,
        execution=execution,
        entered_at=NOON - timedelta(days=1),
    )


def _round_prices() -> Any:
    from bench.cost_model import Prices

    return Prices(
        lambda_request=1e-6,
        lambda_gb_second={"arm64": 1e-5, "x86_64": 2e-5},
        dynamodb_wru=2e-6,
        dynamodb_rru=1e-6,
        eventbridge_event=1e-6,
        stepfunctions_transition=1e-5,
        sqs_request=1e-6,
        channels={"email_ses": 1e-4, "push": 1e-6, "sms_japan": 0.1, "line_japan": 0.02},
    )


# Round prices per single unit (bench/cost_model.py), so the expected figures of a cost test
# can be worked out on paper.
ROUND_PRICES = _round_prices()


class PausedMeanwhile:
    """A campaigns table (``campaigns``: a :class:`kizuna_tools.fakes.MemoryCampaigns`) as a
    marketer pauses ``campaign_id`` just after a writer read it: the pause lands before the
    writer's first ``put_definition``."""

    def __init__(self, campaigns: Any, campaign_id: str, at: datetime) -> None:
        self._campaigns, self._campaign_id, self._at = campaigns, campaign_id, at
        self.paused = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._campaigns, name)

    def put_definition(self, *args: Any, **kwargs: Any) -> int:
        if not self.paused:
            self.paused = self._campaigns.set_status(self._campaign_id, "paused", self._at)
        result: int = self._campaigns.put_definition(*args, **kwargs)
        return result
