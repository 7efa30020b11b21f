"""The campaign function's work: one method per action of the campaign state machine.

prepare (is the campaign scheduled; start the occurrence once) -> freeze (one parallel-scan
segment of the audience into manifest objects) -> plan (the next phase's chunks, paced) ->
send_batch (hundreds of recipients: the contact policy, render, claim once, deliver, record)
-> choose_winner (after the test pool's wait) -> complete (the counts, ``campaign.completed``).

Every AWS call is batched, the providers' too where they can: one read of the state, one
object, one BatchGetItem per 50 recipients (customers and their CONTACT items together),
claims in TransactWriteItems, push in SendMessages calls of up to 100 devices (email, SMS and
LINE: one call a message; a planned SMS also one CheckIfPhoneNumberIsOptedOut, the carrier's
opt-out list as for journeys), outcomes in BatchWriteItem, one TransactWriteItems of the
counters (with the batch's marker: counted once however often the batch is retried; a retried
batch also reads, in one BatchGetItem, the entries an earlier invocation of it settled, to
count them by their outcome).
"""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from kizuna.campaigns.assign import TEST_POOL, assign, winner_decided_shown
from kizuna.campaigns.engine import (
    CHUNK_SIZE,
    SEND_STEP,
    STOPPED,
    ArmResult,
    CampaignPaused,
    ManifestMissing,
    Member,
    RecipientPlan,
    WinnerChoice,
    breaker_reason,
    chunk_of,
    converted,
    deferred_key,
    execution_of,
    group_members,
    in_audience,
    list_key,
    measured,
    next_look,
    next_step,
    occurrence_prefix,
    phase_prefix,
    pick_winner,
    plan_recipient,
    sequential_decision,
    sequential_winner,
    test_sent_at,
    topic_of,
)
from kizuna.campaigns.loader import one_off
from kizuna.campaigns.model import Campaign, due_at, occurrence_id
from kizuna.delivery.channels import (
    Channel,
    DeliveryError,
    InvalidAddressInfo,
    OutboundMessage,
    OutOfTime,
    report_dead_devices,
    send_all,
)
from kizuna.delivery.control import control_for
from kizuna.delivery.coupons import Coupon, IssuedCoupon, coupon_expiry, issue_coupon
from kizuna.delivery.ledger import CLAIMED_BY, LINKS_UNTRACKED
from kizuna.delivery.policy import OUT_OF_TIME, OUT_OF_TIME_DEFERRAL, contended
from kizuna.delivery.templates import FilesRenderer, Renderer, RenderError, build_context
from kizuna.delivery.unsubscribe import UnsubscribeLinks
from kizuna.domain.customer import Customer, unreadable_of
from kizuna.domain.timestamps import iso, parse_time
from kizuna.events.derived import CampaignCompleted, CampaignEvent
from kizuna.ports import (
    CampaignDefinitions,
    CampaignEventSink,
    CampaignRecipients,
    Claim,
    DefinitionConflict,
    ExecutionStatuses,
    Inbound,
    Manifest,
    ManifestNotDeleted,
    StoredCampaign,
)
from kizuna.runtime.clock import Clock
from kizuna.runtime.config import KizunaConfig
from kizuna.runtime.observability import (
    CHANNEL_DIMENSION,
    NO_CHANNEL,
    SEND_FAILED_METRIC,
    count,
    logger,
)
from kizuna.runtime.settings import CAMPAIGN_MANIFEST_EXPIRY_DAYS
from kizuna.services.contracts import (
    CampaignRequest,
    Chunk,
    CompleteRequest,
    FreezeRequest,
    PlanRequest,
    PrepareRequest,
    SendBatchRequest,
    WinnerRequest,
)
from kizuna.services.send import carrier_block, claim_settled, record_delivered

# Seconds of a send_batch invocation (from its start) in which provider calls may start: the
# campaign function stops at 5 minutes (infra CAMPAIGN_TIMEOUT); what is left records the
# outcomes. A recipient not started by then is failed "out of time", not left outcome_unknown.
DELIVERY_BUDGET = 240.0
OUTCOMES = ("holdout", "sent", "suppressed", "deferred", "failed", "duplicate")
# The outcomes a ledger entry of a campaign batch settles at (what a retry counts them as).
SETTLED = frozenset(("holdout", "sent", "suppressed", "failed"))
# Reads of the definition Prepare makes when it is written again each time between the read
# and the occurrence's start; then the task fails and the state machine retries it.
START_READS = 3


def _stored_p(p_value: float) -> float:
    """A look's p-value as the occurrence keeps it (DynamoDB numbers stop at 1e-130): 0
    below 1e-100 (far past any alpha: that look decided), else exactly."""
    return 0.0 if p_value < 1e-100 else p_value


def campaign_context(
    campaign: Campaign,
    customer: Customer,
    cfg: KizunaConfig,
    *,
    coupon: Coupon | None,
    unsubscribe_url: str | None,
) -> dict[str, Any]:
    """What a campaign's templates get (``kizuna campaigns validate`` and a dry run render
    with it too): :func:`build_context` and the ``campaign``'s id and name."""
    return build_context(
        customer,
        program=campaign.id,
        step=SEND_STEP,
        loyalty_config=cfg.loyalty,
        coupon=coupon,
        extra={"campaign": {"id": campaign.id, "name": campaign.name}},
        unsubscribe_url=unsubscribe_url,
        default_locale=cfg.contact.default_locale,
        default_time_zone=cfg.contact.default_time_zone,
        custom=cfg.custom,
    )


@dataclass
class _Recipient:
    """One recipient of a batch on its way: the plan, the ledger entry, the message."""

    member: Member
    plan: RecipientPlan
    data: dict[str, Any]
    message: OutboundMessage | None = None
    claim: Claim | None = None
    coupon: IssuedCoupon | None = None  # recorded only if the message is sent


