"""The campaign engine's decisions, as plain functions (no AWS, no clock).

- the manifest's layout: which object a recipient of a pass, phase and due instant is in;
- the audience: does a customer belong to a campaign's audience;
- per recipient: holdout, the contact policy (:func:`kizuna.delivery.policy.decide`, the one
  the journeys use), the variant and template to render;
- the sequencer: which phase and pass of an occurrence comes next, and the pacing of its
  chunks under the send-rate limit;
- the failure circuit breaker and the winner of a test pool.

The campaign function's service (:mod:`kizuna.services.campaign`) reads and writes; this
module decides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from kizuna.analytics.sequential import DEFAULT_ALPHA, DEFAULT_MIN_PER_ARM, Arm, Decision
from kizuna.analytics.sequential import decide as sequential_decide
from kizuna.campaigns.assign import DEFAULT_VARIANT, HOLDOUT, TEST_POOL, WINNER, holdout_bucket
from kizuna.campaigns.model import RECHECK_HOURS, Campaign, WinnerSelection
from kizuna.delivery.control import GLOBAL_CONTROL, control_detail
from kizuna.delivery.ledger import clicks_measurable
from kizuna.delivery.policy import Address, Outcome, contact_times, decide
from kizuna.domain.customer import UNREADABLE_CUSTOMER, Customer
from kizuna.events.inbound import SalesChannel
from kizuna.programs.loader import BRANCH_CHANNELS
from kizuna.programs.model import EngagementEvent
from kizuna.programs.pattern_rules import Fields
from kizuna.programs.patterns import matches
from kizuna.programs.value_rules import Rules, ValueRule
from kizuna.programs.view import customer_view
from kizuna.runtime.config import KizunaConfig, ValueType
from kizuna.services.contracts import Chunk

CHUNK_SIZE = 500  # recipients per manifest object (one send_batch invocation)
# Chunks a Plan answers at most (the rest in the next pages: Plan is asked again after the
# Send map): the answer is the execution's state, which Step Functions bounds at 256 KB, and
# a chunk takes up to ~125 bytes of it (its key and not_before: a page ~125 KB).
PLAN_PAGE_CHUNKS = 1000
SEND_STEP = "send"  # the ledger step of every campaign message
STAMP = "%Y%m%dT%H%M%SZ"
SENDING_PHASES = ("test", "main", "deferred")
STOPPED = frozenset({"stopped", "cancelled"})


class CampaignPaused(Exception):
    """The campaign is paused: the state machine retries the batch every 60 s until it is
    resumed (or cancelled)."""


class ManifestMissing(Exception):
    """A chunk the plan listed does not exist while its occurrence runs: the execution
    fails rather than counting its recipients as nobody."""


# --- the manifest ------------------------------------------------------------------------------
def execution_of(campaign_id: str, occurrence: str) -> str:
    """The ledger's execution of an occurrence (and the CONTACT item's message key)."""
    return f"campaign:{campaign_id}:{occurrence}"


def occurrence_prefix(campaign_id: str, occurrence: str) -> str:
    """Where an occurrence's manifest lives; deleted whole when the occurrence completes,
    so neither part may be empty or hold a ``/`` (the prefix would reach other objects)."""
    for part in (campaign_id, occurrence):
        if not part or "/" in part:
            raise ValueError(f"not a campaign id or occurrence: {part!r}")
    return f"campaigns/{campaign_id}/{occurrence}/"


def list_key(campaign_id: str) -> str:
    """A static audience's customer ids (a CSV with a ``customer_id`` column)."""
    return f"campaigns/{campaign_id}/list.csv"


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime(STAMP)


def phase_prefix(pass_number: int, phase: str) -> str:
    """Objects of one pass and phase, relative to the occurrence's prefix."""
    return f"pass-{pass_number}/{phase}/"


def chunk_key(pass_number: int, phase: str, due: datetime, segment: int, chunk: int) -> str:
    """A manifest object, relative to the occurrence's prefix."""
    return f"{phase_prefix(pass_number, phase)}{stamp(due)}/seg-{segment:04d}-{chunk:04d}.jsonl"


def deferred_key(pass_number: int, until: datetime, source: str) -> str:
    """Where a batch of ``source`` puts the recipients it deferred to ``until``: the next
    pass, named after the source object (its segment and chunk, and a digest of its key:
    deterministic, so a retried batch overwrites its own object, and unique per source)."""
    name = source.rsplit("/", 1)[-1].removesuffix(".jsonl")
    seg = "-".join(name.split("-")[:3])
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    return f"{phase_prefix(pass_number, 'deferred')}{stamp(until)}/{seg}-{digest}.jsonl"


