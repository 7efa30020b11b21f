"""The collaborators domain code needs, as small protocols. Adapters for AWS live in
:mod:`kizuna.adapters.dynamodb` and :mod:`kizuna.integrations`; tests use the in-memory fakes in
:mod:`kizuna_tools.fakes`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from kizuna.campaigns.model import Campaign
from kizuna.delivery.coupons import IssuedCoupon, Redemption
from kizuna.domain.activity import ActivityItem
from kizuna.domain.customer import Customer
from kizuna.events import DerivedEvent, InboundDetail
from kizuna.events.derived import CampaignEvent


class MessageStamps(Protocol):
    """Engagement stamped on a ledger entry ``MSG#<execution>#<step>`` of a customer."""

    def stamp_message(
        self,
        customer_id: str,
        execution: str,
        step: str,
        field: str,
        value: str,
        message_id: str | None = None,
        channel: str | None = None,
        also: Mapping[str, str] | None = None,
    ) -> bool:
        """Set ``field`` to ``value`` (ISO) unless the entry holds an earlier one, with
        ``also``'s attributes where the entry has none yet; False when no such entry (sent
        on ``channel``, when given) or an earlier stamp."""
        ...


class VersionConflict(Exception):
    """Someone else saved the customer since it was read."""


class CustomerStore(Protocol):
    def get_customers(
        self, customer_ids: Sequence[str], *, unreadable_ok: bool = False
    ) -> dict[str, Customer]: ...

    def save_customer(self, customer: Customer, expected_version: int) -> Customer:
        """Save with optimistic concurrency; return the saved customer (version bumped)."""
        ...

    def put_activity(self, items: Iterable[ActivityItem]) -> None: ...

    def fact_log(self, customer_id: str) -> list[ActivityItem]:
        """The customer's ORDER, CANCEL and POINTS activity items (read only when an event
        concerns a fact the customer item has settled)."""
        ...

    def erased(self, customer_ids: Sequence[str], now: datetime) -> set[str]:
        """Ids erased recently, as of ``now`` (kizuna.domain.privacy): events for them must
        not re-create them."""
        ...

    def redeem_coupons(self, redemptions: Sequence[Redemption]) -> int:
        """Mark each named coupon of its customer ``redeemed``, on condition that it is that
        customer's, ``issued`` and unexpired at the order's time; how many were."""
        ...


@dataclass(frozen=True)
class Watermark:
    """How far one scheduled sweep got: index values up to ``edge``, read at ``ran_at``."""

    edge: datetime
    ran_at: datetime


class WatermarkStore(Protocol):
    def sweep_watermark(self, kind: str) -> Watermark | None: ...

    def save_sweep_watermark(self, kind: str, mark: Watermark) -> None:
        """Keep ``mark`` unless a later edge is already saved (it never moves back)."""
        ...


@dataclass(frozen=True)
class ScannedRow:
    """An ORDER or POINTS row as the points-lot backfill reads it: the item (its data only
    what the rule needs, ``delta``), its stored sort key, and whether it is in ``gsi1``."""

    item: ActivityItem
    sk: str
    indexed: bool


@dataclass(frozen=True)
class ScanPage:
    """One page of a scan of the activity table: how many items it read (the read cost),
    and the ORDER and POINTS rows among them."""

    scanned: int
    rows: list[ScannedRow]


class LotRows(Protocol):
    """The activity table as ``kizuna points backfill-lots`` reads and writes it."""

    def scan_lot_rows(self, segment: int = 0, total_segments: int = 1) -> Iterator[ScanPage]:
        """Every ORDER and POINTS row of one scan segment, page by page."""
        ...

    def add_lot_keys(self, customer_id: str, sk: str, keys: Mapping[str, str]) -> bool:
        """Write ``keys`` (``gsi1pk``, ``gsi1sk``) on the row if it still exists and has no
        ``gsi1pk``; False (nothing written) otherwise."""
        ...


class CustomerReader(Protocol):
    """Reads customers, strongly consistent (the unsubscribe function's only read)."""

    def get_customers(
        self, customer_ids: Sequence[str], *, unreadable_ok: bool = False
    ) -> dict[str, Customer]: ...


class Inbound(Protocol):
    """Puts facts Kizuna learns about a customer (``channel.suppressed``,
    ``device.unregistered``, ``consent.changed``) on the bus as inbound events, so ingest
    stays the only writer of the customer item."""

    def put_inbound(self, detail: InboundDetail) -> None: ...


class EventPublisher(Protocol):
    def publish(self, events: Sequence[DerivedEvent]) -> list[int]:
        """Put events on the bus; return the indexes of those that could not be put."""
        ...


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    body: str
    error_type: str
    reason: str
    receive_count: int


class DeadLetterSink(Protocol):
    def send(self, letters: Sequence[DeadLetter]) -> list[str]:
        """Keep letters with their reason; return message ids that could not be kept."""
        ...


