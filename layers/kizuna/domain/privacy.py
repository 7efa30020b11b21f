"""Erasure and access requests (APPI, GDPR): everything Kizuna holds about one customer.

A customer's data lives in three places: the customer item (profile, custom attributes
personal or not, addresses, device tokens, LINE id, suppressions with the hashes of the
addresses they stop, facts, loyalty, behaviour counters, and the idempotency records of
ingest in ``processed``), the customer's partition of the
activity table (orders, cancellations, points, consent, behaviour and custom events,
journeys, program decisions and the message ledger), and their member items in the cohorts
of their running journeys (``COHORT#<cohort>``, named by their activity items), which keep
what their trigger said. Erasure removes all three; an access request (:func:`export`)
shows all three, read the same way. What stays is anonymous: a daily count of
erasures (so aggregates that drop can be explained) and, for ``ERASED_MARKER_DAYS``, a
marker keyed by a hash of the id that stops an event still in flight from re-creating the
customer (ingest checks it before creating a customer it has never seen).

An erasure runs again by itself ``SWEEP_AFTER`` later (the *sweep*): a journey step, a
campaign or an event that read the customer before the erasure and wrote after it (the
residual window of docs/ARCHITECTURE.md "Privacy") has finished by then, and the sweep
deletes what it wrote. The marker notes the sweep once it is scheduled, so a retried
erasure, the sweep itself and any request after it schedule no other; an erasure retried
before the note (scheduling failed) schedules it then.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol

from kizuna.domain.timestamps import epoch_seconds

if TYPE_CHECKING:  # the adapters import this module: it loads no configuration
    from kizuna.runtime.config import CustomAttribute

ERASED_MARKER_DAYS = 30
# The sweep runs this long after an erasure: longer than any of the stack's functions runs
# (the longest Lambda timeout is scoring's 15 minutes; a campaign step's is 5;
# tests/infra/test_journey_timers.py holds it), so whatever read the customer before the
# erasure has written by then.
SWEEP_AFTER = timedelta(minutes=20)
ERASED_PREFIX = "ERASED#"
ERASED_SK = "ERASED"
ERASURES_PK = "ERASURES#"  # anonymous counters: sk = DAY#<yyyy-mm-dd>, attribute `count`

# Inbound events whose detail carries a direct identifier (an email address, a phone number,
# a name, a birth date, a push device token, a LINE user id, or the hash of an address a
# suppression stops: a SHA-256 without a key, kizuna.domain.loyalty.address_hash, which
# trying every phone number, or a list of email addresses, reverses). The bus's archive
# never keeps them (kizuna_infra.bus): erasure cannot reach into an EventBridge archive.
DIRECT_IDENTIFIER_EVENTS: frozenset[str] = frozenset(
    {
        "customer.upserted",
        "device.registered",
        "device.unregistered",
        "line.linked",
        "channel.suppressed",
    }
)
# Fields that are direct identifiers wherever an event carries them (checked by the tests
# against every event model, so a new event type that carries one cannot be archived); no
# journey entry keeps them of its trigger (kizuna.events.custom.Vocabulary.personal_fields).
DIRECT_IDENTIFIER_FIELDS: frozenset[str] = frozenset(
    {
        "email",
        "phone",
        "first_name",
        "last_name",
        "birth_date",
        "token",
        "line_user_id",
        "postal_address",
        "address_hash",
    }
)


MASK: Final = "***"


def mask(field: str, value: object) -> str | None:
    """A personal value as someone who may not see personal data sees it: enough to tell two
    customers apart on a call, not enough to contact them. The one masking function (the API,
    the console and anything else that shows a profile call it).

    ``email``: the first character of the local part and the domain (``h***@example.jp``);
    ``phone``: the last two digits (``***78``); ``birth_date``: the year (``1985-**-**``);
    ``postal_address`` (a mapping): its country and region (``JP 東京都 ***``);
    anything else (names, a LINE id): the first character (``Y***``). None stays None."""
    if value is None:
        return None
    if field == "postal_address" and isinstance(value, Mapping):
        return f"{value.get('country') or ''} {value.get('region') or ''} {MASK}".strip()
    text = str(value)
    if not text:
        return MASK
    match field:
        case "email":
            local, at, domain = text.rpartition("@")
            return f"{local[:1]}{MASK}@{domain}" if at and local else MASK
        case "phone":
            digits = [c for c in text if c.isdigit()]
            return MASK + "".join(digits[-2:]) if len(digits) > 4 else MASK
        case "birth_date":
            return f"{text[:4]}-**-**" if len(text) >= 4 else MASK
    return text[:1] + MASK


def mask_attribute(spec: CustomAttribute | None, name: str, value: Any) -> Any:
    """A custom attribute as someone who may not see personal data sees it: one declared
    personal (``spec``), or no longer declared (``spec`` None: nothing says it is not
    personal), masked as :func:`mask` masks the built-in fields (text: its first character,
    ``Y***``; a date: its year, ``1985-**-**``; a string list: each item; a number or a
    boolean: ``***``); any other as stored. None stays None."""
    if value is None or (spec is not None and not spec.personal):
        return value
    if isinstance(value, list | tuple):
        return [mask(name, item) for item in value]
    if spec is not None and spec.type == "date":  # ValueType.DATE
        return mask("birth_date", value)
    if isinstance(value, str):
        return mask(name, value)
    return MASK


def mask_attributes(
    attributes: Mapping[str, Any], declared: Mapping[str, CustomAttribute]
) -> dict[str, Any]:
    """A customer's custom attributes (name -> value) with :func:`mask_attribute` applied."""
    return {
        name: mask_attribute(declared.get(name), name, value) for name, value in attributes.items()
    }


