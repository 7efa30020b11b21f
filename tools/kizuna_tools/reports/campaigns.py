"""Campaign reports, per occurrence: the audience frozen, what was sent on which channel,
what was suppressed or deferred and why, the holdout, and per variant the opens, clicks,
conversions and revenue with the lift against the holdout (95% intervals), and the winner
with, for a sequential test that looked more than once, every look it took.

Built from plain data (no AWS): the ledger's campaign rows (``campaign`` and ``occurrence``
fields), the customers' orders, and the occurrence items of the campaigns table.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kizuna.analytics.stats import Lift, lift
from kizuna.campaigns.assign import sent_to_the_rest, shown_arm, winner_decided
from kizuna.campaigns.engine import order_meets_goal
from kizuna.campaigns.looks import Look, decision_line, looks_of, next_look_of
from kizuna.domain.timestamps import parse_time
from kizuna_tools.reports.build import Order

HOLDOUT = "holdout"
GLOBAL_CONTROL = "global_control"


@dataclass(frozen=True)
class CampaignRow:
    """One ledger row of a campaign occurrence (one customer)."""

    campaign: str
    occurrence: str
    customer_id: str
    at: datetime
    status: str
    arm: str | None
    channel: str | None
    reason: str | None
    opened: bool
    clicked: bool

    @classmethod
    def from_item(cls, item: Mapping[str, Any], decided: bool = True) -> CampaignRow | None:
        """``decided``: did the occurrence's test choose the variant the rest of the audience
        got (:func:`kizuna.campaigns.assign.winner_decided`; the arm it shows)."""
        if item.get("kind") != "MSG" or not item.get("campaign") or not item.get("status"):
            return None
        return cls(
            campaign=str(item["campaign"]),
            occurrence=str(item.get("occurrence", "")),
            customer_id=str(item.get("pk", item.get("customer_id", ""))),
            at=parse_time(str(item.get("sent_at") or item["at"])),
            status=str(item["status"]),
            arm=shown_arm(item.get("arm"), item.get("variant"), decided),
            channel=item.get("channel"),
            reason=item.get("reason"),
            opened=bool(item.get("open_at")),
            clicked=bool(item.get("click_at")),
        )


@dataclass(frozen=True)
class VariantResult:
    arm: str
    recipients: int  # sent (treated) or held out
    opens: int
    clicks: int
    conversions: int
    revenue: float
    # against the holdout, intent to treat: every member of the arm not held out (sent,
    # suppressed, deferred or failed) and their conversions (``assigned``,
    # ``assigned_conversions``). Sent alone against the whole holdout compared the
    # reachable, consented, uncapped customers with everyone: the lift was inflated by who
    # could be reached, not by the message. None for the holdout itself
    lift: Lift | None
    assigned: int = 0
    assigned_conversions: int = 0


@dataclass
class OccurrenceReport:
    campaign: str
    occurrence: str
    status: str = ""
    audience: int = 0
    holdout: int = 0
    sent_by_channel: dict[str, int] = field(default_factory=dict)
    suppressed_by_reason: dict[str, int] = field(default_factory=dict)
    deferred_by_reason: dict[str, int] = field(default_factory=dict)
    failed_by_reason: dict[str, int] = field(default_factory=dict)
    variants: list[VariantResult] = field(default_factory=list)
    winner: str | None = None
    winner_reason: str | None = None
    # False: the test chose no winner, the rest got the first variant (``winner``)
    winner_decided: bool = True
    looks: list[Look] = field(default_factory=list)
    next_look_at: datetime | None = None  # undecided sequential test: the next look's time

    @property
    def sent(self) -> int:
        return sum(self.sent_by_channel.values())

    @property
    def winner_line(self) -> str | None:
        """What the test chose, in words: ``winner: b (...)``, or, when it chose none, the
        first variant the rest got, never called a winner; None before anything is chosen."""
        if not self.winner:
            return None
        said = "winner:" if self.winner_decided else "no winner: first variant"
        return f"{said} {self.winner} ({self.winner_reason})"

    def look_lines(self) -> list[str]:
        """Each look of the sequential test, then the decision so far (none: no looks)."""
        decision = decision_line(self.looks, self.winner, self.next_look_at)
        return [*(look.line() for look in self.looks), *([decision] if decision else [])]


def _converted(
    customer: str,
    after: datetime,
    window: timedelta,
    orders: Mapping[str, Sequence[Order]],
    conditions: Mapping[str, Any],
) -> tuple[bool, float]:
    """Did the customer place an order meeting the goal's conditions strictly after
    ``after`` within the window, and for how much (net of the refunds the ledger holds:
    :attr:`Order.revenue`); a cancelled or wholly refunded order never counts (as in the
    console and the winner test: :func:`kizuna.campaigns.engine.converted`)."""
    mine = [
        o
        for o in orders.get(customer, ())
        if after < o.at <= after + window and o.counts and order_meets_goal(conditions, o.detail())
    ]
    return bool(mine), sum(o.revenue for o in mine)


def campaign_reports(
    items: Iterable[Mapping[str, Any]],
    orders: Iterable[Order],
    occurrences: Iterable[Mapping[str, Any]] = (),
    goal_days: Mapping[str, int] | None = None,
    goal_conditions: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[OccurrenceReport]:
    """One report per (campaign, occurrence) found in the ledger or the occurrence items.
    ``goal_days``: attribution window per campaign (default 7 days); ``goal_conditions``:
    what an order must match to convert, per campaign (default: any order)."""
    by_customer: dict[str, list[Order]] = defaultdict(list)
    for o in orders:
        by_customer[o.customer_id].append(o)
    reports: dict[tuple[str, str], OccurrenceReport] = {}
    # occurrences whose test chose no winner: the rest of the audience got the first variant
    # (an occurrence without its record reads as decided)
    undecided: set[tuple[str, str]] = set()
    for occ in occurrences:
        key = (str(occ["campaign_id"]), str(occ["occurrence"]))
        if not winner_decided(occ):
            undecided.add(key)
        reports[key] = OccurrenceReport(
            *key,
            status=str(occ.get("status", "")),
            audience=int(occ.get("audience", 0)),
            winner=occ.get("winner"),
            winner_reason=occ.get("winner_reason"),
            winner_decided=key not in undecided,
            looks=looks_of(occ),
            next_look_at=next_look_of(occ),
        )
    rows = [
        r
        for i in items
        for r in [
            CampaignRow.from_item(
                i, (str(i.get("campaign")), str(i.get("occurrence", ""))) not in undecided
            )
        ]
        if r is not None
    ]
    grouped: dict[tuple[str, str], list[CampaignRow]] = defaultdict(list)
    for row in rows:
        grouped[(row.campaign, row.occurrence)].append(row)
    for key, group in sorted(grouped.items()):
        report = reports.setdefault(key, OccurrenceReport(*key))
        window = timedelta(days=(goal_days or {}).get(key[0], 7))
        conditions = (goal_conditions or {}).get(key[0], {})
        sent = Counter(r.channel or "?" for r in group if r.status == "sent")
        report.sent_by_channel = dict(sent.most_common())
        for status, target in (
            ("suppressed", report.suppressed_by_reason),
            ("deferred", report.deferred_by_reason),
            ("failed", report.failed_by_reason),
        ):
            target.update(Counter(r.reason or "?" for r in group if r.status == status))
        # the campaign's own holdout (a global control customer is compared elsewhere)
        # (a member drawn into the holdout whose customer was gone by the send is recorded
        # suppressed, unknown_customer, under the holdout's arm: held out all the same)
        held = [
            r
            for r in group
            if (r.status == HOLDOUT and r.reason != GLOBAL_CONTROL) or r.arm == HOLDOUT
        ]
        report.holdout = len(held)
        if not report.audience:
            report.audience = len({r.customer_id for r in group})
        holdout_conv = [
            _converted(r.customer_id, r.at, window, by_customer, conditions) for r in held
        ]
        holdout_k = sum(1 for c, _ in holdout_conv if c)
        # With winner selection the holdout belongs to the main pool: its members are
        # decided with the rest of the audience, after the winner wait, and so are the
        # winner's; the test pool's arms went out days before and are compared with one
        # another by the winner test. A holdout measured over other days is no baseline for
        # them (a payday or a sale ending between the two read as lift): no lift.
        selection = report.winner is not None or any(sent_to_the_rest(r.arm) for r in group)
        assigned: dict[str, list[CampaignRow]] = defaultdict(list)
        for r in group:
            # (the global control's rows are holdout rows too, or under its arm)
            if r.status != HOLDOUT and r.arm not in (HOLDOUT, GLOBAL_CONTROL):
                assigned[r.arm or "default"].append(r)
        for arm, everyone in sorted(assigned.items()):
            outcomes = {
                r.customer_id: _converted(r.customer_id, r.at, window, by_customer, conditions)
                for r in everyone
            }
            members = [r for r in everyone if r.status == "sent"]
            conv = [outcomes[r.customer_id] for r in members]
            k = sum(1 for c, _ in conv if c)
            k_all = sum(1 for c, _ in outcomes.values() if c)
            report.variants.append(
                VariantResult(
                    arm=arm,
                    recipients=len(members),
                    opens=sum(1 for r in members if r.opened),
                    clicks=sum(1 for r in members if r.clicked),
                    conversions=k,
                    revenue=sum(v for _, v in conv),
                    lift=(
                        lift(k_all, len(everyone), holdout_k, len(held))
                        if held and (sent_to_the_rest(arm) or not selection)
                        else None
                    ),
                    assigned=len(everyone),
                    assigned_conversions=k_all,
                )
            )
        if held:
            report.variants.append(
                VariantResult(
                    arm=HOLDOUT,
                    recipients=len(held),
                    opens=0,
                    clicks=0,
                    conversions=holdout_k,
                    revenue=sum(v for _, v in holdout_conv),
                    lift=None,
                    assigned=len(held),
                    assigned_conversions=holdout_k,
                )
            )
    return [reports[k] for k in sorted(reports)]