# --- campaigns -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Contacted:
    """A customer's CONTACT item as read: ``sent`` (message key -> ISO time: what the
    frequency caps count) and its version ``v`` (0: an item written before versions). Every
    send a claim notes there is written on condition that the version is still the one read,
    and raises it."""

    sent: dict[str, str]
    version: int = 0


@dataclass(frozen=True)
class Claimed:
    """What :meth:`CampaignRecipients.claim_messages` did not write, by (customer,
    execution): ``duplicates``, claimed by someone else; ``conflicts``, claims of a send
    whose customer's CONTACT item changed since the read it was decided on (another send
    was noted meanwhile): nothing of theirs was written, to be decided again on a fresh
    read."""

    duplicates: set[tuple[str, str]] = field(default_factory=set)
    conflicts: set[tuple[str, str]] = field(default_factory=set)


@dataclass(frozen=True)
class Claim:
    """One recipient's ledger claim (a campaign batch's, or a journey Send task's): ``data``
    is the ledger entry; a send also records ``sent_at`` in the customer's CONTACT item, in
    the same write, under ``contact_key`` (None: the execution, a campaign occurrence's key;
    a journey's is ``<execution>#<step>``), removing ``stale`` keys and creating the item's
    map when the read found none, on condition that the item is still as read
    (``contact_exists``, ``contact_version``: :class:`Contacted`). The CONTACT item is what
    the frequency caps count, for journeys and campaigns alike.

    ``owner`` and ``token`` (:mod:`kizuna.delivery.ledger`): the execution that claims and
    the invocation that writes; a ``sending`` claim of the same owner not yet dispatched
    may be claimed again (a retry is the same caller)."""

    customer_id: str
    data: dict[str, Any]
    sent_at: str | None = None
    stale: tuple[str, ...] = ()
    contact_exists: bool = True
    contact_version: int = 0
    contact_key: str | None = None
    execution: str | None = None  # the ledger key's execution when not the batch's (cohorts)
    owner: str | None = None
    token: str | None = None

    def key(self, execution: str) -> tuple[str, str]:
        """(customer, the ledger key's execution), ``execution`` the batch's."""
        return self.customer_id, self.execution or execution


class CampaignRecipients(Protocol):
    """The customers and activity tables as the campaign batch sees them
    (:class:`kizuna.adapters.dynamodb.DynamoStore`)."""

    def scan_customers(self, segment: int = 0, total_segments: int = 1) -> Iterator[Customer]: ...

    def get_customers(
        self, customer_ids: Sequence[str], *, unreadable_ok: bool = False
    ) -> dict[str, Customer]: ...

    def read_recipients(
        self, customer_ids: Sequence[str]
    ) -> tuple[dict[str, Customer], dict[str, Contacted]]:
        """Customers and their CONTACT items (none: no item), together."""
        ...

    def claim_messages(self, execution: str, step: str, claims: Sequence[Claim]) -> Claimed:
        """Claim each (customer, execution, step) once, noting each send in CONTACT if the
        item is still as read; what was not written: the keys already claimed by someone
        else, and those whose CONTACT item changed since the read (:class:`Claimed`)."""
        ...

    def dispatch_messages(
        self, step: str, keys: Sequence[tuple[str, str]], token: str, at: str
    ) -> set[tuple[str, str]]:
        """Mark claimed ``sending`` entries dispatched (just before the provider call);
        return the keys this ``token`` does not own (do not send those)."""
        ...

    def record_messages(
        self,
        execution: str,
        step: str,
        entries: Sequence[tuple[str, dict[str, Any]]],
        coupons: Sequence[IssuedCoupon] = (),
    ) -> None:
        """The final entries, and the coupons of the messages sent (``COUPON#`` rows)."""
        ...

    def ledger_entries(
        self, customer_ids: Sequence[str], execution: str, step: str
    ) -> dict[str, dict[str, Any]]: ...


class ManifestNotDeleted(Exception):
    """Objects under a prefix could not be deleted (refused, or failing after retries)."""


class Manifest(Protocol):
    """The campaign manifest's objects (:class:`kizuna.adapters.s3.S3Objects`)."""

    def put_lines(self, key: str, lines: Sequence[Mapping[str, Any]]) -> None: ...

    def get_lines(self, key: str) -> list[dict[str, Any]] | None:
        """The object's lines; None when there is no such object."""
        ...

    def get(self, key: str) -> bytes | None: ...

    def keys(self, prefix: str) -> list[str]: ...

    def delete_prefix(self, prefix: str) -> int:
        """How many objects were deleted; :class:`ManifestNotDeleted` if any is left."""
        ...