def erased_key(customer_id: str) -> str:
    """The marker's key: a hash, never the id in clear."""
    digest = hashlib.sha256(f"kizuna-erased\x1f{customer_id}".encode()).hexdigest()
    return f"{ERASED_PREFIX}{digest}"


def program_of(execution: str) -> str:
    """``second-purchase-coupon-<32 hex>`` -> ``second-purchase-coupon`` (see execution_name)."""
    return execution.rsplit("-", 1)[0]


class PrivacyStore(Protocol):
    def customer_item(self, customer_id: str) -> dict[str, Any] | None: ...

    def activity(self, customer_id: str, prefix: str = "") -> list[dict[str, Any]]: ...

    def delete_activity(self, customer_id: str, sort_keys: Sequence[str]) -> None: ...

    def delete_customer(self, customer_id: str) -> bool:
        """Delete the customer item; True if there was one."""
        ...

    def mark_erased(self, key: str, expires_at: int, now: int) -> int | None:
        """Write the marker, expiring at ``expires_at``; the instant of the sweep a live
        marker (not expired by ``now``) notes as scheduled, or None (epoch seconds). An
        expired marker's notes (sweep, count) are forgotten."""
        ...

    def note_sweep(self, key: str, at: int) -> None:
        """Note on the marker that its sweep is scheduled at ``at``."""
        ...

    def count_erasure(self, day: str, key: str) -> None:
        """One more erasure on ``day``, unless the marker ``key`` was counted already."""
        ...


class ErasureSweeps(Protocol):
    def schedule(self, customer_id: str, at: datetime) -> None:
        """Have the erasure of ``customer_id`` run again at ``at`` (idempotent: scheduling
        the same customer again changes nothing)."""
        ...


class CohortLeaver(Protocol):
    def leave_cohort(self, cohort: str, customer_id: str) -> int:
        """Remove the customer's members from a journey cohort; how many there were."""
        ...


class CohortMembers(Protocol):
    def cohort_member_items(self, cohort: str, customer_id: str) -> list[dict[str, Any]]:
        """The customer's member items in a journey cohort, as stored: the items
        :meth:`CohortLeaver.leave_cohort` deletes."""
        ...


class CustomerAudit(Protocol):
    def of_customer(self, customer_id: str) -> list[dict[str, Any]]:
        """The audit rows whose target is the customer (a transactional send's)."""
        ...


@dataclass(frozen=True)
class ErasureReport:
    customer_found: bool
    activity_deleted: int
    journeys_stopped: int
    # the sweep this erasure scheduled; None if one was scheduled before (a retry, the sweep
    # itself or a later request) or no sweeps were given (kizuna customers erase)
    sweep_scheduled: datetime | None = None