def chunk_of(key: str) -> Chunk:
    """A chunk from its relative key ``pass-<n>/<phase>/<due>/<name>.jsonl``."""
    return Chunk.model_validate({"key": key})


@dataclass(frozen=True)
class Member:
    """One recipient as frozen in the manifest."""

    customer_id: str
    arm: str

    def line(self) -> dict[str, str]:
        return {"c": self.customer_id, "a": self.arm}

    @classmethod
    def of(cls, line: Mapping[str, Any]) -> Member:
        return cls(str(line["c"]), str(line["a"]))


def group_members(
    members: Iterable[tuple[Member, str, datetime]],
    segment: int,
    chunk_size: int = CHUNK_SIZE,
    pass_number: int = 0,
) -> dict[str, list[Member]]:
    """Members (with their pool and due instant) of one scan segment as manifest objects:
    grouped by phase and due, at most ``chunk_size`` each; chunk numbers run across the
    segment, so an object's segment and chunk name it within its pass."""
    groups: dict[tuple[str, datetime], list[Member]] = {}
    for member, pool, due in members:
        groups.setdefault((pool, due), []).append(member)
    out: dict[str, list[Member]] = {}
    n = 0
    for (pool, due), group in sorted(groups.items()):
        for start in range(0, len(group), chunk_size):
            out[chunk_key(pass_number, pool, due, segment, n)] = group[start : start + chunk_size]
            n += 1
    return out


# --- the audience --------------------------------------------------------------------------------
def in_audience(
    campaign: Campaign,
    customer: Customer,
    now: datetime,
    cfg: KizunaConfig,
    segments: Mapping[str, Mapping[str, Any]],
) -> bool:
    """Segments (any of them) and conditions; a static list's members are all in it."""
    audience = campaign.audience
    if audience.everyone or audience.customer_list:
        return True
    named = {n: segments[n] for n in audience.segments if n in segments}
    if audience.segments and not named:
        return False
    view = customer_view(customer, now, cfg, named or None)
    if audience.segments and not view.get("segments"):
        return False
    return matches(audience.conditions, view) if audience.conditions else True


# --- one recipient --------------------------------------------------------------------------------
def variant_for(campaign: Campaign, arm: str, winner: str | None) -> str | None:
    """The variant a recipient gets: theirs, or for the rest of a winner-selection campaign,
    the winner (the first variant if none was chosen)."""
    if arm == WINNER:
        return winner or (campaign.variants[0].name if campaign.variants else None)
    return None if arm in (DEFAULT_VARIANT, HOLDOUT, GLOBAL_CONTROL) else arm


@dataclass(frozen=True)
class RecipientPlan:
    """What to do for one recipient: ``status`` is holdout, suppressed, deferred or send."""

    status: str
    channel: str | None = None
    reason: str | None = None
    until: datetime | None = None
    variant: str | None = None
    template: str | None = None
    address: Address | None = None
    skipped: tuple[tuple[str, str], ...] = ()
    contact: tuple[datetime, ...] = ()
    stale: tuple[str, ...] = field(default=())
    # what the reason rests on, for the ledger row (the holdout bucket, the cap, the quiet
    # hours): see docs/PROGRAMS.md, "The ledger's reasons"
    detail: Mapping[str, object] | None = None
    topic: str | None = None  # the campaign's preference topic (docs/PREFERENCES.md)


def topic_of(campaign: Campaign, cfg: KizunaConfig) -> str:
    """The preference topic a campaign's messages are about: its own, else the
    configuration's ``preferences.default_topic``."""
    return campaign.topic or cfg.preferences.default_topic


