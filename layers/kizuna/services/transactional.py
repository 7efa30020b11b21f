"""Transactional messages ("template T to customer C now"), in the send function, over the
journeys' send path: the same store, renderer, channels, ledger protocol and contact policy
(:class:`kizuna.services.send.SendService`'s), with the policy's transactional rules.

Order: the template must exist (else ``rejected``: nothing written); the key is bound to the
request (a conditional put: the same key with another body is a ``conflict``); fresh customer
state; the contact policy, transactional (:func:`kizuna.delivery.policy.decide`: no opt-in
needed, an opt-out or a suppression refuses, no caps, no quiet hours); render; claim
``MSG#tx:<hash>#<template>`` (a retry finds the claim and answers its outcome); dispatch;
deliver; record. A transactional message is not noted in the CONTACT item: it does not use
up the marketing frequency caps.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from kizuna.delivery.channels import DeliveryError, OutboundMessage, report_dead_devices, send_all
from kizuna.delivery.ledger import CLAIMED_BY, DISPATCHED_AT, LINKS_UNTRACKED
from kizuna.delivery.policy import Outcome, decide
from kizuna.delivery.templates import RenderError, build_context
from kizuna.domain.customer import UNREADABLE_CUSTOMER, Customer, unreadable_of
from kizuna.domain.timestamps import epoch_seconds, iso
from kizuna.ports import Claim
from kizuna.runtime.observability import logger
from kizuna.services.contracts import TransactionalRequest, TransactionalResponse
from kizuna.services.send import SendService, record_delivered

# The templates' folder (``templates/transactional/<template>/<locale>/...``) and the
# ledger's ``program`` of every transactional message.
TRANSACTIONAL: Final = "transactional"
# How long a key stays bound to its request (the ledger entry itself stays: a retry of the
# same request after this still finds its claim and is answered from it).
IDEMPOTENCY_DAYS: Final = 30
FINAL: Final = frozenset({"sent", "suppressed", "failed"})


class KeyBinding(Protocol):
    """Where a key is bound to its request (:meth:`kizuna.adapters.dynamodb.DynamoStore.
    bind_request`)."""

    def bind_request(self, execution: str, request_hash: str, at: str, expires_at: int) -> str: ...


class TransactionalService:
    """``send``: the send function's :class:`SendService` (its store, renderer, channels,
    configuration and clock); ``keys``: the same activity table."""

    def __init__(self, send: SendService, keys: KeyBinding) -> None:
        self.send_service = send
        self.keys = keys

    def send(self, req: TransactionalRequest) -> TransactionalResponse:
        s = self.send_service
        deadline = s.monotonic() + s.delivery_budget  # as a journey's send invocation
        locales = s.renderer.locales(TRANSACTIONAL, req.template)
        if not locales:
            return TransactionalResponse(
                status="rejected", field="template", reason="no such transactional template"
            )
        if not any(
            not s.renderer.parts_missing(TRANSACTIONAL, req.template, channel, loc)
            for channel in req.channels
            for loc in locales
        ):
            return TransactionalResponse(
                status="rejected",
                field="channels",
                reason=f"the template has no parts for {', '.join(req.channels)}",
            )
        now = s.clock.now()
        expires = epoch_seconds(now + timedelta(days=IDEMPOTENCY_DAYS))
        bound = self.keys.bind_request(req.execution, req.request_hash, iso(now), expires)
        if bound != req.request_hash:
            return _conflict(req)
        customers, _, _ = s.store.read_send_state([req.customer_id], None)
        if req.customer_id in unreadable_of(customers):
            # never "unknown customer" for an item this version cannot read: failed, with
            # that reason, and nothing recorded, so the caller's retry with the same key
            # sends once the item is fixed
            logger.warning("transactional message not sent", reason=UNREADABLE_CUSTOMER)
            return TransactionalResponse(
                status="failed", message_id=req.execution, reason=UNREADABLE_CUSTOMER
            )
        customer = customers.get(req.customer_id)
        token = uuid.uuid4().hex
        entry, message = self._plan(req, customer, now)
        if customer is None:  # no ledger row under an id Kizuna does not hold (or erased)
            logger.info("transactional message not sent", status=entry["status"])
            return _answer(req, entry)
        claim = Claim(
            req.customer_id, entry, execution=req.execution, owner=req.execution, token=token
        )
        if s.store.claim_messages(req.execution, req.template, [claim]).duplicates:
            return self._replay(req)
        if message is None:
            logger.info("transactional message not sent", status=entry["status"])
            return _answer(req, entry)
        key = (req.customer_id, req.execution)
        if s.store.dispatch_messages(req.template, [key], token, iso(now)):
            return TransactionalResponse(
                status="in_progress", message_id=req.execution, reason="in_flight"
            )
        return self._deliver(req, entry, message, now, deadline)

    def _plan(
        self, req: TransactionalRequest, customer: Customer | None, now: datetime
    ) -> tuple[dict[str, Any], OutboundMessage | None]:
        """The ledger entry (``sending``, or final) and the rendered message to send."""
        s = self.send_service
        if customer is None:
            return _entry(req, now, "suppressed", None, "unknown_customer"), None
        topic = s.cfg.preferences.transactional_topic
        decision = decide(
            customer,
            list(req.channels),
            0,
            (),
            now,
            s.cfg.contact,
            configured=frozenset(s.channels),
            blocked=lambda channel: self._unusable(req, customer, channel, now),
            transactional=True,
            topic=topic,
            topic_transactional=True,
        )
        skipped = [f"{c}:{why}" for c, why in decision.skipped] or None
        if decision.outcome != Outcome.SEND:  # transactional: never deferred
            return _entry(
                req,
                now,
                "suppressed",
                decision.channel,
                decision.reason,
                skipped=skipped,
                topic=topic,
            ), None
        channel, address = decision.channel, decision.address
        assert channel is not None and address is not None
        context = build_context(
            customer,
            program=TRANSACTIONAL,
            step=req.template,
            loyalty_config=s.cfg.loyalty,
            extra={"data": dict(req.data)},
            locale=req.locale,
            default_locale=s.cfg.contact.default_locale,
            default_time_zone=s.cfg.contact.default_time_zone,
            custom=s.cfg.custom,
        )
        try:
            content = s.renderer.render(
                TRANSACTIONAL, req.template, channel, req.locale or customer.locale, context
            )
        except RenderError as exc:
            logger.error("transactional template failed", template=req.template, reason=exc.reason)
            reason = f"render_error: {exc.reason}"
            return _entry(req, now, "failed", channel, reason, skipped=skipped, topic=topic), None
        message = OutboundMessage(
            customer_id=customer.customer_id,
            program=TRANSACTIONAL,
            step=req.template,
            execution=req.execution,
            channel=channel,
            address=address,
            content=content,
            sms_type="Transactional",
            topic=topic,
            template=req.template,  # a direct mail's print file is per template
            transactional=True,
        )
        return _entry(req, now, "sending", channel, None, skipped=skipped, topic=topic), message

    def _unusable(
        self, req: TransactionalRequest, customer: Customer, channel: str, now: datetime
    ) -> str | None:
        """The last checks of a channel the policy would use: the template has its parts in
        the customer's locale (else the next channel is tried), the carrier's opt-out list."""
        s = self.send_service
        try:
            loc = s.renderer.resolve_locale(
                TRANSACTIONAL, req.template, req.locale or customer.locale
            )
        except RenderError:
            return "no_template"
        if s.renderer.parts_missing(TRANSACTIONAL, req.template, channel, loc):
            return "no_template"
        return s.carrier_block(customer, channel, now)

    def _deliver(
        self,
        req: TransactionalRequest,
        entry: dict[str, Any],
        message: OutboundMessage,
        now: datetime,
        deadline: float,
    ) -> TransactionalResponse:
        s = self.send_service
        (result,) = send_all(
            s.channels,
            [message],
            attempts=s.attempts,
            sleep=s.sleep,
            deadline=deadline,
            monotonic=s.monotonic,
        )
        if isinstance(result, DeliveryError):
            invalid = result.invalid
            logger.warning(
                "transactional send failed", channel=str(message.channel), reason=result.reason
            )
            final = {**entry, "status": "failed", "reason": result.reason}
        else:
            invalid = result.invalid_addresses
            final = {
                **entry,
                "status": "sent",
                "sent_at": iso(now),
                "provider_message_id": result.provider_message_id,
                "attempts": result.attempts,
            }
            logger.info("transactional message sent", channel=str(message.channel))
            if result.links_untracked:  # no click of it can be seen
                final[LINKS_UNTRACKED] = True
            if result.links_over_limit:
                logger.warning("LINE links sent untracked", template=req.template)
        records = [(req.customer_id, req.execution, final)]
        record_delivered(
            lambda: s.store.record_entries(req.template, records),
            TRANSACTIONAL,
            req.template,
            records,
        )
        report_dead_devices(s.inbound, message, invalid, now)  # after the record
        return _answer(req, final)

    def _replay(self, req: TransactionalRequest) -> TransactionalResponse:
        """The key's message was claimed before: its outcome, sending nothing."""
        s = self.send_service
        key = (req.customer_id, req.execution)
        existing = s.store.ledger_entries_of([key], req.template).get(key, {})
        if existing.get("request_hash") not in (None, req.request_hash):
            return _conflict(req)
        if str(existing.get("status")) in FINAL:
            return _answer(req, existing).model_copy(update={"replayed": True})
        reason = "outcome_unknown" if existing.get(DISPATCHED_AT) else "in_flight"
        if reason == "outcome_unknown" and existing.get(CLAIMED_BY) == req.execution:
            logger.warning("transactional outcome unknown: left to reconciliation")
        return TransactionalResponse(status="in_progress", message_id=req.execution, reason=reason)