def _cohorts(items: Sequence[dict[str, Any]]) -> list[str]:
    """Every journey cohort the customer entered: named by their JOURNEY# items (the
    latest entry of each program) and by the ledger rows of each entry and step (ENTRY,
    MSG#, STEP#), so an earlier entry of a program they re-entered, whose cohort is still
    due, is left too."""
    found = (str(item["cohort"]) for item in items if item.get("cohort"))
    return list(dict.fromkeys(found))


def erase(
    customer_id: str,
    store: PrivacyStore,
    cohorts: CohortLeaver,
    now: datetime,
    marker_days: int = ERASED_MARKER_DAYS,
    sweeps: ErasureSweeps | None = None,
) -> ErasureReport:
    """Remove everything held about ``customer_id``. Idempotent: erasing twice is harmless.

    Order matters: the marker first (from then on ingest will not re-create the customer),
    then the sweep scheduled (``sweeps``; so it runs even if this erasure fails from here on
    and is dead-lettered) and noted on the marker, the customer taken out of their journeys'
    cohorts before their activity is deleted (the next step of a cohort finds them no more;
    one running now could write a ledger entry, deleted again below and by the sweep), the
    customer item last. The cohorts' executions never carried the customer's id.

    A marker that notes a sweep already (a retried erasure, the sweep, a later request)
    schedules none. If scheduling fails, the customer is erased all the same and the error
    raised afterwards, so the request is retried (and schedules it then). The daily count
    counts a marker once.
    """
    marker = erased_key(customer_id)
    noted = store.mark_erased(
        marker, epoch_seconds(now + timedelta(days=marker_days)), epoch_seconds(now)
    )
    scheduled, failed = None, None
    if sweeps is not None and noted is None:
        try:
            sweeps.schedule(customer_id, now + SWEEP_AFTER)
            store.note_sweep(marker, epoch_seconds(now + SWEEP_AFTER))
            scheduled = now + SWEEP_AFTER
        except Exception as exc:  # erase all the same; raised at the end (a retry schedules)
            failed = exc
    items = store.activity(customer_id)
    stopped = sum(1 for cohort in _cohorts(items) if cohorts.leave_cohort(cohort, customer_id))
    deleted = len(items)
    store.delete_activity(customer_id, [str(i["sk"]) for i in items])
    # anything a journey wrote while it was being stopped
    late = store.activity(customer_id)
    if late:
        deleted += len(late)
        store.delete_activity(customer_id, [str(i["sk"]) for i in late])
    found = store.delete_customer(customer_id)
    if found or deleted:
        store.count_erasure(now.date().isoformat(), marker)
    if failed is not None:
        raise failed
    return ErasureReport(
        customer_found=found,
        activity_deleted=deleted,
        journeys_stopped=stopped,
        sweep_scheduled=scheduled,
    )


def export(
    customer_id: str,
    store: PrivacyStore,
    cohorts: CohortMembers,
    audit: CustomerAudit | None = None,
) -> dict[str, Any] | None:
    """Everything held about the customer (an access request), or None if nothing is: the
    customer item, the activity partition, the customer's member items in every journey
    cohort their items name (:func:`_cohorts`, read as :func:`erase` reads them: what
    erasure deletes, an access request shows) and, given ``audit``, the audit rows whose
    target is the customer (kept after an erasure: what was done, by whom). Not in it, as
    erasure does not search them: the anonymous marker and counter, the internal partitions
    that hold no customer id in clear (a transactional key's binding: hashes only), audit
    rows written before they were indexed by customer, and what docs/ARCHITECTURE.md
    "Privacy" lists as kept outside the tables."""
    customer = store.customer_item(customer_id)
    activity = store.activity(customer_id)
    audited = audit.of_customer(customer_id) if audit is not None else []
    if customer is None and not activity and not audited:
        return None
    members = [
        item
        for cohort in _cohorts(activity)
        for item in cohorts.cohort_member_items(cohort, customer_id)
    ]
    data: dict[str, Any] = {
        "customer_id": customer_id,
        "customer": customer,
        "activity": activity,
        "cohort_members": members,
    }
    if audit is not None:
        data["audit"] = audited
    return data
