"""Engagement branches: did a member open, click or convert after a send step's message,
within N hours of its send? Decided on the ledger as it is when the branch runs.

What each event reads (the send step's ledger entry ``MSG#<entry>#<step>``, stamped by the
feedback function for email, :mod:`kizuna.services.feedback`, by ingest for the app's
``push.opened``, :mod:`kizuna.services.ingest`, by the signed-link function for LINE's
tracked links, :mod:`kizuna.services.links`, and by the cards API when the shop's site marks a
card seen or clicked, :mod:`kizuna.services.cards`; the stamps keep the earliest time):

- ``opened``: ``open_at``, or ``click_at`` when SES reported a click without an open (images
  blocked: a click is an open); card, email and push (the loader refuses other channels);
- ``clicked``: ``click_at``;
- ``converted``: the program's goal, reached for this entry (``JOURNEY#<program>``:
  ``converted_execution`` is the entry, at ``goal_reached_at``).

The message counts from its send (``sent_at``; an entry settled by the reconciliation sweep
has none: from when it was dispatched, else claimed). ``then`` when the event came after
the send and at most ``within_hours`` after it; ``else`` otherwise, and when the step sent
the member nothing (no entry, or one whose status is not ``sent``). A ``clicked`` branch
whose message went with none of its links tracked (``links_untracked``: LINE, its links to
hosts not declared, ``tel:``, ``mailto:`` or ``line://`` links, bare phone numbers or
email addresses in its text, links in actions, or its text over LINE's limit with them
tracked; an email whose links are ``mailto:``, ``tel:``
or others SES does not track) and shows
no click cannot tell a click from none: ``else``, as for a member not sent the message
(nothing is known to have happened), with the reason :data:`NOT_MEASURED`, never
:data:`NOT_ENGAGED` (its silence is no evidence that the member did not click). A message
with no link at all is measured (:func:`kizuna.delivery.ledger.clicks_measurable`: nothing
could be clicked, as in an email with no link): ``not_engaged``. :func:`decide` returns the
side and the detail the ``STEP`` ledger row keeps beside it (docs/PROGRAMS.md, "The
ledger's reasons"); :mod:`kizuna.delivery.why` phrases it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from kizuna.delivery.ledger import DISPATCHED_AT, LINKS_UNTRACKED, clicks_measurable
from kizuna.domain.timestamps import iso, parse_time
from kizuna.programs.journeys import JourneyState
from kizuna.programs.model import Engagement, EngagementEvent

# the STEP row's reason on the else side
NOT_SENT: Final = "not_sent"  # the step sent this member nothing
NOT_ENGAGED: Final = "not_engaged"  # sent; the event did not come within the window
# sent, and the event cannot show on its entry (clicked: its links went untracked)
NOT_MEASURED: Final = "not_measured"


@dataclass(frozen=True)
class Verdict:
    """``held``: the then side; ``reason``: why not (None on the then side); ``detail``:
    what the decision rests on (the ``engagement`` map of the STEP row)."""

    held: bool
    reason: str | None
    detail: dict[str, Any] = field(default_factory=dict)


def _instant(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return parse_time(str(value))
    except (TypeError, ValueError):
        return None


def sent_at(entry: Mapping[str, Any]) -> datetime | None:
    """When the message left: ``sent_at``, else ``dispatched_at``, else the claim's ``at``."""
    for key in ("sent_at", DISPATCHED_AT, "at"):
        found = _instant(entry.get(key))
        if found is not None:
            return found
    return None


def happened_at(
    event: EngagementEvent,
    entry: Mapping[str, Any],
    journey: JourneyState | None,
    execution: str,
) -> datetime | None:
    """When the member did ``event`` for this message (None: not recorded)."""
    if event == EngagementEvent.CONVERTED:
        if journey is None or journey.converted_execution != execution:
            return None
        return journey.goal_reached_at
    clicked = _instant(entry.get("click_at"))
    if event == EngagementEvent.CLICKED:
        return clicked
    opened = _instant(entry.get("open_at"))
    found = [t for t in (opened, clicked) if t is not None]
    return min(found) if found else None


def decide(
    engagement: Engagement,
    entry: Mapping[str, Any] | None,
    journey: JourneyState | None,
    execution: str,
) -> Verdict:
    """The branch's side for one member: ``entry`` is their ledger entry of the engagement's
    send step (None: none), ``journey`` their ``JOURNEY#`` item (read for ``converted``),
    ``execution`` their entry's id."""
    base: dict[str, Any] = {
        "step": engagement.step,
        "event": engagement.event.value,
        "within_hours": engagement.within_hours,
    }
    status = str(entry.get("status", "")) if entry is not None else None
    start = sent_at(entry) if entry is not None else None
    if entry is None or status != "sent" or start is None:
        detail = {**base, **({"status": status} if status else {})}
        return Verdict(False, reason=NOT_SENT, detail=detail)
    base["sent_at"] = iso(start)
    if engagement.event == EngagementEvent.CLICKED and not clicks_measurable(entry):
        return Verdict(False, reason=NOT_MEASURED, detail={**base, LINKS_UNTRACKED: True})
    at = happened_at(engagement.event, entry, journey, execution)
    if at is None:
        return Verdict(False, reason=NOT_ENGAGED, detail=base)
    hours = round((at - start).total_seconds() / 3600, 2)
    detail = {**base, "found": iso(at), "hours": hours}
    if start < at <= start + timedelta(hours=engagement.within_hours):
        return Verdict(True, reason=None, detail=detail)
    return Verdict(False, reason=NOT_ENGAGED, detail=detail)