def plan_recipient(
    campaign: Campaign,
    member: Member,
    customer: Customer | None,
    sent: Mapping[str, str],
    now: datetime,
    cfg: KizunaConfig,
    winner: str | None,
    configured: frozenset[str] | None = None,
    blocked: Callable[[str], str | None] | None = None,
    own: str | None = None,
    *,
    unreadable: bool = False,
) -> RecipientPlan:
    """The global control group and the holdout first (recorded, never sent); then the
    contact policy, as for journeys. ``blocked``: the policy's last check of the channel it
    would choose (the carrier's opt-out list for SMS, as for journeys): why it cannot be
    used (the next channel is tried), or None. ``own``: this message's key in ``sent``
    (the occurrence's execution), not counted against itself. ``unreadable``: the
    customer's item this version cannot read (``customer`` is None): held out as ever, or
    ``failed: unreadable_customer`` (counted toward the failure breaker)."""
    variant = variant_for(campaign, member.arm, winner)
    if customer is None and not unreadable:
        return RecipientPlan("suppressed", reason="unknown_customer", variant=variant)
    if member.arm == GLOBAL_CONTROL:
        # frozen into the global control group: recorded, never sent
        detail = control_detail(cfg.measurement.global_control, member.customer_id)
        return RecipientPlan("holdout", reason=GLOBAL_CONTROL, detail=detail)
    if member.arm == HOLDOUT:
        held_out = {
            "held_out": "campaign",
            "holdout_percent": campaign.holdout_percent,
            "bucket": holdout_bucket(campaign, member.customer_id),
        }
        return RecipientPlan("holdout", reason="holdout", detail=held_out)
    if customer is None:
        return RecipientPlan("failed", reason=UNREADABLE_CUSTOMER, variant=variant)
    times, stale = contact_times(sent, now, own)
    topic = topic_of(campaign, cfg)
    decision = decide(
        customer,
        [str(c) for c in campaign.channels],
        campaign.priority,
        times,
        now,
        cfg.contact,
        configured=configured,
        blocked=blocked,
        topic=topic,
        topic_transactional=cfg.preferences.is_transactional(topic),
    )
    status = {Outcome.SEND: "send", Outcome.SUPPRESS: "suppressed", Outcome.DEFER: "deferred"}
    return RecipientPlan(
        status[decision.outcome],
        channel=decision.channel,
        reason=decision.reason,
        until=decision.until,
        variant=variant,
        template=campaign.template_of(variant),
        address=decision.address,
        skipped=decision.skipped,
        contact=tuple(times),
        stale=tuple(stale),
        detail=decision.detail,
        topic=topic,
    )


# --- the sequencer --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """The next thing an occurrence does: send a phase's chunks, wait for the winner, or
    finish."""

    phase: str  # test | main | deferred | winner | done
    pass_number: int = 0
    chunks: tuple[Chunk, ...] = ()
    wait_until: datetime | None = None
    # the phase's chunks go on at this index in the next page (None: this page is its last)
    next_chunk: int | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"phase": self.phase, "pass": self.pass_number}
        out["chunks"] = [
            c.model_dump(mode="json", include={"key", "not_before"}) for c in self.chunks
        ]
        if self.next_chunk is not None:
            out["next"] = self.next_chunk
        if self.wait_until is not None:
            out["wait_until"] = self.wait_until.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return out


def pace(
    keys: Sequence[str], rate_limit_per_minute: int | None, chunk_size: int = CHUNK_SIZE
) -> tuple[Chunk, ...]:
    """The chunks of a phase in due order; with a rate limit, chunk ``i`` starts no earlier
    than the first due plus ``i`` chunks' worth of sending time."""
    chunks = sorted((chunk_of(k) for k in keys), key=lambda c: (c.due, c.key))
    if not chunks or not rate_limit_per_minute:
        return tuple(chunks)
    first = chunks[0].due
    minutes = chunk_size / rate_limit_per_minute
    return tuple(
        c.model_copy(update={"not_before": max(c.due, first + timedelta(minutes=i * minutes))})
        for i, c in enumerate(chunks)
    )


def next_step(
    campaign: Campaign,
    after: Mapping[str, Any] | None,
    occurrence_status: str | None,
    list_keys: Callable[[str], list[str]],
    chunk_size: int = CHUNK_SIZE,
    pending_look: datetime | None = None,
) -> Step:
    """The sequencer, stateless: from the previous step (None at the start) and the
    occurrence's status, the next one. With winner selection: test pass 0 -> wait for the
    winner -> main pass 0; without: main pass 0; after any sending phase of pass k, the
    recipients deferred into pass k+1; none left -> done. ``pending_look``: the winner is
    still undecided and its next look is due then (a sequential rule's re-checks): wait
    for the winner again."""
    if occurrence_status in STOPPED or occurrence_status is None:
        return Step("done")
    phase = str(after.get("phase")) if after else None
    number = int(str(after.get("pass", 0))) if after else 0
    following = after.get("next") if after else None

    def sending(phase: str, pass_number: int, start: int = 0) -> Step:
        keys = list_keys(phase_prefix(pass_number, phase))
        chunks = pace(keys, campaign.rate_limit_per_minute, chunk_size)
        end = start + PLAN_PAGE_CHUNKS
        return Step(
            phase, pass_number, chunks[start:end], next_chunk=end if end < len(chunks) else None
        )

    if following is not None and phase in SENDING_PHASES:
        return sending(phase, number, int(str(following)))  # the phase's next page
    if phase is None and campaign.winner is not None:
        test = sending(TEST_POOL, 0)
        if test.chunks:
            return test
        phase = "winner"
    if phase == "winner" and pending_look is not None:
        return Step("winner", 0, wait_until=pending_look)
    if phase is None or phase == "winner":
        return sending("main", 0)
    if phase == TEST_POOL:
        assert campaign.winner is not None
        keys = list_keys(phase_prefix(0, TEST_POOL))
        if not keys:  # an empty test pool (or one already removed): nothing to wait for
            return sending("main", 0)
        wait = test_sent_at([chunk_of(k) for k in keys])  # the whole pool's, every page
        wait += timedelta(hours=campaign.winner.wait_hours)
        return Step("winner", 0, wait_until=wait)
    if phase in SENDING_PHASES:
        deferred = sending("deferred", number + 1)
        return deferred if deferred.chunks else Step("done")
    raise ValueError(f"unknown phase {phase!r}")


