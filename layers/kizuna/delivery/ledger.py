"""The message ledger's send protocol, as plain rules (the adapter turns them into DynamoDB
conditions; the in-memory fake applies them as they are).

A send goes through three writes of its ledger entry (``MSG#<execution>#<step>``):

1. **claim** — the decision (``sending``, or a final one: suppressed, deferred, failed, exit),
   written once per (customer, execution, step). The claim names its *owner* (the Step
   Functions execution that carries the customer: a cohort's run, a journey's execution, a
   campaign batch's chunk) and a *token* (one invocation of it). A claim may be written
   again only over a ``deferred`` entry (the deferral ended), or over a ``sending`` entry of
   the same owner that no invocation has dispatched yet: a retried invocation (the first
   one's claim took effect but it got a 5xx, or it crashed) is the same caller and sends.
   The same holds for such an entry the reconciliation sweep settled meanwhile
   (``failed: not_dispatched``, never dispatched: no provider saw it), so a retry or a
   redrive that comes after the sweep (a campaign execution redriven the next day, a
   transactional caller retrying its key an hour later) still sends it, once.
   Another owner (a duplicated entry, another execution) finds a duplicate.
2. **dispatch** — ``dispatched_at`` set, on condition that the entry still carries the
   invocation's token and is ``sending``, just before the provider is called. From then on
   no claim is accepted: the provider may have the message, and email, SMS and push have
   no idempotency key, so a second call could deliver it twice. The write is idempotent for
   its token (a retried write that took effect succeeds again).
3. **record** — the outcome (``sent`` with the provider's message id, or ``failed``).

A ``sending`` entry carries ``sending_pk`` / ``sending_at`` (a sparse index,
:data:`SENDING_INDEX`): a crash or a ledger write that failed after dispatch leaves it
there, and the reconciliation sweep (:mod:`kizuna.services.reconcile`) settles entries
older than a few minutes with :func:`settle`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final, Literal

SENDING: Final = "sending"
DEFERRED: Final = "deferred"
FAILED: Final = "failed"
# the sweep's reason for a claim no invocation dispatched (the provider never saw it)
NOT_DISPATCHED: Final = "not_dispatched"
CLAIMED_BY: Final = "claimed_by"  # the execution that owns a claim
CLAIM_TOKEN: Final = "claim_token"  # noqa: S105 - the invocation that wrote it, no secret
DISPATCHED_AT: Final = "dispatched_at"  # set just before the provider is called
# a card the card channel keeps for the site: ``CARD#<created>#<id>`` (kizuna.delivery.cards)
CARD_SK: Final = "CARD#"

# The sparse index of entries at ``sending`` (activity table): spread over shards so a
# campaign's burst of claims does not heat one index partition.
SENDING_INDEX: Final = "sending"
SENDING_PK: Final = "sending_pk"
SENDING_SK: Final = "sending_at"
SENDING_SHARDS: Final = 16

# Feedback stamps of a message SES took at the API call and then never delivered: a reject
# (a virus) or a rendering failure. The entry keeps its outcome (``sent``: SES accepted it,
# as for a bounce) and says why it was not delivered in :data:`NOT_DELIVERED_REASON`.
NOT_DELIVERED_STAMPS: Final = ("reject_at", "rendering_failure_at")
NOT_DELIVERED_REASON: Final = "not_delivered_reason"
# A direct mail collected at send time and left out of the print file (the print-time check,
# kizuna.services.direct_mail): when, with the same ``not_delivered_reason``. Not evidence
# that a provider took anything.
WITHHELD_AT: Final = "withheld_at"
# every attribute that stamp's UpdateItem names (the keys, the ledger entry's channel in its
# condition, the stamp and the reason): the sweep's IAM grant allows these only
WITHHELD_STAMPS: Final = ("pk", "sk", "channel", WITHHELD_AT, NOT_DELIVERED_REASON)

# Feedback stamps (``<kind>_at``, :mod:`kizuna.services.feedback`) that prove the provider
# took the message (a bounce too: SES accepted it and tried; a reject or a rendering failure
# too: SES accepted the API call, so the message is never sent again, and the entry already
# says it was not delivered).
ACCEPTED_EVIDENCE: Final = (
    "delivery_at",
    "bounce_at",
    "complaint_at",
    "open_at",
    "click_at",
    *NOT_DELIVERED_STAMPS,
)

# A message sent with links none of which is tracked, so no click of it can be stamped (LINE,
# kizuna.delivery.channels.LinePush: links to hosts tracked_links.hosts does not declare,
# tel:, mailto: or line:// links, phone numbers, email or www. addresses written bare in a
# text, links in Flex, template or imagemap actions whatever their scheme, or a text over
# LINE's limit with them tracked; email,
# kizuna.delivery.channels.email_links_untracked: an HTML part whose links are mailto:,
# tel:, sms: or other links SES does not track, or web links written ses:no-track, the
# unsubscribe link aside). Never on a message with no link at all: nothing in it can be
# clicked, so its "no click" is a fact.
LINKS_UNTRACKED: Final = "links_untracked"

# What the reason of a send that failed and may have been delivered all the same ends with
# (kizuna.delivery.channels: a provider's 5xx after the request left, a read timeout, an
# error no channel expected): it is never sent again, and kizuna.delivery.why reads it as
# outcome unknown, never "not sent"
OUTCOME_UNKNOWN_NOTE: Final = "(outcome unknown)"

Settled = Literal["sent", "failed"]


def sending_shard(customer_id: str) -> str:
    digest = hashlib.sha256(customer_id.encode()).digest()
    return f"SENDING#{digest[0] % SENDING_SHARDS}"


def sending_keys(customer_id: str, at: str) -> dict[str, str]:
    """The sparse index's attributes of a ``sending`` entry claimed at ``at``."""
    return {SENDING_PK: sending_shard(customer_id), SENDING_SK: f"{at}#{customer_id}"}


