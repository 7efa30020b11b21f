"""The send function's work (the journeys' Send task): decide, render, deliver, record.

Order: fresh customer state and contact history (the customer and their CONTACT item in one
read); goal reached since entry -> the journey exits; the contact policy
(:mod:`kizuna.delivery.policy`) -> suppressed / deferred / a channel; render (a template that
cannot render fails the send loudly, nothing half-rendered goes out); claim the send with a
conditional ledger write keyed by execution and step (a retried or duplicated invocation
finds the claim and never sends twice), noting the send in CONTACT in the same write (the
frequency caps count journeys and campaigns together), on condition that CONTACT is as read
(else decided again on a fresh read: :func:`claim_settled`); deliver with backoff on throttling;
record the outcome. Every decision lands in the ledger, without personal data.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from kizuna.delivery.channels import (
    Channel,
    DeliveryError,
    InvalidAddressInfo,
    OutboundMessage,
    OutOfTime,
    SendResult,
    report_dead_devices,
    send_all,
)
from kizuna.delivery.coupons import Coupon, IssuedCoupon, coupon_expiry, issue_coupon
from kizuna.delivery.feedback import suppression
from kizuna.delivery.ledger import CLAIMED_BY, DISPATCHED_AT, LINKS_UNTRACKED
from kizuna.delivery.policy import (
    CONTENDED,
    LOCAL_TIME_MOVED,
    OUT_OF_TIME,
    OUT_OF_TIME_DEFERRAL,
    Outcome,
    PolicyDecision,
    contact_times,
    contended,
    decide,
)
from kizuna.delivery.templates import Renderer, RenderError, build_context
from kizuna.delivery.unsubscribe import UnsubscribeLinks
from kizuna.domain.customer import UNREADABLE_CUSTOMER, Customer, unreadable_of
from kizuna.domain.timestamps import iso
from kizuna.events import DerivedEvent
from kizuna.ports import Claim, Claimed, Contacted, Inbound
from kizuna.programs.journeys import JourneyState
from kizuna.programs.model import Program, SendStep
from kizuna.programs.steps import local_time_on_date_of
from kizuna.runtime.clock import Clock
from kizuna.runtime.config import KizunaConfig
from kizuna.runtime.observability import count_ledger_write_failure, failure, logger
from kizuna.scoring.copurchase import (
    BEST_SELLERS_KEY,
    last_order_products,
    purchased,
    recommend,
)
from kizuna.services.contracts import SendRequest, SendResponse, Status


class SendStore(Protocol):
    """The customers and activity tables as the Send task sees them
    (:class:`kizuna.adapters.dynamodb.DynamoStore`): the same reads and claims as a campaign
    batch's (:class:`kizuna.ports.CampaignRecipients`), for one customer."""

    def read_send_state(
        self, customer_ids: Sequence[str], program: str | None
    ) -> tuple[dict[str, Customer], dict[str, Contacted], dict[str, JourneyState]]: ...

    def claim_messages(self, execution: str, step: str, claims: Sequence[Claim]) -> Claimed: ...

    def dispatch_messages(
        self, step: str, keys: Sequence[tuple[str, str]], token: str, at: str
    ) -> set[tuple[str, str]]: ...

    def ledger_entries_of(
        self, keys: Sequence[tuple[str, str]], step: str
    ) -> dict[tuple[str, str], dict[str, Any]]: ...

    def record_entries(
        self,
        step: str,
        entries: Sequence[tuple[str, str, dict[str, Any]]],
        coupons: Sequence[IssuedCoupon] = (),
    ) -> None: ...