# --- safety and results -------------------------------------------------------------------
def breaker_reason(campaign: Campaign, counts: Mapping[str, int]) -> str | None:
    """Why the occurrence must stop (failures passed the threshold), or None."""
    failed = int(counts.get("failed", 0))
    attempted = int(counts.get("sent", 0)) + failed
    rule = campaign.stop_on_failures
    if attempted < rule.after or failed * 100 < rule.percent * attempted:
        return None
    share = failed * 100 / attempted
    return (
        f"failures {failed} of {attempted} attempts ({share:.1f}%) reached the threshold "
        f"of {rule.percent:g}% after {rule.after}"
    )


@dataclass
class ArmResult:
    recipients: int = 0
    successes: int = 0

    @property
    def rate(self) -> float:
        return self.successes / self.recipients if self.recipients else 0.0


# The channels whose messages report a winner metric: opens (email's SES events, push's
# push.opened, a card seen) and clicks (email, LINE's tracked links, a card). A test pool
# member sent on another channel (the fallback SMS, LINE for opens) is not measured: they
# could never count as converted, and the arm with more of them would lose for it.
METRIC_CHANNELS: dict[str, frozenset[str]] = {
    "open": BRANCH_CHANNELS[EngagementEvent.OPENED],
    "click": BRANCH_CHANNELS[EngagementEvent.CLICKED],
}


def measured_on(metric: str, channel: object) -> bool:
    """Does a message sent on ``channel`` report ``metric`` (goal: every channel)?"""
    channels = METRIC_CHANNELS.get(metric)
    return channels is None or channel in channels


def measured(metric: str, entry: Mapping[str, Any]) -> bool:
    """Is this sent message's ledger entry measured for ``metric``: sent on a channel that
    reports it (:func:`measured_on`) and, for ``click``, with its clicks measurable (a LINE
    message or an email with links none of which went tracked is not:
    :func:`kizuna.delivery.ledger.clicks_measurable`; counted, it could only be a non-click,
    and the variant whose link went to an undeclared host, or whose text grew past LINE's
    limit with tracked links, lost for that alone; one with no link at all is)."""
    if not measured_on(metric, entry.get("channel")):
        return False
    return metric != "click" or clicks_measurable(entry)


class WinnerChoice(NamedTuple):
    """The variant the rest of the audience gets and why; ``decided`` False: the test
    found no winner and the rest get the first variant (the occurrence records it as
    ``winner_decided``, and results name their arm ``<variant> (no winner: first
    variant)``)."""

    winner: str
    reason: str
    decided: bool


def pick_winner(
    variants: Sequence[str], results: Mapping[str, ArmResult], metric: str
) -> WinnerChoice:
    """The variant with the best rate (ties: the first); the reason states the figures.
    A variant with nobody measured (no test pool member of it sent a message that reports
    ``metric``: :func:`measured`): undecided, the first variant (its rate of 0 would lose
    for that alone)."""
    unmeasured = [n for n in variants if not results.get(n, ArmResult()).recipients]
    if unmeasured:
        tracked = ", its links tracked" if metric == "click" else ""
        reason = (
            f"undecided: no test pool recipient of {', '.join(unmeasured)} was measured (sent "
            f"on a channel that reports the {metric} metric{tracked}); no winner, the rest "
            f"get the first variant ({variants[0]})"
        )
        return WinnerChoice(variants[0], reason, decided=False)
    best = variants[0]
    for name in variants[1:]:
        if results.get(name, ArmResult()).rate > results.get(best, ArmResult()).rate:
            best = name
    figures = ", ".join(
        f"{n}: {r.successes}/{r.recipients} ({r.rate * 100:.1f}%)"
        for n in variants
        for r in [results.get(n, ArmResult())]
    )
    return WinnerChoice(best, f"best {metric} rate in the test pool: {figures}", decided=True)