def _entry(
    req: TransactionalRequest,
    now: datetime,
    status: str,
    channel: str | None,
    reason: str | None,
    **extra: Any,
) -> dict[str, Any]:
    """A transactional ledger entry (domain values only: no template data)."""
    data = {
        "program": TRANSACTIONAL,
        "source": TRANSACTIONAL,
        "step": req.template,
        "template": req.template,
        "execution": req.execution,
        "request_hash": req.request_hash,
        "caller": req.caller,
        "status": status,
        "channel": channel,
        "reason": reason,
        "at": iso(now),
        **extra,
    }
    return {k: v for k, v in data.items() if v is not None}


def _answer(req: TransactionalRequest, entry: Mapping[str, Any]) -> TransactionalResponse:
    """The answer a ledger entry gives (the first request's and every retry's)."""
    skipped = [
        {"channel": channel, "reason": why}
        for channel, _, why in (str(s).partition(":") for s in entry.get("skipped") or ())
    ]
    return TransactionalResponse(
        status=entry["status"],
        message_id=req.execution,
        channel=entry.get("channel"),
        provider_message_id=entry.get("provider_message_id"),
        reason=entry.get("reason"),
        skipped=skipped,
        at=entry.get("at"),
    )


def _conflict(req: TransactionalRequest) -> TransactionalResponse:
    return TransactionalResponse(
        status="conflict",
        message_id=req.execution,
        reason="this Idempotency-Key was used with another request",
    )