@dataclass
class _Batch:
    recipients: list[_Recipient] = field(default_factory=list)
    # members Kizuna no longer holds (erased since the audience was frozen): counted as
    # suppressed, with no ledger row under their id
    unknown: int = 0
    # members claimed whose message the invocation had no time left to send: deferred to
    # ``late_until`` after the outcomes are recorded (the next pass)
    late: list[Member] = field(default_factory=list)
    late_until: datetime | None = None

    def deferred(self) -> dict[datetime, list[Member]]:
        """The members deferred, by the instant they are deferred to (the next pass)."""
        found: dict[datetime, list[Member]] = {}
        for r in self.recipients:
            if r.plan.status == "deferred" and r.plan.until is not None:
                found.setdefault(r.plan.until, []).append(r.member)
        return found


class CampaignService:
    def __init__(
        self,
        campaigns: CampaignDefinitions,
        recipients: CampaignRecipients,
        manifest: Manifest,
        channels: Mapping[str, Channel],
        events: CampaignEventSink,
        cfg: KizunaConfig,
        clock: Clock,
        *,
        templates_root: Path | str | None = None,
        segments: Mapping[str, Mapping[str, Any]] | None = None,
        coupon_secret: bytes = b"",
        unsubscribe: UnsubscribeLinks | None = None,
        chunk_size: int = CHUNK_SIZE,
        scan_segments: int | None = None,
        attempts: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        inbound: Inbound | None = None,
        sms_opted_out: Callable[[str], bool] | None = None,
        delivery_budget: float = DELIVERY_BUDGET,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.campaigns = campaigns
        self.recipients = recipients
        self.manifest = manifest
        self.channels = dict(channels)
        self.events = events
        self.cfg = cfg
        self.clock = clock
        self.templates_root = templates_root
        self.segments = dict(segments or {})
        self.coupon_secret = coupon_secret
        self.unsubscribe = unsubscribe
        self.chunk_size = chunk_size
        self.scan_segments = scan_segments or cfg.scoring.scan_segments
        self.attempts = attempts
        self.sleep = sleep
        self.delivery_budget = delivery_budget
        self.monotonic = monotonic
        # where dead push tokens (device.unregistered) and STOP replies found at send
        # (channel.suppressed) are reported
        self.inbound = inbound
        # the carrier's opt-out list (SNS CheckIfPhoneNumberIsOptedOut), as for journeys
        self.sms_opted_out = sms_opted_out
        self._renderers: dict[tuple[str, int], Renderer] = {}

    def handle(self, request: CampaignRequest) -> dict[str, Any]:
        req = request.root
        match req:
            case PrepareRequest():
                return self.prepare(req)
            case FreezeRequest():
                return self.freeze(req)
            case PlanRequest():
                return self.plan(req)
            case SendBatchRequest():
                return self.send_batch(req)
            case WinnerRequest():
                return self.choose_winner(req)
            case CompleteRequest():
                return self.complete(req)
        raise AssertionError(f"unknown action {req!r}")  # pragma: no cover

    # -- prepare and freeze ---------------------------------------------------------------
    def prepare(self, req: PrepareRequest) -> dict[str, Any]:
        """Start the occurrence of a scheduled campaign once: a retry of the execution that
        started it runs it (its first attempt may have failed after the write), another
        execution (a duplicated delivery of the schedule) does not run it alongside, and
        one already finished does not run again. An occurrence started without an
        execution noted (before it was) runs while it is running, as it did then."""
        occurrence = occurrence_id(req.scheduled_time)
        stored, started = self._start(req, occurrence, self.clock.now())
        if stored is None or stored.status != "scheduled":
            return {"run": False, "reason": stored.status if stored else "unknown_campaign"}
        if not started:
            occ = self.campaigns.get_occurrence(req.campaign_id, occurrence) or {}
            if occ.get("status") != "running":
                return {"run": False, "reason": f"occurrence {occ.get('status', 'unknown')}"}
            if occ.get("execution") and occ.get("execution") != req.execution:
                logger.warning(
                    "campaign occurrence running in another execution: not run twice",
                    campaign=req.campaign_id,
                    occurrence=occurrence,
                    running=occ.get("execution"),
                )
                return {"run": False, "reason": "occurrence running in another execution"}
        total = 1 if stored.campaign.audience.customer_list else self.scan_segments
        logger.info("campaign occurrence", campaign=req.campaign_id, occurrence=occurrence)
        return {
            "run": True,
            "campaign_id": req.campaign_id,
            "occurrence": occurrence,
            "segments": list(range(total)),
            "total_segments": total,
        }

    def _start(
        self, req: PrepareRequest, occurrence: str, now: datetime
    ) -> tuple[StoredCampaign | None, bool]:
        """The definition read, and whether the occurrence was started on it (False: it
        exists, or the campaign is not scheduled). The start is conditioned on the
        definition still being the version read, and counts itself on it: a write changing
        the experiment that read the definition before it is refused, and then sees the
        occurrence (``CampaignAdmin.save``). A definition written between the read and the
        start is read again, up to :data:`START_READS` times; then the task fails, and the
        state machine retries it."""
        reads = 1
        while True:
            stored = self.campaigns.get_definition(req.campaign_id)
            if stored is None or stored.status != "scheduled":
                return stored, False
            try:
                return stored, self.campaigns.start_occurrence(
                    req.campaign_id,
                    occurrence,
                    req.scheduled_time,
                    now,
                    req.execution,
                    stored.version,
                )
            except DefinitionConflict:
                if reads == START_READS:
                    raise
                logger.info(
                    "campaign definition written as its occurrence started: read again",
                    campaign=req.campaign_id,
                    occurrence=occurrence,
                )
                reads += 1

    def freeze(self, req: FreezeRequest) -> dict[str, Any]:
        """One scan segment of the audience into manifest objects, by pool and due instant."""
        stored, occ = self.campaigns.get_state(req.campaign_id, req.occurrence)
        if stored is None or occ is None or occ.get("completed_at"):
            # ended (a redrive after a close): its audience is not written again
            return {"segment": req.segment, "members": 0}
        campaign, now = stored.campaign, self.clock.now()
        scheduled = parse_time(str(occ["scheduled_time"]))
        members: list[tuple[Member, str, datetime]] = []
        control = control_for(self.cfg, [topic_of(campaign, self.cfg)])
        for customer in self._audience_source(campaign, req.segment, req.total_segments):
            if not in_audience(campaign, customer, now, self.cfg, self.segments):
                continue
            arm = assign(campaign, customer.customer_id, control)
            zone = self.cfg.contact.default_time_zone
            due = due_at(campaign, scheduled, customer.time_zone, zone)
            members.append((Member(customer.customer_id, arm.arm), arm.pool, due))
        prefix = occurrence_prefix(req.campaign_id, req.occurrence)
        for key, group in group_members(members, req.segment, self.chunk_size).items():
            self.manifest.put_lines(prefix + key, [m.line() for m in group])
        self.campaigns.add_counts(
            req.campaign_id, req.occurrence, {"audience": len(members)}, once=f"seg{req.segment}"
        )
        return {"segment": req.segment, "members": len(members)}

    def _audience_source(
        self, campaign: Campaign, segment: int, total_segments: int
    ) -> Iterable[Customer]:
        if not campaign.audience.customer_list:
            return self.recipients.scan_customers(segment, total_segments)
        if segment != 0:
            return []
        raw = self.manifest.get(list_key(campaign.id)) or b""
        rows = csv.DictReader(io.StringIO(raw.decode("utf-8-sig")))
        ids = list(dict.fromkeys(r["customer_id"].strip() for r in rows if r.get("customer_id")))
        found = self.recipients.get_customers(ids, unreadable_ok=True)
        # unknown or erased: skipped; an item this version cannot read: skipped (logged)
        return [found[cid] for cid in ids if cid in found]

    # -- plan ---------------------------------------------------------------------------------
    def plan(self, req: PlanRequest) -> dict[str, Any]:
        stored, occ = self.campaigns.get_state(req.campaign_id, req.occurrence)
        status = occ.get("status") if occ else None
        if stored is None or stored.status == "cancelled":
            status = "cancelled"
        prefix = occurrence_prefix(req.campaign_id, req.occurrence)

        def list_keys(relative: str) -> list[str]:
            return [k.removeprefix(prefix) for k in self.manifest.keys(prefix + relative)]

        campaign = stored.campaign if stored else None
        if campaign is None:
            return {"phase": "done", "pass": 0, "chunks": []}
        if status == "running":
            self._chunks_kept(occ)
            if stored is not None and occ is not None and self._breaker(stored, req, occ):
                status = "stopped"  # the last batches of a phase, ended together
        pending = occ.get("next_look_at") if occ and not occ.get("winner") else None
        step = next_step(
            campaign,
            req.after,
            status,
            list_keys,
            self.chunk_size,
            pending_look=parse_time(str(pending)) if pending else None,
        )
        return step.as_json()

    def _chunks_kept(self, occ: Mapping[str, Any] | None) -> None:
        """Plan and ChooseWinner list the chunks: a missing one would read as nobody. Past
        the lifecycle rule's expiry (only a redriven execution gets there: the state machine
        times out before) some may be gone, so the occurrence does not go on."""
        started = (occ or {}).get("started_at")
        expiry = timedelta(days=CAMPAIGN_MANIFEST_EXPIRY_DAYS)
        if started and self.clock.now() >= parse_time(str(started)) + expiry:
            raise ManifestMissing(
                f"the occurrence started over {CAMPAIGN_MANIFEST_EXPIRY_DAYS} days ago: "
                "its chunks may have expired"
            )

    # -- send a batch ------------------------------------------------------------------------
    def send_batch(self, req: SendBatchRequest) -> dict[str, Any]:
        stored, occ = self.campaigns.get_state(req.campaign_id, req.occurrence)
        if occ is not None and (occ.get("status") == "done" or occ.get("completed_at")):
            # a late duplicate (or a redrive after a close) once the occurrence ended and its
            # chunks were deleted: nothing to read (S3 may answer a missing key with 403 to a
            # role that may not list it), nothing to wait for if the campaign is paused
            return {"skipped": 0}
        if stored is not None and stored.status == "paused":
            raise CampaignPaused(f"campaign {req.campaign_id} is paused")
        prefix = occurrence_prefix(req.campaign_id, req.occurrence)
        lines = self.manifest.get_lines(prefix + req.chunk.key)
        members = [Member.of(line) for line in lines or []]
        if stored is None or occ is None or stored.status == "cancelled":
            return {"skipped": len(members)}
        if occ.get("status") in STOPPED:
            return {"skipped": len(members)}
        if self._breaker(stored, req, occ):
            # the counters as read passed the threshold (batches that ended together each
            # judged their own counts on what they read before: the next batch judges all)
            return {"skipped": len(members)}
        if lines is None:
            # a chunk Plan listed is gone while the occurrence runs (an execution redriven
            # after the lifecycle rule expired it): fail loudly, never "sent to nobody"
            raise ManifestMissing(f"chunk {req.chunk.key} of a running occurrence is missing")
        deadline = self.monotonic() + self.delivery_budget
        token = uuid.uuid4().hex  # this invocation: its claims and dispatches
        batch = _Batch()
        batch.recipients = self._decide(stored, occ, req, members, token, batch)
        execution = execution_of(req.campaign_id, req.occurrence)
        duplicates = claim_settled(
            lambda claims: self.recipients.claim_messages(execution, SEND_STEP, claims),
            [r.claim for r in batch.recipients if r.claim is not None],
            lambda keys, last: self._decide_again(stored, occ, req, batch, keys, last, token),
        )
        # (after the claims: a deferred entry is claimable again, by a retry of this batch)
        for until, deferred in sorted(batch.deferred().items()):
            key = deferred_key(req.chunk.pass_number + 1, until, req.chunk.key)
            self.manifest.put_lines(prefix + key, [m.line() for m in deferred])
        duplicates |= self._dispatch(batch, duplicates, execution, token)
        counts = self._deliver(batch, duplicates, execution, deadline)
        if batch.late and batch.late_until is not None:
            # after their deferred entries are recorded: a crash between the two leaves them
            # deferred, claimable, and the retried batch sends them
            source = req.chunk.key.removesuffix(".jsonl") + "-late.jsonl"
            key = deferred_key(req.chunk.pass_number + 1, batch.late_until, source)
            self.manifest.put_lines(prefix + key, [m.line() for m in batch.late])
        # the answer (and the metrics) say what this invocation did; the counters count the
        # recipients an earlier invocation of the batch settled by their outcome
        counted = Counter(counts)
        settled = self._settled_before(duplicates, execution, req.chunk)
        counted.update(settled.values())
        counted["duplicate"] -= len(settled)
        added = self.campaigns.add_batch_counts(
            req.campaign_id, req.occurrence, req.chunk.key, +counted, token, self.clock.now()
        )
        # the counters as read at the start, and this batch's own if it added them (False:
        # an earlier invocation of the batch did, before that read)
        self._breaker(
            stored,
            req,
            {k: int(occ.get(k, 0)) + (counted[k] if added else 0) for k in OUTCOMES},
        )
        return {"chunk": req.chunk.key, **counts}

    def _breaker(
        self, stored: StoredCampaign, req: SendBatchRequest | PlanRequest, counts: Mapping[str, Any]
    ) -> bool:
        """Stop the occurrence if ``counts`` passed the campaign's ``stop_on_failures``
        threshold; whether they did."""
        reason = breaker_reason(stored.campaign, counts)
        if reason is None:
            return False
        if self.campaigns.stop_occurrence(
            req.campaign_id, req.occurrence, reason, self.clock.now()
        ):
            logger.warning("campaign occurrence stopped", campaign=req.campaign_id, reason=reason)
        return True

    def _settled_before(
        self, duplicates: set[tuple[str, str]], execution: str, chunk: Chunk
    ) -> dict[str, str]:
        """A retried batch's recipients an earlier invocation of it claimed and settled, by
        their recorded outcome: the counters count them as that, not as duplicates (if that
        invocation failed before its counts were added, they are counted once, by this one).
        A read only when some claim was a duplicate (on a first attempt, next to never); an
        entry still ``sending`` (dispatched, its outcome unknown until the sweep) stays a
        duplicate. The batch's own: an entry of its phase and pass (a recipient is in one
        chunk of a pass), and one still a claim names the chunk (a recorded outcome no
        longer holds the claim's ``claimed_by``)."""
        if not duplicates:
            return {}
        ids = [cid for cid, ex in duplicates if ex == execution]
        entries = self.recipients.ledger_entries(ids, execution, SEND_STEP)
        return {
            cid: str(entry["status"])
            for cid, entry in entries.items()
            if entry.get("status") in SETTLED
            and (entry.get("phase"), int(entry.get("pass", -1))) == (chunk.phase, chunk.pass_number)
            and entry.get(CLAIMED_BY, chunk.key) == chunk.key
        }

    def _decide(
        self,
        stored: StoredCampaign,
        occ: Mapping[str, Any],
        req: SendBatchRequest,
        members: Iterable[Member],
        token: str,
        batch: _Batch,
    ) -> list[_Recipient]:
        """Every recipient's plan, ledger entry and (for a send) rendered message, on one
        fresh read of the customers and their CONTACT items (a customer Kizuna no longer
        holds: counted in ``batch.unknown``, no recipient)."""
        campaign, now = stored.campaign, self.clock.now()
        members = list(members)
        customers, contacts = self.recipients.read_recipients([m.customer_id for m in members])
        renderer = self._renderer(stored)
        winner = occ.get("winner")
        recipients: list[_Recipient] = []
        unreadable = unreadable_of(customers)
        for member in members:
            customer = customers.get(member.customer_id)
            # an item this version cannot read: held out as ever, else that recipient's
            # message alone fails (failed: unreadable_customer)
            lost = member.customer_id in unreadable
            if customer is None and not lost:
                batch.unknown += 1
                continue
            contact = contacts.get(member.customer_id)
            plan = plan_recipient(
                campaign,
                member,
                customer,
                contact.sent if contact else {},
                now,
                self.cfg,
                winner,
                frozenset(self.channels),
                blocked=self._carrier_block(customer, now) if customer else None,
                own=execution_of(campaign.id, req.occurrence),
                unreadable=lost,
            )
            recipient = _Recipient(member, plan, self._entry(req, member, plan, now))
            if plan.status == "send" and customer is not None:
                self._render(recipient, campaign, customer, renderer, req, now)
            recipient.claim = Claim(
                member.customer_id,
                recipient.data,
                sent_at=iso(now) if recipient.message is not None else None,
                stale=plan.stale,
                contact_exists=contact is not None,
                contact_version=contact.version if contact else 0,
                owner=req.chunk.key,  # a retried batch is the same caller; another is not
                token=token,
            )
            recipients.append(recipient)
        return recipients

    def _decide_again(
        self,
        stored: StoredCampaign,
        occ: Mapping[str, Any],
        req: SendBatchRequest,
        batch: _Batch,
        keys: set[tuple[str, str]],
        last: bool,
        token: str,
    ) -> list[Claim]:
        """The recipients whose claim found their CONTACT item changed since the read,
        decided again on a fresh read (``last``: deferred, the item kept changing); their
        new claims (:func:`kizuna.services.send.claim_settled`)."""
        ids = {cid for cid, _ in keys}
        again = [r for r in batch.recipients if r.member.customer_id in ids]
        fresh = (
            [self._contended(req, r, token) for r in again]
            if last
            else self._decide(stored, occ, req, (r.member for r in again), token, batch)
        )
        by_id = {r.member.customer_id: r for r in fresh}
        batch.recipients = [
            by_id.get(r.member.customer_id, r)
            for r in batch.recipients
            if r.member.customer_id not in ids or r.member.customer_id in by_id
        ]
        return [r.claim for r in fresh if r.claim is not None]

    def _contended(self, req: SendBatchRequest, recipient: _Recipient, token: str) -> _Recipient:
        """Deferred: the recipient's CONTACT item kept changing under the claim."""
        now = self.clock.now()
        decision = contended(now)
        plan = replace(
            recipient.plan,
            status="deferred",
            channel=None,
            reason=decision.reason,
            until=decision.until,
            address=None,
            skipped=(),
            detail=None,
        )
        member = recipient.member
        data = self._entry(req, member, plan, now)
        claim = Claim(member.customer_id, data, owner=req.chunk.key, token=token)
        return _Recipient(member, plan, data, claim=claim)

    def _carrier_block(self, customer: Customer, now: datetime) -> Callable[[str], str | None]:
        """The contact policy's last check for one recipient: the carrier's opt-out list
        for SMS, asked only when the policy would choose SMS (as for journeys)."""

        def block(channel: str) -> str | None:
            return carrier_block(customer, channel, now, self.sms_opted_out, self.inbound)

        return block

    @staticmethod
    def _entry(
        req: SendBatchRequest, member: Member, plan: RecipientPlan, now: datetime
    ) -> dict[str, Any]:
        """The ledger entry (domain values only; the store adds its keys)."""
        status = "sending" if plan.status == "send" else plan.status
        entry = {
            "program": req.campaign_id,
            "source": "campaign",
            "campaign": req.campaign_id,
            "occurrence": req.occurrence,
            "execution": execution_of(req.campaign_id, req.occurrence),
            "step": SEND_STEP,
            "arm": member.arm,
            "variant": plan.variant,
            "template": plan.template,
            "phase": req.chunk.phase,
            "pass": req.chunk.pass_number,
            "status": status,
            "channel": plan.channel,
            "reason": plan.reason,
            "until": iso(plan.until) if plan.until else None,
            "skipped": [f"{c}:{why}" for c, why in plan.skipped] or None,
            "topic": plan.topic,
            "at": iso(now),
            **(plan.detail or {}),
        }
        return {k: v for k, v in entry.items() if v is not None}

    def _render(
        self,
        recipient: _Recipient,
        campaign: Campaign,
        customer: Customer,
        renderer: Renderer,
        req: SendBatchRequest,
        now: datetime,
    ) -> None:
        """Render the recipient's message; a failure is recorded as theirs alone."""
        plan = recipient.plan
        assert plan.channel is not None and plan.address is not None and plan.template
        execution = execution_of(campaign.id, req.occurrence)
        coupon = None
        if campaign.coupon is not None:
            coupon = issue_coupon(
                self.coupon_secret,
                campaign.id,
                customer.customer_id,
                execution,
                SEND_STEP,
                discount=campaign.coupon.discount,
                expires_at=coupon_expiry(
                    now,
                    campaign.coupon.valid_days,
                    customer.time_zone,
                    self.cfg.contact.default_time_zone,
                ),
            )
            recipient.data["coupon"] = coupon.code
            recipient.coupon = IssuedCoupon(
                customer_id=customer.customer_id,
                code=coupon.code,
                program=campaign.id,
                execution=execution,
                step=SEND_STEP,
                discount=coupon.discount,
                issued_at=now,
                expires_at=coupon.expires_at,
            )
        try:
            context = campaign_context(
                campaign,
                customer,
                self.cfg,
                coupon=coupon,
                unsubscribe_url=self.unsubscribe.url(
                    customer.customer_id, plan.channel, topic=plan.topic
                )
                if self.unsubscribe and plan.channel == "email"
                else None,
            )
            content = renderer.render(
                campaign.id, plan.template, plan.channel, customer.locale, context
            )
        except RenderError as exc:
            logger.error("campaign template failed", campaign=campaign.id, reason=exc.reason)
            recipient.data.update(status="failed", reason=f"render_error: {exc.reason}")
            return
        recipient.message = OutboundMessage(
            customer_id=customer.customer_id,
            program=campaign.id,
            step=SEND_STEP,
            execution=execution,
            channel=plan.channel,
            # a webhook goes to the campaign's endpoint, not to an address of the customer's
            address=campaign.webhook
            if plan.channel == "webhook" and campaign.webhook
            else plan.address,
            content=content,
            sms_type="Transactional" if campaign.sms_type == "transactional" else "Promotional",
            template=plan.template,
            topic=plan.topic,
        )

    def _dispatch(
        self, batch: _Batch, duplicates: set[tuple[str, str]], execution: str, token: str
    ) -> set[tuple[str, str]]:
        """Mark the claimed messages dispatched before any provider call; the keys another
        invocation of this batch re-claimed since (not to send)."""
        keys = [
            (r.member.customer_id, execution)
            for r in batch.recipients
            if r.message is not None and (r.member.customer_id, execution) not in duplicates
        ]
        if not keys:
            return set()
        return self.recipients.dispatch_messages(SEND_STEP, keys, token, iso(self.clock.now()))

    def _deliver(
        self, batch: _Batch, duplicates: set[tuple[str, str]], execution: str, deadline: float
    ) -> dict[str, int]:
        """Send the claimed messages (push batched) until ``deadline``; report dead push
        tokens; record the outcomes; count every recipient once (one no longer held as
        suppressed; again if the batch is retried, as it has no claim)."""
        counts: Counter[str] = Counter(suppressed=batch.unknown)
        failed_on: Counter[str] = Counter()  # SendFailed by channel, as the send function's
        records: list[tuple[str, dict[str, Any]]] = []
        coupons: list[IssuedCoupon] = []
        claimed: list[tuple[_Recipient, OutboundMessage]] = []
        for r in batch.recipients:
            if (r.member.customer_id, execution) in duplicates:
                counts["duplicate"] += 1
            elif r.message is None:
                counts[str(r.data["status"])] += 1
                if r.data["status"] == "failed":  # e.g. a render error
                    failed_on[str(r.data.get("channel") or NO_CHANNEL)] += 1
            else:
                claimed.append((r, r.message))
        outcomes = send_all(
            self.channels,
            [m for _, m in claimed],
            attempts=self.attempts,
            sleep=self.sleep,
            deadline=deadline,
            monotonic=self.monotonic,
        )
        now = self.clock.now()
        untracked = 0  # LINE texts sent with their links untracked (over LINE's limit tracked)
        dead: list[tuple[OutboundMessage, tuple[InvalidAddressInfo, ...]]] = []
        for (r, message), result in zip(claimed, outcomes, strict=True):
            if isinstance(result, OutOfTime):
                # surely not sent: deferred a minute, to the next pass (decided again then)
                batch.late_until = now + OUT_OF_TIME_DEFERRAL
                batch.late.append(r.member)
                entry = {**r.data, "status": "deferred", "reason": OUT_OF_TIME}
                entry["until"] = iso(batch.late_until)
                counts["deferred"] += 1
                records.append((r.member.customer_id, entry))
                continue
            if isinstance(result, DeliveryError):
                invalid, entry = result.invalid, {**r.data, "status": "failed"}
                entry["reason"] = result.reason
                failed_on[message.channel] += 1
            else:
                invalid, entry = result.invalid_addresses, {**r.data, "status": "sent"}
                entry.update(
                    sent_at=r.data["at"],
                    provider_message_id=result.provider_message_id,
                    attempts=result.attempts,
                )
                if result.links_untracked:  # no click of it can be seen
                    entry[LINKS_UNTRACKED] = True
                untracked += result.links_over_limit
                if r.coupon is not None:
                    coupons.append(r.coupon)
            counts[entry["status"]] += 1
            records.append((r.member.customer_id, entry))
            dead.append((message, invalid))
        record_delivered(
            lambda: self.recipients.record_messages(execution, SEND_STEP, records, coupons),
            "campaign",
            SEND_STEP,
            [(cid, execution, entry) for cid, entry in records],
        )
        if self.inbound is not None:  # after the record: a refused report loses no outcome
            for message, invalid in dead:
                report_dead_devices(self.inbound, message, invalid, now)
        if untracked:
            logger.warning("LINE links sent untracked", execution=execution, messages=untracked)
        for channel, n in sorted(failed_on.items()):  # alarmed on per channel
            count(SEND_FAILED_METRIC, n, CHANNEL_DIMENSION, channel)
        return {k: counts[k] for k in OUTCOMES if counts[k]}

    def _renderer(self, stored: StoredCampaign) -> Renderer:
        key = (stored.campaign.id, stored.version)
        if key not in self._renderers:
            files = {f"{stored.campaign.id}/{k}": v for k, v in stored.templates.items()}
            self._renderers[key] = FilesRenderer(
                files, self.templates_root, default_locale=self.cfg.contact.default_locale
            )
        return self._renderers[key]

    # -- the winner and the end ------------------------------------------------------------------
    def choose_winner(self, req: WinnerRequest) -> dict[str, Any]:
        """The test pool's winner by the campaign's metric and rule (best observed rate, or
        the always-valid sequential test: undecided keeps the first variant). A sequential
        rule with ``max_wait_hours`` looks again while undecided: each look is recorded on
        the occurrence (``looks``) with the next one's time (``next_look_at``, which Plan
        waits for), until the test decides or the last look is taken."""
        stored, occ = self.campaigns.get_state(req.campaign_id, req.occurrence)
        if stored is None or stored.campaign.winner is None or not stored.campaign.variants:
            return {"winner": None}
        campaign = stored.campaign
        selection = campaign.winner
        assert selection is not None
        occ = occ or {}
        if occ.get("winner"):  # decided already: a retried or racing look changes nothing
            return {"winner": occ["winner"]}
        if occ.get("completed_at"):  # ended (closed by hand): no test pool to read any more
            return {"winner": None}
        if occ.get("status") == "running":  # stopped or cancelled: Plan ends it next
            self._chunks_kept(occ)
        looks = list(occ.get("looks") or [])
        now = self.clock.now()
        pending = occ.get("next_look_at")
        if looks and pending and now < parse_time(str(pending)):
            # a retry of the previous look (the next is not due): it was taken and recorded
            return {"winner": None, "next_look_at": pending}
        prefix = occurrence_prefix(req.campaign_id, req.occurrence)
        test_keys = self.manifest.keys(prefix + phase_prefix(0, TEST_POOL))
        arms: dict[str, str] = {}
        for key in test_keys:
            arms.update(
                (m.customer_id, m.arm) for m in map(Member.of, self.manifest.get_lines(key) or [])
            )
        results = self._arm_results(campaign, req, arms)
        names = [v.name for v in campaign.variants]
        if selection.rule != "sequential":
            choice = pick_winner(names, results, selection.metric)
            winner, reason, decided = choice
            if not self.campaigns.set_winner(
                req.campaign_id, req.occurrence, winner, reason, decided=decided
            ):
                return self._recorded(req)  # another look got there first: its winner stands
            self._log_choice(req, choice)
            return {"winner": choice.winner}
        # the sequential test: this look's due time, and the next look's if undecided
        chunks = [chunk_of(k.removeprefix(prefix)) for k in test_keys]
        sent = test_sent_at(chunks) if chunks else now
        if looks and pending:
            look_at = parse_time(str(pending))
        else:
            look_at = sent + timedelta(hours=selection.wait_hours)
        previous_p = float(looks[-1]["p_value"]) if looks else 1.0
        decision = sequential_decision(names, results, selection, previous_p)
        following = None
        if decision.winner is None and chunks:
            following = next_look(selection, sent, look_at)
        number = len(looks) + 1
        look = {
            "number": number,
            "due": iso(look_at),
            "at": iso(now),
            "counts": {
                n: {"exposed": r.recipients, "converted": r.successes}
                for n in names
                for r in [results.get(n, ArmResult())]
            },
            "p_value": _stored_p(decision.p_value),
            "winner": decision.winner,
        }
        if following is not None:
            recorded = self.campaigns.record_look(
                req.campaign_id, req.occurrence, number, look, following
            )
            logger.info(
                "campaign winner undecided",
                campaign=req.campaign_id,
                look=number,
                p_value=decision.p_value,
                next_look_at=iso(following),
                recorded=recorded,
            )
            if not recorded:  # another look got there first: what it recorded stands
                return self._recorded(req)
            return {"winner": None, "next_look_at": iso(following)}
        choice = sequential_winner(names, results, selection, previous_p, number)
        winner, reason, decided = choice
        if not self.campaigns.record_look(
            req.campaign_id, req.occurrence, number, look, None, winner, reason, decided=decided
        ):
            return self._recorded(req)  # another look got there first: its decision stands
        self._log_choice(req, choice)
        return {"winner": choice.winner}

    def _log_choice(self, req: WinnerRequest, choice: WinnerChoice) -> None:
        logger.info(
            "campaign winner",
            campaign=req.campaign_id,
            winner=choice.winner,
            reason=choice.reason,
            decided=choice.decided,
        )

    def _recorded(self, req: WinnerRequest) -> dict[str, Any]:
        """What the occurrence holds after a look lost a race: the winner or the next look."""
        occ = self.campaigns.get_occurrence(req.campaign_id, req.occurrence) or {}
        if occ.get("winner"):
            return {"winner": occ["winner"]}
        return {"winner": None, "next_look_at": occ.get("next_look_at")}

    def _arm_results(
        self, campaign: Campaign, req: WinnerRequest, arms: Mapping[str, str]
    ) -> dict[str, ArmResult]:
        """Per variant of the test pool: recipients whose message reports the metric (sent
        on a channel that does; for clicks, its links tracked:
        :func:`kizuna.campaigns.engine.measured`), and those who met it."""
        assert campaign.winner is not None
        execution = execution_of(req.campaign_id, req.occurrence)
        entries = self.recipients.ledger_entries(list(arms), execution, SEND_STEP)
        metric = campaign.winner.metric
        customers = (  # an item this version cannot read: not counted as converted
            self.recipients.get_customers(list(entries), unreadable_ok=True)
            if metric == "goal"
            else {}
        )
        results: dict[str, ArmResult] = {}
        for cid, entry in entries.items():
            if entry.get("status") != "sent" or not measured(metric, entry):
                continue  # (its message cannot report the metric: not measured)
            result = results.setdefault(arms[cid], ArmResult())
            result.recipients += 1
            result.successes += self._succeeded(campaign, metric, entry, customers.get(cid))
        return results

    @staticmethod
    def _succeeded(
        campaign: Campaign, metric: str, entry: Mapping[str, Any], customer: Customer | None
    ) -> int:
        if metric == "open":
            return int(bool(entry.get("open_at") or entry.get("click_at")))
        if metric == "click":
            return int(bool(entry.get("click_at")))
        goal = campaign.goal
        if goal is None or customer is None:
            return 0
        sent_at = parse_time(str(entry.get("sent_at") or entry["at"]))
        return int(converted(customer, sent_at, goal.within_days, goal.conditions))

    def complete(self, req: CompleteRequest) -> dict[str, Any]:
        """The occurrence is done (or keeps stopped/cancelled): :meth:`OccurrenceEnd.finish`."""
        end = OccurrenceEnd(self.campaigns, self.events, self.manifest)
        return end.finish(req.campaign_id, req.occurrence, self.clock.now())


# An execution that ended this way leaves its occurrence running (Complete never ran).
ENDED_EXECUTION = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
# How long after its execution ended an occurrence may still see a batch send: a SendBatch
# invocation under way runs to its end (the campaign function's timeout, 5 minutes), and a
# Map Run's child executions stop some time after their parent. Three times the timeout.
CLOSE_AFTER = timedelta(minutes=15)


def _ends_its_campaign(stored: StoredCampaign, occ: Mapping[str, Any] | None) -> bool:
    """Does finishing this occurrence end its one-off campaign? Not when it had ended before
    (a redrive after a close), nor when it ran another version of the definition (the
    campaign was applied again, with a new time, since it started)."""
    if occ is None or occ.get("completed_at"):
        return False
    version = occ.get("definition_version")
    return version is None or int(version) == stored.version


class CloseRefused(Exception):
    """An occurrence that ``kizuna campaigns close`` may not close: the message says why."""


@dataclass(frozen=True)
class OccurrenceEnd:
    """How an occurrence ends: Complete, at the end of its execution, or by hand
    (``kizuna campaigns close``) for one whose execution ended without reaching Complete
    (failed, timed out or aborted, and not redriven: it would stay ``running`` for ever)."""

    campaigns: CampaignDefinitions
    events: CampaignEventSink
    manifest: Manifest

    def finish(self, campaign_id: str, occurrence: str, now: datetime) -> dict[str, Any]:
        """The occurrence is done (or keeps stopped/cancelled); a one-off campaign is done;
        ``campaign.completed`` carries the counts. Then the occurrence's manifest (its
        frozen audience: customer ids and arms) is deleted: nothing reads it after the last
        batch and the winner, and erasure does not reach it. If S3 refuses, the occurrence
        is done all the same (the bucket's lifecycle rule expires the objects): logged."""
        stored, before = self.campaigns.get_state(campaign_id, occurrence)
        if stored is not None and stored.status == "cancelled":
            self.campaigns.stop_occurrence(
                campaign_id, occurrence, "campaign cancelled", now, status="cancelled"
            )
        if stored is not None and one_off(stored.campaign) and _ends_its_campaign(stored, before):
            # its one schedule fired; paused, it could never resume into anything. Before the
            # occurrence is marked ended: a retry after that write would no longer do it.
            self.campaigns.set_status(campaign_id, "done", now, expected={"scheduled", "paused"})
        self.campaigns.complete_occurrence(campaign_id, occurrence, now)
        occ = self.campaigns.get_occurrence(campaign_id, occurrence) or {}
        counts = {k: int(occ.get(k, 0)) for k in ("audience", *OUTCOMES)}
        status = str(occ.get("status", "done"))
        event = CampaignEvent(
            detail=CampaignCompleted(
                event_id=f"{execution_of(campaign_id, occurrence)}:completed",
                occurred_at=now,
                campaign_id=campaign_id,
                occurrence=occurrence,
                status=status if status in ("stopped", "cancelled") else "done",
                counts=counts,
                winner=occ.get("winner"),
                winner_reason=occ.get("winner_reason"),
                winner_decided=winner_decided_shown(occ),
                stop_reason=occ.get("stop_reason"),
            )
        )
        if not self.events.publish(event):
            logger.error("campaign.completed not put on the bus", campaign=campaign_id)
        prefix = occurrence_prefix(campaign_id, occurrence)
        try:
            deleted: int | str = self.manifest.delete_prefix(prefix)
        except ManifestNotDeleted as err:
            deleted = f"not deleted: {err}"
            logger.error(
                "campaign manifest not deleted; the bucket's lifecycle rule expires it",
                campaign=campaign_id,
                occurrence=occurrence,
                reason=str(err),
            )
        return {"status": status, **counts, "manifest_objects_deleted": deleted}

    def close(
        self,
        campaign_id: str,
        occurrence: str,
        reason: str,
        now: datetime,
        executions: ExecutionStatuses,
        *,
        unnoted: bool = False,
    ) -> dict[str, Any]:
        """End by hand an occurrence whose execution ended without Complete: a running one
        is stopped (cancelled, if its campaign is) with ``reason``; then :meth:`finish`
        (``campaign.completed``, the manifest deleted). Members not yet sent stay unsent.

        Refused (:class:`CloseRefused`) for an occurrence that has ended already; while its
        execution has not ended (running, a redrive pending); and for :data:`CLOSE_AFTER`
        after it ended, while batches in flight (a Lambda invocation under way, a Map Run's
        child executions) may still send. An occurrence from before executions were noted is
        closed only with ``unnoted``: the operator has checked that no execution runs it."""
        stored, occ = self.campaigns.get_state(campaign_id, occurrence)
        if occ is None:
            raise CloseRefused(f"{campaign_id} has no occurrence {occurrence}")
        status = str(occ.get("status"))
        if occ.get("completed_at") or status not in ("running", *STOPPED):
            raise CloseRefused(f"occurrence {occurrence} is {status} and has ended")
        execution = occ.get("execution")
        if execution:
            found = executions.state(str(execution))
            if found is not None and found.status == "SUCCEEDED":
                raise CloseRefused(
                    f"its execution {execution} succeeded, so Complete ran: the occurrence "
                    "should not be running (look at the execution's history)"
                )
            if found is not None and found.status not in ENDED_EXECUTION:
                raise CloseRefused(
                    f"its execution {execution} is {found.status}: only an execution that "
                    "failed, timed out or was aborted leaves an occurrence to close (stop it "
                    "first: aws stepfunctions stop-execution --execution-arn ...)"
                )
            if found is not None and found.stopped_at is None:
                raise CloseRefused(f"its execution {execution} has no stop date yet")
            if found is not None and found.stopped_at and now < found.stopped_at + CLOSE_AFTER:
                raise CloseRefused(
                    f"its execution ended at {iso(found.stopped_at)}; batches in flight may "
                    f"still send until {iso(found.stopped_at + CLOSE_AFTER)}: close it then"
                )
            ended = f"execution {found.status if found else 'gone'}"
        elif unnoted:
            ended = "execution not noted"
        else:
            raise CloseRefused(
                f"occurrence {occurrence} started before executions were noted: check in the "
                "Step Functions console that none runs it, then close it with --unnoted"
            )
        if status == "running":
            final = (
                "cancelled" if stored is not None and stored.status == "cancelled" else "stopped"
            )
            if not self.campaigns.stop_occurrence(
                campaign_id, occurrence, f"closed by hand ({ended}): {reason}", now, status=final
            ):
                raise CloseRefused(f"occurrence {occurrence} is no longer running")
        logger.warning(
            "campaign occurrence closed by hand", campaign=campaign_id, occurrence=occurrence
        )
        return {
            "execution": execution,
            "was": status,
            **self.finish(campaign_id, occurrence, now),
        }