class ProductLookup(Protocol):
    """The products table (:class:`kizuna.adapters.dynamodb.ProductStore`)."""

    def get_products(self, product_ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...


CARRIER_OPT_OUT = "suppressed_opt_out"  # the reason SMS is passed over for a STOP reply
# How many times a send is decided on a fresh read when its claim finds the customer's
# CONTACT item changed since (another send noted meanwhile), before it is deferred
CLAIM_ATTEMPTS = 3
# Seconds of a send invocation (from its start) in which provider calls may start: the send
# function stops at 120 s (infra SEND_TIMEOUT); what is left records the outcomes. A message
# of a large group not started by then is deferred "out_of_time" (never left outcome_unknown).
DELIVERY_BUDGET = 60.0


def claim_settled(
    claim: Callable[[Sequence[Claim]], Claimed],
    claims: Sequence[Claim],
    decide_again: Callable[[set[tuple[str, str]], bool], Sequence[Claim]],
) -> set[tuple[str, str]]:
    """Claim ``claims`` (journeys' and campaigns' alike); a claim whose customer's CONTACT
    item changed since the read it was decided on is not written (:class:`Claimed`'s
    conflicts): it is decided again, ``decide_again(keys, last)`` giving the new claims (on
    a fresh read; ``last``: :data:`CLAIM_ATTEMPTS` decisions were made, the send is
    deferred, :func:`kizuna.delivery.policy.contended`, a claim that notes no send and so
    cannot conflict), and claimed again. The frequency caps hold across concurrent sends:
    every send noted is counted by the decision of every send noted after it. Returns the
    duplicates."""
    duplicates: set[tuple[str, str]] = set()
    pending = list(claims)
    for attempt in range(1, CLAIM_ATTEMPTS + 2):
        claimed = claim(pending)
        duplicates |= claimed.duplicates
        if not claimed.conflicts:
            return duplicates
        logger.info(
            "contact changed since the read: deciding again",
            conflicts=len(claimed.conflicts),
            attempt=attempt,
        )
        pending = list(decide_again(claimed.conflicts, attempt >= CLAIM_ATTEMPTS))
    raise AssertionError("a claim that notes no send cannot conflict")


def carrier_block(
    customer: Customer,
    channel: str,
    now: datetime,
    sms_opted_out: Callable[[str], bool] | None,
    inbound: Inbound | None,
) -> str | None:
    """The contact policy's last check (``decide``'s ``blocked``), shared by journeys,
    transactional messages and campaigns: SMS to a number on the carrier's opt-out list (it
    replied STOP, and the daily sweep has not made it a suppression yet) is not used, and
    ingest is told at once. ``decide`` asks only of the channel it would choose, so the
    carrier is asked only for recipients about to get an SMS."""
    if channel != "sms" or sms_opted_out is None or not customer.phone:
        return None
    if not sms_opted_out(customer.phone):
        return None
    if inbound is not None:
        inbound.put_inbound(
            suppression(customer.customer_id, now, "sms", "opt_out", customer.phone)
        )
    return CARRIER_OPT_OUT


@dataclass
class _Plan:
    """One customer's send on its way: the claim that records it, then either the message
    to deliver or the final answer."""

    req: SendRequest
    claim: Claim
    message: OutboundMessage | None = None
    response: SendResponse | None = None
    coupon: Coupon | None = None  # issued (recorded) only if the message is sent


def message_context(
    program: Program,
    step: SendStep,
    customer: Customer,
    cfg: KizunaConfig,
    *,
    coupon: Coupon | None,
    recommendations: Iterable[Mapping[str, Any]],
    unsubscribe_url: str | None,
    trigger: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What a program's send step gives its template (``kizuna programs validate`` renders
    every template with it too): :func:`build_context`, the customer's open ``cart`` and
    what the entry's ``trigger`` said (:func:`kizuna.programs.members.trigger_of`)."""
    cart = customer.cart
    return build_context(
        customer,
        program=program.id,
        step=step.id,
        loyalty_config=cfg.loyalty,
        coupon=coupon,
        recommendations=recommendations,
        extra={
            "cart": None
            if cart is None or cart.item_count == 0
            else {
                "item_count": cart.item_count,
                "value": cart.value,
                "currency": cart.currency,
                "product_ids": list(cart.product_ids),
            },
            "trigger": dict(trigger) if trigger else None,
        },
        unsubscribe_url=unsubscribe_url,
        default_locale=cfg.contact.default_locale,
        default_time_zone=cfg.contact.default_time_zone,
        custom=cfg.custom,
    )


def derive_key(secret: bytes, purpose: str) -> bytes:
    return hmac.new(secret, purpose.encode(), hashlib.sha256).digest()


def contact_key(execution: str, step: str) -> str:
    """A journey message's key in the CONTACT item (an execution sends from several steps)."""
    return f"{execution}#{step}"


class SendService:
    def __init__(
        self,
        programs: Sequence[Program],
        store: SendStore,
        renderer: Renderer,
        channels: Mapping[str, Channel],
        inbound: Inbound,
        cfg: KizunaConfig,
        clock: Clock,
        coupon_secret: bytes,
        attempts: int = 4,
        unsubscribe: UnsubscribeLinks | None = None,
        sms_opted_out: Callable[[str], bool] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        products: ProductLookup | None = None,
        *,
        delivery_budget: float = DELIVERY_BUDGET,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.programs = {p.id: p for p in programs}
        self.store = store
        self.renderer = renderer
        self.channels = dict(channels)
        self.inbound = inbound
        self.cfg = cfg
        self.clock = clock
        self.coupon_secret = coupon_secret
        self.attempts = attempts
        self.unsubscribe = unsubscribe
        self.sms_opted_out = sms_opted_out
        self.sleep = sleep
        self.products = products
        self.delivery_budget = delivery_budget
        self.monotonic = monotonic

    # -- the decision -------------------------------------------------------------------
    def send(self, req: SendRequest) -> SendResponse:
        """One customer's message (a group of one)."""
        return self.send_many([req])[0]

    def send_many(self, reqs: Sequence[SendRequest]) -> list[SendResponse]:
        """The messages of one step to many customers (a cohort's group): one read of the
        customers, their CONTACT items and journeys; each decided on that fresh state;
        the claims in shared transactions; push batched; the outcomes in BatchWriteItem.
        Answers in the order of ``reqs``."""
        if not reqs:
            return []
        steps = {(r.program, r.step) for r in reqs}
        if len(steps) != 1:
            raise ValueError("send_many sends one step of one program")
        program = self.programs[reqs[0].program]
        step = program.step(reqs[0].step)
        if not isinstance(step, SendStep):
            raise ValueError(f"{program.id}.{reqs[0].step} is not a send step")
        deadline = self.monotonic() + self.delivery_budget
        now = self.clock.now()
        token = uuid.uuid4().hex  # this invocation: its claims, its dispatches
        plans = self._decide(reqs, program, step, now, token)

        def decide_again(keys: set[tuple[str, str]], last: bool) -> list[Claim]:
            redo = [n for n, p in enumerate(plans) if _key(p.req) in keys]
            again = [plans[n].req for n in redo]
            fresh = (
                [self._contended(req, now, token) for req in again]
                if last
                else self._decide(again, program, step, now, token)
            )
            for n, plan in zip(redo, fresh, strict=True):
                plans[n] = plan
            return [p.claim for p in fresh]

        duplicates = claim_settled(
            lambda claims: self.store.claim_messages(reqs[0].execution, step.id, claims),
            [p.claim for p in plans],
            decide_again,
        )
        if duplicates:
            first = self.store.ledger_entries_of([_key(p.req) for p in plans], step.id)
            for p in plans:
                if _key(p.req) in duplicates:
                    p.response = self._duplicate(first.get(_key(p.req), {}), _owner(p.req))
                    p.message = None
        self._dispatch(step, plans, token, now)
        self._deliver(program, step, [p for p in plans if p.message is not None], now, deadline)
        for p in plans:
            if p.message is None and _key(p.req) not in duplicates:
                assert p.response is not None
                logger.info(
                    "message not sent",
                    program=program.id,
                    step=step.id,
                    status=p.response.status,
                    reason=p.response.reason,
                )
        return [p.response or SendResponse(status="failed") for p in plans]

    def _decide(
        self,
        reqs: Sequence[SendRequest],
        program: Program,
        step: SendStep,
        now: datetime,
        token: str,
    ) -> list[_Plan]:
        """Each customer's decision on one fresh read of the customers, their CONTACT items
        and (a program that exits on its goal) their journeys."""
        exits = program.goal is not None and program.goal.exit_journey
        customers, contacts, journeys = self.store.read_send_state(
            [r.customer_id for r in reqs], program.id if exits else None
        )
        reached = {
            _key(r): state.goal_reached_at
            for r in reqs
            if (state := journeys.get(r.customer_id)) is not None
            and state.goal_reached_at is not None
            and state.goal_reached_at >= r.entered_at
        }
        unreadable = unreadable_of(customers)
        return [
            self._unreadable(req, reached.get(_key(req)), now, token)
            if req.customer_id in unreadable
            else self._plan(
                req,
                program,
                step,
                customers.get(req.customer_id),
                contacts.get(req.customer_id),
                reached.get(_key(req)),
                now,
                token,
            )
            for req in reqs
        ]

    def _unreadable(
        self, req: SendRequest, goal_reached: datetime | None, now: datetime, token: str
    ) -> _Plan:
        """A customer whose item this version cannot read: their message alone fails; one
        who reached the goal leaves, as ever (that needs no customer item)."""
        if goal_reached is not None:
            return self._final(
                req, now, token, "exit", None, "goal_reached", goal_reached_at=iso(goal_reached)
            )
        return self._final(req, now, token, "failed", None, UNREADABLE_CUSTOMER)

    def _contended(self, req: SendRequest, now: datetime, token: str) -> _Plan:
        """Deferred: the customer's CONTACT item kept changing under the claim."""
        return self._final(req, now, token, "deferred", None, CONTENDED, contended(now))

    def _plan(
        self,
        req: SendRequest,
        program: Program,
        step: SendStep,
        customer: Customer | None,
        contact: Contacted | None,
        goal_reached: datetime | None,
        now: datetime,
        token: str,
    ) -> _Plan:
        """One customer's decision: a final answer (suppressed, deferred, exit, failed) or a
        rendered message, and the claim that records it."""
        cid = req.customer_id
        if customer is None:
            return self._final(req, now, token, "suppressed", None, "unknown_customer")
        if goal_reached is not None:
            return self._final(
                req, now, token, "exit", None, "goal_reached", goal_reached_at=iso(goal_reached)
            )
        if (moved := self._local_time_moved(req, customer, now)) is not None:
            decision = PolicyDecision(Outcome.DEFER, None, LOCAL_TIME_MOVED, moved)
            return self._final(req, now, token, "deferred", None, LOCAL_TIME_MOVED, decision)
        own = contact_key(req.execution, req.step)
        times, stale = contact_times(contact.sent if contact else {}, now, own)
        prefs = self.cfg.preferences
        topic = program.topic_of(step, prefs.default_topic)
        decision = decide(
            customer,
            [str(c) for c in step.channels],
            program.priority,
            times,
            now,
            self.cfg.contact,
            configured=frozenset(self.channels),
            blocked=lambda channel: self.carrier_block(customer, channel, now),
            topic=topic,
            topic_transactional=prefs.is_transactional(topic),
        )
        if decision.outcome == Outcome.SUPPRESS:
            return self._final(
                req,
                now,
                token,
                "suppressed",
                decision.channel,
                decision.reason,
                decision,
                topic=topic,
            )
        if decision.outcome == Outcome.DEFER:
            return self._final(
                req,
                now,
                token,
                "deferred",
                decision.channel,
                decision.reason,
                decision,
                topic=topic,
            )
        channel = decision.channel
        assert channel is not None and decision.address is not None
        coupon = self._coupon(program, step, customer, req, now)
        try:
            content = self._render(
                program, step, customer, channel, coupon, req.trigger, topic=topic
            )
        except RenderError as exc:
            logger.error(
                "template failed to render",
                program=program.id,
                step=step.id,
                channel=channel,
                reason=exc.reason,
            )
            return self._final(req, now, token, "failed", channel, f"render_error: {exc.reason}")
        message = OutboundMessage(
            customer_id=cid,
            program=program.id,
            step=step.id,
            execution=req.execution,
            channel=channel,
            # a webhook goes to the step's endpoint, not to an address of the customer's
            address=step.webhook if channel == "webhook" and step.webhook else decision.address,
            content=content,
            sms_type="Transactional" if step.sms_type == "transactional" else "Promotional",
            topic=topic,
            batch=req.run,
            template=step.template,
        )
        sending = self._data(
            req,
            now,
            "sending",
            channel,
            None,
            coupon=coupon.code if coupon else None,
            skipped=[f"{c}:{why}" for c, why in decision.skipped] or None,
            topic=topic,
        )
        claim = Claim(  # the send, as the claim notes it in CONTACT
            cid,
            sending,
            sent_at=iso(now),
            stale=tuple(stale),
            contact_exists=contact is not None,
            contact_version=contact.version if contact else 0,
            contact_key=own,
            execution=req.execution,
            owner=_owner(req),
            token=token,
        )
        return _Plan(req, claim, message=message, coupon=coupon)

    def carrier_block(self, customer: Customer, channel: str, now: datetime) -> str | None:
        """SMS to a customer who replied STOP: tell ingest, and do not use SMS."""
        return carrier_block(customer, channel, now, self.sms_opted_out, self.inbound)

    # -- delivery -----------------------------------------------------------------------
    def _render(
        self,
        program: Program,
        step: SendStep,
        customer: Customer,
        channel: str,
        coupon: Coupon | None,
        trigger: Mapping[str, Any] | None = None,
        *,
        topic: str | None = None,
    ) -> Any:
        context = message_context(
            program,
            step,
            customer,
            self.cfg,
            coupon=coupon,
            recommendations=self._recommendations(customer)
            if self.renderer.uses(program.id, step.template, "recommendations")
            else (),
            trigger=trigger,
            unsubscribe_url=self.unsubscribe.url(customer.customer_id, channel, topic=topic)
            if self.unsubscribe and channel == "email"
            else None,
        )
        return self.renderer.render(program.id, step.template, channel, customer.locale, context)

    def _dispatch(self, step: SendStep, plans: Sequence[_Plan], token: str, now: datetime) -> None:
        """Mark the claimed messages dispatched before any provider call; one another
        invocation of the same caller has re-claimed since is left to it."""
        keys = [_key(p.req) for p in plans if p.message is not None]
        if not keys:
            return
        lost = self.store.dispatch_messages(step.id, keys, token, iso(now))
        for p in plans:
            if p.message is not None and _key(p.req) in lost:
                p.message = None
                p.response = SendResponse(status="duplicate", reason="in_flight")

    def _deliver(
        self,
        program: Program,
        step: SendStep,
        plans: Sequence[_Plan],
        now: datetime,
        deadline: float,
    ) -> None:
        """Send the claimed messages (push batched) until ``deadline``, record the outcomes
        in one batch, then report dead push tokens."""
        messages = [p.message for p in plans if p.message is not None]
        outcomes = send_all(
            self.channels,
            messages,
            attempts=self.attempts,
            sleep=self.sleep,
            deadline=deadline,
            monotonic=self.monotonic,
        )
        records: list[tuple[str, str, dict[str, Any]]] = []
        coupons: list[IssuedCoupon] = []
        dead: list[tuple[OutboundMessage, tuple[InvalidAddressInfo, ...]]] = []
        for plan, message, result in zip(plans, messages, outcomes, strict=True):
            req, channel = plan.req, str(message.channel)
            if isinstance(result, OutOfTime):
                # surely not sent: deferred a minute (claimable then: decided and sent once)
                until = iso(now + OUT_OF_TIME_DEFERRAL)
                data = {**plan.claim.data, "status": "deferred", "reason": OUT_OF_TIME}
                data["until"] = until
                plan.response = SendResponse(
                    status="deferred", channel=channel, reason=OUT_OF_TIME, until=until
                )
            elif isinstance(result, DeliveryError):
                dead.append((message, result.invalid))
                logger.warning(
                    "send failed",
                    program=program.id,
                    step=step.id,
                    channel=channel,
                    reason=result.reason,
                    maybe_sent=result.maybe_sent,
                )
                data = {**plan.claim.data, "status": "failed", "reason": result.reason}
                plan.response = SendResponse(status="failed", channel=channel, reason=result.reason)
            else:
                dead.append((message, result.invalid_addresses))
                data = {
                    **plan.claim.data,
                    "status": "sent",
                    "sent_at": iso(now),
                    "provider_message_id": result.provider_message_id,
                    "attempts": result.attempts,
                }
                logger.info("message sent", program=program.id, step=step.id, channel=channel)
                if result.links_untracked:  # no click of it can be seen
                    data[LINKS_UNTRACKED] = True
                if result.links_over_limit:
                    logger.warning("LINE links sent untracked", program=program.id, step=step.id)
                plan.response = SendResponse(status="sent", channel=channel)
                if plan.coupon is not None:
                    coupons.append(issued(plan.coupon, req, now))
            records.append((req.customer_id, req.execution, data))
        if records:
            self._record(program, step, records, coupons)
        for message, invalid in dead:  # after the record: a refused report loses no outcome
            report_dead_devices(self.inbound, message, invalid, now)

    def _record(
        self,
        program: Program,
        step: SendStep,
        records: Sequence[tuple[str, str, dict[str, Any]]],
        coupons: Sequence[IssuedCoupon] = (),
    ) -> None:
        record_delivered(
            lambda: self.store.record_entries(step.id, records, coupons),
            program.id,
            step.id,
            records,
        )

    def _coupon(
        self, program: Program, step: SendStep, customer: Customer, req: SendRequest, now: datetime
    ) -> Coupon | None:
        if step.coupon is None:
            return None
        return issue_coupon(
            self.coupon_secret,
            program.id,
            customer.customer_id,
            req.execution,
            step.id,
            discount=step.coupon.discount,
            expires_at=coupon_expiry(
                now,
                step.coupon.valid_days,
                customer.time_zone,
                self.cfg.contact.default_time_zone,
            ),
        )

    def _recommendations(self, customer: Customer) -> list[dict[str, Any]]:
        """Products related to the last order (or the open cart) by the daily co-purchase
        model, never one the customer bought or has in the cart; then the model's best
        sellers; then the configured best sellers. One BatchGetItem."""
        cart = list(customer.cart.product_ids) if customer.cart else []
        exclude = purchased(customer) | set(cart)
        fallback: list[dict[str, Any]] = []
        related: dict[str, list[dict[str, Any]]] = {}
        if self.products is not None:
            sources = [*last_order_products(customer), *cart]
            found = self.products.get_products([*sources, BEST_SELLERS_KEY])
            related = {pid: list(found[pid].get("related", [])) for pid in sources if pid in found}
            fallback = list(found.get(BEST_SELLERS_KEY, {}).get("products", []))
        fallback += [p.model_dump() for p in self.cfg.catalog.best_sellers]
        return recommend(
            [*last_order_products(customer), *cart],
            exclude,
            related,
            fallback,
            self.cfg.catalog.recommendations,
        )

    # -- the ledger ---------------------------------------------------------------------
    @staticmethod
    def _data(
        req: SendRequest,
        now: datetime,
        status: str,
        channel: str | None,
        reason: str | None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A ledger entry: domain values only (the store adds its own keys)."""
        data = {
            "program": req.program,
            "step": req.step,
            "execution": req.execution,
            "cohort": req.cohort,
            "run": req.run,
            "status": status,
            "channel": channel,
            "reason": reason,
            "at": iso(now),
            **extra,
        }
        return {k: v for k, v in data.items() if v is not None}

    def _local_time_moved(
        self, req: SendRequest, customer: Customer, now: datetime
    ) -> datetime | None:
        """When a journey's first send waits for its local time in the customer's zone now,
        if that comes after the cohort's instant (fixed at entry in the zone they had then:
        one who moved west, Tokyo to London, would get the 10:00 message at 01:00); else
        None (the same zone, or one moved east: their local time has come, it goes now).
        Decided on the customer read the send makes anyway: no call of its own."""
        if req.not_before_local is None or req.local_date_at is None:
            return None
        at = local_time_on_date_of(customer, req.local_date_at, req.not_before_local, self.cfg)
        return at if at > req.local_date_at and at > now else None

    def _final(
        self,
        req: SendRequest,
        now: datetime,
        token: str,
        status: Status,
        channel: str | None,
        reason: str | None,
        decision: PolicyDecision | None = None,
        **detail: Any,
    ) -> _Plan:
        """A decision that sends nothing now (suppressed, deferred, exit, failed): its
        claim records it, with what its reason rests on (``detail``, the policy's)."""
        skipped = decision.skipped if decision else ()
        until = iso(decision.until) if decision and decision.until else None
        data = self._data(
            req,
            now,
            status,
            channel,
            reason,
            until=until,
            skipped=[f"{c}:{why}" for c, why in skipped] or None,
            **(dict(decision.detail or {}) if decision else {}),
            **detail,
        )
        response = SendResponse(status=status, until=until, channel=channel, reason=reason)
        claim = Claim(
            req.customer_id, data, execution=req.execution, owner=_owner(req), token=token
        )
        return _Plan(req, claim, response=response)

    @staticmethod
    def _duplicate(existing: Mapping[str, Any], owner: str) -> SendResponse:
        """A retried or duplicated invocation: answer what was decided, send nothing. Its
        own claim already dispatched (an earlier invocation crashed after it): the
        provider may have the message, it is never sent again; the reconciliation sweep
        settles the entry."""
        status = str(existing.get("status", ""))
        if status in {"sent", "suppressed", "failed", "exit"}:
            return SendResponse(
                status=status, channel=existing.get("channel"), reason=existing.get("reason")
            )
        if existing.get(CLAIMED_BY) == owner and existing.get(DISPATCHED_AT):
            logger.warning(
                "send outcome unknown: left to reconciliation",
                program=existing.get("program"),
                step=existing.get("step"),
                channel=existing.get("channel"),
            )
            return SendResponse(
                status="duplicate", channel=existing.get("channel"), reason="outcome_unknown"
            )
        return SendResponse(status="duplicate", channel=existing.get("channel"), reason="in_flight")


def record_delivered(
    write: Callable[[], None],
    source: str,
    step: str,
    records: Sequence[tuple[str, str, dict[str, Any]]],
) -> None:
    """Write the outcomes of messages the providers had (``write``; the store retries a
    failed write itself). A write that still fails does not fail the step: a retry could
    not send again (the entries are dispatched) and would not know the providers' ids.
    The entries stay ``sending``: the reconciliation sweep settles them, the stale-sending
    alarm fires; the ids are logged (no personal data) and ``LedgerWriteFailed`` counts
    them."""
    try:
        write()
    except Exception as exc:
        logger.error(
            "ledger write failed after delivery",
            program=source,
            step=step,
            **failure(exc),
            outcomes=[
                {
                    "customer_id": cid,
                    "execution": execution,
                    "status": data.get("status"),
                    "provider_message_id": data.get("provider_message_id"),
                }
                for cid, execution, data in records
            ],
        )
        count_ledger_write_failure(len(records))


def issued(coupon: Coupon, req: SendRequest, now: datetime) -> IssuedCoupon:
    """The coupon row of a sent message (the same key for the same send: a retried send
    re-derives the same code)."""
    return IssuedCoupon(
        customer_id=req.customer_id,
        code=coupon.code,
        program=req.program,
        execution=req.execution,
        step=req.step,
        discount=coupon.discount,
        issued_at=now,
        expires_at=coupon.expires_at,
    )


def _owner(req: SendRequest) -> str:
    """Who claims: the execution that carries the customer (a cohort's run), or the
    journey's own execution."""
    return req.run or req.execution


def _key(req: SendRequest) -> tuple[str, str]:
    return req.customer_id, req.execution


__all__ = [
    "DerivedEvent",
    "Inbound",
    "SendRequest",
    "SendResponse",
    "SendResult",
    "SendService",
    "claim_settled",
    "contact_key",
    "record_delivered",
]