def claimable(existing: Mapping[str, Any] | None, owner: str | None) -> bool:
    """Whether a claim by ``owner`` may be written over ``existing`` (the adapter's
    condition expression says the same)."""
    if existing is None or existing.get("status") == DEFERRED:
        return True
    return (
        owner is not None
        and (
            existing.get("status") == SENDING
            or (existing.get("status"), existing.get("reason")) == (FAILED, NOT_DISPATCHED)
        )
        and existing.get(CLAIMED_BY) == owner
        and not existing.get(DISPATCHED_AT)
    )


def own_dispatch(existing: Mapping[str, Any] | None, token: str) -> bool:
    """Whether the invocation holding ``token`` may dispatch the entry."""
    return (
        existing is not None
        and existing.get("status") == SENDING
        and existing.get(CLAIM_TOKEN) == token
    )


def settle(entry: Mapping[str, Any]) -> tuple[Settled, str]:
    """A stale ``sending`` entry's outcome, from what the ledger holds:

    - never dispatched: the provider never saw it -> ``failed: not_dispatched`` (written on
      condition that it is still not dispatched; its owner may claim it again);
    - the provider's message id, or feedback that the provider took it (delivery, bounce,
      complaint, open, click; a reject or a rendering failure too: SES accepted the call, and
      the entry's ``not_delivered_reason``, stamped with it, stays) -> ``sent: reconciled``;
    - dispatched with no evidence either way -> ``failed: outcome_unknown`` (alarmed: it
      may or may not have reached the customer, and it is never sent again)."""
    if not entry.get(DISPATCHED_AT):
        return FAILED, NOT_DISPATCHED
    if entry.get("provider_message_id") or any(entry.get(f) for f in ACCEPTED_EVIDENCE):
        return "sent", "reconciled"
    return "failed", "outcome_unknown"


def clicks_measurable(entry: Mapping[str, Any]) -> bool:
    """Could a click of this message show on its entry (``click_at``)? Not when it went
    with links none of which is tracked (:data:`LINKS_UNTRACKED`), unless a click was
    stamped all the same: its silence then says nothing about clicks. The rule is the same
    on every channel: a message with a tracked link (an email's web link: SES tracks them)
    is measured, and so is one with no link at all (it cannot be clicked: no click is
    known, not unknown). What a winner on clicks leaves out of its denominator, what an
    engagement branch on clicks does not read as not clicked, and what the segment report's
    response rate leaves out of its denominator.
    (Whether the message's *channel* reports clicks at all is the loaders' and
    :func:`kizuna.campaigns.engine.measured_on`'s question.)"""
    return bool(entry.get("click_at")) or not entry.get(LINKS_UNTRACKED)
