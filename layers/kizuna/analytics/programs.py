"""A program's figures over a time range, from its ledger rows (plain Python, no AWS).

The rows come from the activity table's program/time index (``gsi1``: the program's
messages, entries, holdouts and conversions, :meth:`kizuna.adapters.dynamodb.DynamoStore.
program_ledger`), bounded by the range, so a request reads what happened in it and nothing
else. Definitions follow the report's (docs/REPORTS.md) restricted to the range:

- **entries**: entry rows of treated customers (re-entries included); **treated**: customers
  who entered in the range; **held out**: customers held out in the range and not treated;
- **sends by channel** / **suppressions by reason** / **by status**: message rows in the range;
  **not delivered by channel**: those sends reported not delivered afterwards (an email SES
  rejected or failed to render, a direct mail withheld from the print file: the row's
  ``not_delivered_reason``), also counted among the sends (the message is never sent again);
- **conversions**: treated (held-out) customers of the range with a conversion recorded in
  the range; an entry near the end of the range may still convert after it;
- **lift**: treated minus holdout conversion rate with Newcombe's 95% interval.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from kizuna.analytics.stats import Lift, lift
from kizuna.delivery.ledger import NOT_DELIVERED_REASON


class ProgramFigures(BaseModel):
    """What the ledger says about one program between ``start`` and ``end``."""

    program: str
    start: datetime = Field(description="first instant counted")
    end: datetime = Field(description="first instant not counted")
    as_of: datetime = Field(description="when the ledger was read")
    entries: int = Field(ge=0, description="entries of treated customers, re-entries included")
    treated: int = Field(ge=0, description="customers who entered")
    held_out: int = Field(ge=0, description="customers held out (and not treated)")
    sends_by_channel: dict[str, int] = Field(description="messages sent, by channel")
    not_delivered_by_channel: dict[str, int] = Field(
        default_factory=dict,
        description="of the messages sent, those reported not delivered afterwards (an email SES "
        "rejected or failed to render, a direct mail withheld from the print file), by channel",
    )
    suppressions_by_reason: dict[str, int] = Field(description="messages suppressed, by rule")
    messages_by_status: dict[str, int] = Field(description="every message row, by status")
    conversions: int = Field(ge=0, description="treated customers who converted")
    holdout_conversions: int = Field(ge=0, description="held-out customers who converted")
    lift: Lift


def program_figures(
    program: str,
    rows: Iterable[Mapping[str, Any]],
    *,
    start: datetime,
    end: datetime,
    as_of: datetime,
) -> ProgramFigures:
    """Count ``rows`` (the program's ledger rows of the range, in any order)."""
    entries = 0
    treated: set[str] = set()
    held: set[str] = set()
    converted: set[str] = set()
    sent: Counter[str] = Counter()
    not_delivered: Counter[str] = Counter()
    suppressed: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    for row in rows:
        if row.get("program") != program:
            continue
        customer = str(row.get("pk", ""))
        kind = row.get("kind")
        if kind == "ENTRY" and row.get("decision") == "entered":
            entries += 1
            treated.add(customer)
        elif kind == "ENTRY" and row.get("reason") == "global_control":
            continue  # the global control group: not the program's holdout
        elif kind == "ENTRY" and row.get("decision") == "holdout":
            held.add(customer)
        elif kind == "CONV":
            converted.add(customer)
        elif kind == "MSG" and row.get("status"):
            status = str(row["status"])
            statuses[status] += 1
            if status == "sent":
                sent[str(row.get("channel") or "?")] += 1
                if row.get(NOT_DELIVERED_REASON):
                    not_delivered[str(row.get("channel") or "?")] += 1
            elif status == "suppressed":
                suppressed[str(row.get("reason") or "?")] += 1
    held -= treated
    conv, held_conv = len(converted & treated), len(converted & held)
    return ProgramFigures(
        program=program,
        start=start,
        end=end,
        as_of=as_of,
        entries=entries,
        treated=len(treated),
        held_out=len(held),
        sends_by_channel=dict(sorted(sent.items())),
        not_delivered_by_channel=dict(sorted(not_delivered.items())),
        suppressions_by_reason=dict(sorted(suppressed.items())),
        messages_by_status=dict(sorted(statuses.items())),
        conversions=conv,
        holdout_conversions=held_conv,
        lift=lift(conv, len(treated), held_conv, len(held)),
    )