def sequential_decision(
    variants: Sequence[str],
    results: Mapping[str, ArmResult],
    selection: WinnerSelection,
    previous_p: float = 1.0,
) -> Decision:
    """One look of the always-valid test (kizuna.analytics.sequential) at the test pool's
    counts: the leader wins when the test finds it better than every other variant at
    ``alpha`` with at least ``min_per_arm`` recipients per variant. ``previous_p`` is the
    previous look's p-value (the test's running minimum: looking again keeps the error rate)."""
    arms = {
        n: Arm(r.recipients, r.successes) for n in variants for r in [results.get(n, ArmResult())]
    }
    return sequential_decide(
        arms,
        alpha=selection.alpha if selection.alpha is not None else DEFAULT_ALPHA,
        min_per_arm=(
            selection.min_per_arm if selection.min_per_arm is not None else DEFAULT_MIN_PER_ARM
        ),
        previous_p=previous_p,
    )


def sequential_winner(
    variants: Sequence[str],
    results: Mapping[str, ArmResult],
    selection: WinnerSelection,
    previous_p: float = 1.0,
    looks: int = 1,
) -> WinnerChoice:
    """The winner by the always-valid test (:func:`sequential_decision`); undecided, the
    first variant (the default) stays for the rest and the reason says so (and after how
    many ``looks``). Either way the reason carries the evidence: the rule, the p-value, the
    counts and the always-valid interval."""
    decision = sequential_decision(variants, results, selection, previous_p)
    metric = f"{selection.metric} rate in the test pool"
    if decision.winner is not None:
        return WinnerChoice(decision.winner, f"{metric}: {decision.reason}", decided=True)
    after = f"undecided after {looks} looks, " if looks > 1 else ""
    reason = (
        f"{metric}: {decision.reason}; {after}no winner, the rest get the first variant "
        f"{variants[0]}"
    )
    return WinnerChoice(variants[0], reason, decided=False)


def test_sent_at(test_chunks: Sequence[Chunk]) -> datetime:
    """When the test pool's last chunk was due: the winner's waits count from it."""
    return max(c.due for c in test_chunks)


def next_look(
    selection: WinnerSelection, test_sent: datetime, look_at: datetime
) -> datetime | None:
    """The look after the one due at ``look_at``: ``RECHECK_HOURS`` later, the last one at
    ``max_wait_hours`` after the test pool's send; None when ``look_at`` was the last (and
    always None unless a sequential rule declares ``max_wait_hours``: one look)."""
    if selection.rule != "sequential" or selection.max_wait_hours is None:
        return None
    deadline = test_sent + timedelta(hours=selection.max_wait_hours)
    if look_at >= deadline:
        return None
    return min(look_at + timedelta(hours=RECHECK_HOURS), deadline)


# A campaign's conversions are orders: its goal's event (the loader refuses another)
CONVERSION_EVENT = "order.placed"
# What a campaign goal's conditions see of an order (the fields :func:`converted` matches),
# and what each holds (a value it never holds is refused at load: ``total: ["5000"]``).
CONVERSION_VALUES: Rules = {
    "order_id": ValueRule("order_id", ValueType.STRING),
    "total": ValueRule("total", ValueType.NUMBER),
    "currency": ValueRule("currency", ValueType.STRING),
    "channel": ValueRule("channel", ValueType.STRING, tuple(map(str, SalesChannel))),
    "product_ids": ValueRule("product_ids", ValueType.STRING_LIST),
}
CONVERSION_FIELDS: Fields = dict.fromkeys(CONVERSION_VALUES)


def converted(
    customer: Customer, sent_at: datetime, within_days: int, conditions: Mapping[str, Any]
) -> bool:
    """An order placed (and not cancelled) after the message, within the goal window."""
    end = sent_at + timedelta(days=within_days)
    for order_id, order in customer.orders.items():
        if not order.counts or order.at is None or not sent_at < order.at <= end:
            continue
        detail = {
            "order_id": order_id,
            "total": float(order.total),
            "currency": order.currency,
            "channel": order.channel,
            "product_ids": list(order.products),
        }
        if order_meets_goal(conditions, detail):
            return True
    return False


def order_meets_goal(conditions: Mapping[str, Any], detail: Mapping[str, Any]) -> bool:
    """Does an order (``order_id``, ``total``, ``currency``, ``channel``, ``product_ids``)
    meet a campaign goal's conditions (none: every order does)? One rule for the console,
    the winner test and the campaign report."""
    return not conditions or matches(conditions, {k: v for k, v in detail.items() if v})