@dataclass(frozen=True)
class StoredCampaign:
    """A campaign as stored: the definition, its own template files, the authoritative
    status (draft, scheduled, paused, cancelled, done), the definition's version, and how
    many of its occurrences have started (each start adds one, in the write that creates
    the occurrence: a write that changes the experiment is conditioned on it)."""

    campaign: Campaign
    templates: dict[str, str] = field(default_factory=dict)
    status: str = "draft"
    version: int = 0
    updated_at: str | None = None
    updated_by: str | None = None
    occurrences_started: int = 0


class DefinitionConflict(Exception):
    """A campaign definition written against a version that is no longer the stored one (or
    created where one exists already): read it again, then write."""


class CampaignDefinitions(Protocol):
    """The campaigns table (:class:`kizuna.adapters.campaigns.CampaignStore`)."""

    def get_definition(self, campaign_id: str) -> StoredCampaign | None: ...

    def get_state(
        self, campaign_id: str, occurrence: str
    ) -> tuple[StoredCampaign | None, dict[str, Any] | None]: ...

    def set_status(
        self, campaign_id: str, status: str, now: datetime, expected: set[str] | None = None
    ) -> bool: ...

    def start_occurrence(
        self,
        campaign_id: str,
        occurrence: str,
        scheduled_time: datetime,
        now: datetime,
        execution: str | None = None,
        version: int | None = None,
    ) -> bool:
        """Create the occurrence as running (noting the execution that runs it and the
        definition's version it runs); False if it exists. With ``version``, only while
        the definition is still that version, adding one to its ``occurrences_started``
        in the same write: else :class:`DefinitionConflict`."""
        ...

    def get_occurrence(self, campaign_id: str, occurrence: str) -> dict[str, Any] | None: ...

    def add_counts(
        self, campaign_id: str, occurrence: str, counts: Mapping[str, int], once: str | None = None
    ) -> dict[str, int]: ...

    def add_batch_counts(
        self,
        campaign_id: str,
        occurrence: str,
        batch: str,
        counts: Mapping[str, int],
        token: str,
        now: datetime,
    ) -> bool:
        """ADD a send batch's counts once per ``batch`` (its chunk key), with a marker of
        the batch written in the same request: True if the invocation holding ``token``
        added them, False if an earlier invocation of the batch had (nothing added)."""
        ...

    def stop_occurrence(
        self, campaign_id: str, occurrence: str, reason: str, now: datetime, status: str = ...
    ) -> bool: ...

    def set_winner(
        self, campaign_id: str, occurrence: str, winner: str, reason: str, *, decided: bool
    ) -> bool:
        """Record the winner once (``decided`` False: the test found none, ``winner`` is the
        first variant), as ``winner``, ``winner_reason`` and ``winner_decided``; False if a
        winner is already recorded (or no occurrence)."""
        ...

    def record_look(
        self,
        campaign_id: str,
        occurrence: str,
        number: int,
        look: Mapping[str, Any],
        next_look_at: datetime | None,
        winner: str | None = None,
        reason: str | None = None,
        *,
        decided: bool | None = None,
    ) -> bool:
        """Append look ``number`` (1-based) with the next look's time or the final winner
        (with ``decided``, as :meth:`set_winner`), at once; False if the winner is chosen or
        that look is already recorded."""
        ...

    def complete_occurrence(self, campaign_id: str, occurrence: str, now: datetime) -> bool: ...


class CampaignEventSink(Protocol):
    def publish(self, event: CampaignEvent) -> bool:
        """Put a campaign event on the bus; False if it could not be put."""
        ...


@dataclass(frozen=True)
class ExecutionState:
    """A Step Functions execution's status and, once it has ended, when."""

    status: str  # RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, PENDING_REDRIVE
    stopped_at: datetime | None = None


class ExecutionStatuses(Protocol):
    """Step Functions executions, by ARN (:class:`kizuna.adapters.stepfunctions.Executions`)."""

    def state(self, execution_arn: str) -> ExecutionState | None:
        """None when there is no such execution (its history is kept 90 days after it
        ended). :class:`ExecutionsUnavailable` when Step Functions does not answer."""
        ...


class ExecutionsUnavailable(Exception):
    """Step Functions did not say what an execution is (throttled, refused, unreachable)."""


class ReportObjects(Protocol):
    """The published reports in the analytics bucket (:class:`kizuna.adapters.s3.S3Objects`)."""

    def put(self, key: str, body: bytes, content_type: str = "application/json") -> None: ...

    def get(self, key: str) -> bytes | None: ...

    def keys(self, prefix: str) -> list[str]: ...


@dataclass(frozen=True)
class PutOutcome:
    """One inbound event put on the bus: its event id, or the error it was answered with."""

    event_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None


class ShopEvents(Protocol):
    """The shop's inbound events onto the bus (:class:`kizuna.adapters.eventbridge.
    ShopEventBus`): ``(detail-type, detail JSON)`` each, outcomes in order."""

    source: str

    def put(self, events: Sequence[tuple[str, str]]) -> list[PutOutcome]: ...
