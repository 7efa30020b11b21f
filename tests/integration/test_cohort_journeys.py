"""2,000 customers enter one program at the same instant (issue 15): every customer's path,
ledger and delivered messages against a per-customer reference computed in plain Python.

The program (``tests/fixtures/cohort_project``) waits until 10:00 in the customer's time
zone at least a day after entry, sends a coupon (email, else LINE), waits three days,
branches on fresh state (still one order?) and sends a reminder (LINE, else email); a
second order is the goal and ends the journey; 10% are held out by stable hash.

The customers differ in what makes a cohort engine group or split them: time zone (the
local-time wait ends at different instants), channels consented at entry (email, LINE,
both, none), consent withdrawn after entry (fallback or suppression at send time), a
second order before the coupon (goal: no coupon), during the three-day wait (the branch
ends the journey) or after the reminder (nothing changes), and holdout.

The reference (:func:`expected`) knows nothing of the system: it reads the inputs. The
comparison is per customer: the ENTRY decision, the MSG ledger entries (step, status,
channel, reason), the execution each entry names, the conversions, and the messages the
fake providers received (SES in moto, the LINE recorder): step, channel, language, when.

Precision contract (either engine): a wait ends between its exact instant and
:data:`PRECISION` after it. The coupon goes out within ``[exact, exact + PRECISION]`` of
the reference's instant; the three-day wait starts when the coupon step ran, so the
reminder goes out within ``[coupon step + 3 days, + PRECISION]``.

``KIZUNA_COHORT_TEST_CUSTOMERS`` sets the cohort size (default 2,000; at least 100, so
that every kind of customer is in it).
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import random
import time as wall
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest

from kizuna.programs.journeys import in_holdout
from kizuna.programs.loader import load_programs
from kizuna_tools.local.cloud import LocalCloud
from tests.integration.conftest import DEMO_CHANNELS, ProjectCloud, project_template

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "cohort_project"
PROGRAM = load_programs(FIXTURE / "programs")[0][0]
CUSTOMERS = int(os.environ.get("KIZUNA_COHORT_TEST_CUSTOMERS", "2000"))
SEED = 15

# Everyone's first order, at one instant: 09:30 in Tokyo, 00:30 in London, 19:30 the evening
# before in New York. (Tokyo and London get the coupon the next morning; New York two
# mornings later: 10:00 on the day after entry is less than a day after 19:30.)
T0 = datetime(2026, 1, 5, 0, 30, tzinfo=UTC)
END = T0 + timedelta(days=6)
PRECISION = timedelta(minutes=60)
SETTLE = timedelta(days=1)  # the program's first wait: a day, then until 10:00 local
COUPON_LOCAL = time(10, 0)
WAIT_USE = timedelta(days=3)

TOKYO, NEW_YORK, LONDON = "Asia/Tokyo", "America/New_York", "Europe/London"
COUPON_CHANNELS = ("email", "line")
REMINDER_CHANNELS = ("line", "email")

# What a customer does after entering, and when (after T0). Each lands strictly between
# the steps it is meant to fall between, for every time zone, with PRECISION to spare:
# coupons go out between T0 + 1d 00:30 (Tokyo) and T0 + 1d 14:30 (New York), reminders
# three days after.
STAYS = "stays"
WITHDRAWS_EMAIL = "withdraws_email"  # email consent withdrawn before the coupon
WITHDRAWS_ALL = "withdraws_all"  # every consent withdrawn before the coupon
WITHDRAWS_ALL_LATER = "withdraws_all_after_coupon"  # ... after the coupon
ORDERS_EARLY = "orders_before_coupon"  # the goal before the coupon
ORDERS_IN_WAIT = "orders_during_wait"  # the goal between coupon and branch
ORDERS_LATE = "orders_after_reminder"  # the goal after the journey ended
ACTION_AT = {
    WITHDRAWS_EMAIL: T0 + timedelta(hours=2),
    WITHDRAWS_ALL: T0 + timedelta(hours=2),
    ORDERS_EARLY: T0 + timedelta(hours=3),
    WITHDRAWS_ALL_LATER: T0 + timedelta(days=2),
    ORDERS_IN_WAIT: T0 + timedelta(days=2, hours=12),
    ORDERS_LATE: T0 + timedelta(days=5, hours=12),
}
BEHAVIOURS = {
    STAYS: 52,
    WITHDRAWS_EMAIL: 8,
    WITHDRAWS_ALL: 6,
    WITHDRAWS_ALL_LATER: 6,
    ORDERS_EARLY: 8,
    ORDERS_IN_WAIT: 12,
    ORDERS_LATE: 8,
}
CHANNEL_SETS = {("email",): 33, ("line",): 25, ("email", "line"): 37, (): 5}
ZONES = {TOKYO: 70, NEW_YORK: 15, LONDON: 15}


# --- the cohort ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """One customer's inputs: everything the reference may look at."""

    cid: str
    time_zone: str
    locale: str
    channels: tuple[str, ...]  # consented at signup
    behaviour: str

    @property
    def email(self) -> str:
        return f"{self.cid}@example.jp"

    @property
    def line_user_id(self) -> str:
        return "U" + f"{int(self.cid[1:]):032x}"

    def consented(self, at: datetime) -> set[str]:
        """The channels the customer has consented to at ``at``."""
        withdrawn: set[str] = set()
        if self.behaviour in ACTION_AT and ACTION_AT[self.behaviour] <= at:
            if self.behaviour == WITHDRAWS_EMAIL:
                withdrawn = {"email"}
            elif self.behaviour in (WITHDRAWS_ALL, WITHDRAWS_ALL_LATER):
                withdrawn = set(self.channels)
        return set(self.channels) - withdrawn

    def second_order_at(self) -> datetime | None:
        if self.behaviour in (ORDERS_EARLY, ORDERS_IN_WAIT, ORDERS_LATE):
            return ACTION_AT[self.behaviour]
        return None


def cohort(size: int) -> list[Person]:
    """``size`` customers, a deterministic mix (a seeded generator)."""
    rng = random.Random(SEED)

    def pick(weights: Mapping[Any, int]) -> Any:
        return rng.choices(list(weights), weights=list(weights.values()))[0]

    people = []
    for i in range(size):
        zone = pick(ZONES)
        # most in Tokyo read Japanese, a few English; abroad, the other way round
        japanese = rng.random() < (0.9 if zone == TOKYO else 0.1)
        people.append(
            Person(
                cid=f"c{i:05d}",
                time_zone=zone,
                locale="ja" if japanese else "en",
                channels=pick(CHANNEL_SETS),
                behaviour=pick(BEHAVIOURS),
            )
        )
    return people


# --- the reference ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One expected MSG ledger entry."""

    step: str
    status: str  # sent | suppressed | exit
    channel: str | None
    reason: str | None
    nominal: datetime  # the exact instant of the step (the reminder's: from the nominal coupon)

    def key(self) -> tuple[str, str, str | None, str | None]:
        return (self.step, self.status, self.channel, self.reason)


@dataclass(frozen=True)
class Expected:
    decision: str  # ENTRY decision: entered | holdout | skipped
    reason: str | None
    messages: tuple[Message, ...]
    converts: bool

    def sends(self) -> list[tuple[str, str]]:
        return sorted(
            (m.step, m.channel) for m in self.messages if m.channel and m.status == "sent"
        )


def next_local_time(after: datetime, at: time, zone: str) -> datetime:
    """The first instant at or after ``after`` whose wall-clock time in ``zone`` is ``at``."""
    tz = ZoneInfo(zone)
    local = after.astimezone(tz)
    candidate = datetime(local.year, local.month, local.day, at.hour, at.minute, tzinfo=tz)
    if candidate < local:
        day = local.date() + timedelta(days=1)
        candidate = datetime(day.year, day.month, day.day, at.hour, at.minute, tzinfo=tz)
    return candidate.astimezone(UTC)


def send_step(
    person: Person, step: str, channels: Sequence[str], at: datetime, entered: datetime
) -> Message:
    """A send step at ``at``: the goal since entry ends the journey; else the first channel
    of ``channels`` the customer consents to; else suppressed."""
    order = person.second_order_at()
    if order is not None and entered < order <= at:
        return Message(step, "exit", None, "goal_reached", at)
    usable = person.consented(at)
    channel = next((c for c in channels if c in usable), None)
    if channel is None:
        return Message(step, "suppressed", None, "no_channel", at)
    return Message(step, "sent", channel, None, at)


def expected(person: Person) -> Expected:
    """What should happen to ``person``, from the inputs alone."""
    entered = T0
    if not person.channels:
        return Expected("skipped", "no_channel", (), False)
    # the goal counts for treated and holdout customers alike, within 30 days of entry
    order = person.second_order_at()
    converts = order is not None and entered < order <= entered + timedelta(days=30)
    if in_holdout(PROGRAM, person.cid):
        return Expected("holdout", "holdout", (), converts)
    coupon_at = next_local_time(entered + SETTLE, COUPON_LOCAL, person.time_zone)
    coupon = send_step(person, "coupon", COUPON_CHANNELS, coupon_at, entered)
    if coupon.status == "exit":
        return Expected("entered", None, (coupon,), converts)
    branch_at = coupon_at + WAIT_USE
    orders = 2 if order is not None and order <= branch_at else 1
    if orders >= 2:  # the branch: still one order? no -> done
        return Expected("entered", None, (coupon,), converts)
    reminder = send_step(person, "reminder", REMINDER_CHANNELS, branch_at, entered)
    return Expected("entered", None, (coupon, reminder), converts)


# --- driving the local cloud -----------------------------------------------------------------


def event(detail_type: str, detail: dict[str, Any], at: datetime) -> dict[str, Any]:
    return {
        "Source": "com.example.shop",
        "DetailType": detail_type,
        "Detail": {"occurred_at": at.isoformat(), **detail},
    }


def signup_events(person: Person, at: datetime) -> list[dict[str, Any]]:
    ja = person.locale == "ja"
    events = [
        event(
            "customer.upserted",
            {
                "customer_id": person.cid,
                "email": person.email,
                "phone": "+819012345678",
                "first_name": "花子" if ja else "Alex",
                "last_name": "山田" if ja else "Smith",
                "locale": person.locale,
                "time_zone": person.time_zone,
            },
            at,
        )
    ]
    if "line" in person.channels:
        events.append(
            event(
                "line.linked", {"customer_id": person.cid, "line_user_id": person.line_user_id}, at
            )
        )
    for channel in person.channels:
        events.append(consent(person, channel, "opted_in", at))
    return events


def consent(person: Person, channel: str, status: str, at: datetime) -> dict[str, Any]:
    return event(
        "consent.changed", {"customer_id": person.cid, "channel": channel, "status": status}, at
    )


def order_event(person: Person, n: int, at: datetime) -> dict[str, Any]:
    total = str(3000 if n == 1 else 2000)
    return event(
        "order.placed",
        {
            "customer_id": person.cid,
            "order_id": f"o-{person.cid}-{n}",
            "total": total,
            "currency": "JPY",
            "channel": "web",
            "lines": [
                {"product_id": "tea-009", "category": "tea", "quantity": 1, "unit_price": total}
            ],
        },
        at,
    )


def action_events(person: Person, at: datetime) -> list[dict[str, Any]]:
    if person.behaviour == WITHDRAWS_EMAIL:
        return [consent(person, "email", "opted_out", at)] if "email" in person.channels else []
    if person.behaviour in (WITHDRAWS_ALL, WITHDRAWS_ALL_LATER):
        return [consent(person, c, "opted_out", at) for c in person.channels]
    return [order_event(person, 2, at)]


@dataclass
class EmailLog:
    """Every SES send request a handler makes, with the virtual time it was made at (the
    handlers' clients come from boto3's default session: hook there)."""

    cloud: LocalCloud
    sent: list[tuple[datetime, str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.sent.append((self.cloud.clock.now(), str(model.name), dict(params)))


@pytest.fixture(scope="module")
def cohort_template() -> dict[str, Any]:
    """The Kizuna stack with the fixture's programs and templates, as the demo configures
    it (every channel on)."""
    return project_template(FIXTURE, **DEMO_CHANNELS)


@pytest.fixture
def cohort_cloud(
    cohort_template: dict[str, Any], project_cloud: ProjectCloud
) -> Iterator[tuple[LocalCloud, EmailLog]]:
    """The fixture's app at T0, channels prepared; the functions read the fixture's
    programs and templates (on Lambda they are bundled next to the handlers)."""
    cloud = project_cloud(
        cohort_template,
        FIXTURE,
        start=T0,
        ttl_sweep_interval=timedelta(days=1),
        execution_timeout=300.0,
    )
    log = EmailLog(cloud)
    events = boto3.DEFAULT_SESSION.events
    events.register("before-parameter-build.sesv2", log)
    try:
        yield cloud, log
    finally:
        events.unregister("before-parameter-build.sesv2", log)


# --- reading back what happened --------------------------------------------------------------


@dataclass(frozen=True)
class Delivered:
    """One message a provider received."""

    channel: str
    step: str | None  # from the template's ref marker
    at: datetime
    text: str


def ref_step(text: str) -> str | None:
    steps = [s for s in ("coupon", "reminder") if f"ref:cohort-{s}" in text]
    return steps[0] if len(steps) == 1 else None


def email_text(content: Mapping[str, Any]) -> str:
    """Subject and text of an SES v2 ``Content`` (simple or raw MIME)."""
    if "Simple" in content:
        simple = content["Simple"]
        return "\n".join(
            [
                str(simple.get("Subject", {}).get("Data", "")),
                str(simple.get("Body", {}).get("Text", {}).get("Data", "")),
            ]
        )
    data = content.get("Raw", {}).get("Data", b"")
    message = email.message_from_bytes(
        data if isinstance(data, bytes) else str(data).encode(), policy=email.policy.default
    )
    parts = [str(message.get("Subject", ""))]
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            parts.append(str(part.get_content()))
    return "\n".join(parts)


def email_recipients(operation: str, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(address, text) of each message of a SendEmail or SendBulkEmail request."""
    if operation == "SendEmail":
        text = email_text(params.get("Content", {}))
        return [(a, text) for a in params.get("Destination", {}).get("ToAddresses", [])]
    found = []
    for entry in params.get("BulkEmailEntries", []):
        text = json.dumps(entry, ensure_ascii=False, default=str)
        found += [(a, text) for a in entry.get("Destination", {}).get("ToAddresses", [])]
    return found


def delivered(
    cloud: LocalCloud, log: EmailLog, people: Sequence[Person]
) -> dict[str, list[Delivered]]:
    """Each customer's delivered messages; unknown recipients under ``"?"``."""
    by_email = {p.email: p.cid for p in people}
    by_line = {p.line_user_id: p.cid for p in people}
    out: dict[str, list[Delivered]] = defaultdict(list)
    for at, operation, params in log.sent:
        for address, text in email_recipients(operation, params):
            out[by_email.get(address, "?")].append(Delivered("email", ref_step(text), at, text))
    for message in cloud.outbox("line"):
        if "messages" not in message:
            continue
        to = message.get("to")
        text = "\n".join(str(m.get("text", "")) for m in message["messages"])
        for user in to if isinstance(to, list) else [to]:
            out[by_line.get(str(user), "?")].append(
                Delivered("line", ref_step(text), message["at"], text)
            )
    return out


def moto_email_counts(cloud: LocalCloud) -> Counter[str]:
    """How many emails moto's SES holds per recipient address (what was really sent)."""
    counts: Counter[str] = Counter()
    for mail in cloud.outbox("email"):
        destinations = mail.get("destinations") or {}
        addresses = (
            destinations.get("ToAddresses", []) if isinstance(destinations, dict) else destinations
        )
        for address in addresses:
            counts[str(address)] += 1
    return counts


def executions(cloud: LocalCloud) -> set[str]:
    """Every Step Functions execution's name and ARN."""
    sfn = cloud.client("stepfunctions")
    found: set[str] = set()
    for machine in sfn.list_state_machines()["stateMachines"]:
        pages = sfn.get_paginator("list_executions").paginate(
            stateMachineArn=machine["stateMachineArn"]
        )
        for page in pages:
            for execution in page["executions"]:
                found |= {execution["name"], execution["executionArn"]}
    return found


def when(value: Any) -> datetime:
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def within(at: datetime, exact: datetime) -> bool:
    return exact <= at <= exact + PRECISION


def late(exact: datetime) -> str:
    return f"expected {exact.isoformat()} to {(exact + PRECISION).isoformat()}"


# --- the comparison --------------------------------------------------------------------------

STEP_ORDER = {"coupon": 0, "reminder": 1}


@dataclass
class Observed:
    """What the system did: the program's activity items per customer and kind, every
    execution's name and ARN, and the messages each customer received."""

    records: dict[str, dict[str, list[dict[str, Any]]]]
    executions: set[str]
    inbox: dict[str, list[Delivered]]

    @classmethod
    def read(cls, cloud: LocalCloud, log: EmailLog, people: Sequence[Person]) -> Observed:
        table = cloud.find("AWS::DynamoDB::Table", "Activity")[0].logical_id
        records: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        for item in cloud.scan(table):
            if item.get("program") == PROGRAM.id:
                records[str(item["pk"])][str(item.get("kind"))].append(item)
        return cls(records, executions(cloud), delivered(cloud, log, people))


def compare(person: Person, exp: Expected, seen: Observed) -> list[str]:
    """Every way the system's record of ``person`` differs from the reference."""
    mine = seen.records.get(person.cid, {})
    where = f"{person.cid} ({person.time_zone}, {person.locale}, {person.channels}, "
    where += f"{person.behaviour})"
    problems = []
    # the entry decision, once
    entries = [(e.get("decision"), e.get("reason")) for e in mine.get("ENTRY", [])]
    if entries != [(exp.decision, exp.reason)]:
        problems.append(f"{where}: ENTRY {entries}, expected {[(exp.decision, exp.reason)]}")
    # the conversion, treated and holdout alike
    if len(mine.get("CONV", [])) != int(exp.converts):
        problems.append(f"{where}: {len(mine.get('CONV', []))} CONV, expected {int(exp.converts)}")
    # the ledger: one entry per step reached, with its outcome and reason
    ledger = sorted(mine.get("MSG", []), key=lambda m: (STEP_ORDER.get(str(m["step"]), 9), m["sk"]))
    got = [
        (
            str(m["step"]),
            str(m["status"]),
            m.get("channel"),
            None if m["status"] == "sent" else m.get("reason"),
        )
        for m in ledger
    ]
    want = [m.key() for m in exp.messages]
    if got != want:
        return [*problems, f"{where}: ledger {got}, expected {want}"]
    # when each step ran: the coupon's exact instant is the reference's; the reminder's is
    # three days after the coupon step actually ran (the wait starts then)
    ran: dict[str, datetime] = {}
    window: dict[str, datetime] = {}
    for entry, message in zip(ledger, exp.messages, strict=True):
        exact = ran["coupon"] + WAIT_USE if message.step == "reminder" else message.nominal
        ran[message.step], window[message.step] = when(entry["at"]), exact
        if not within(ran[message.step], exact):
            problems.append(f"{where}: {message.step} ran at {entry['at']}, {late(exact)}")
        # the execution that carried it: per customer (``execution``) or per cohort (``run``)
        carriers = [entry.get(k) for k in ("execution", "run") if entry.get(k)]
        if not any(str(c) in seen.executions for c in carriers):
            problems.append(f"{where}: {message.step} names no execution that exists: {carriers}")
    # what the providers received: each expected message once, nothing else, in time
    mail = seen.inbox.get(person.cid, [])
    received = Counter((d.step, d.channel) for d in mail)
    if sorted(received.elements()) != exp.sends():
        twice = [k for k, n in received.items() if n > 1]
        return [
            *problems,
            f"{where}: received {sorted(received.elements())} (twice: {twice}), "
            f"expected {exp.sends()}",
        ]
    for d in mail:
        assert d.step is not None
        if not within(d.at, window[d.step]):
            problems.append(
                f"{where}: {d.step} by {d.channel} at {d.at.isoformat()}, {late(window[d.step])}"
            )
        if any("\u3040" <= ch <= "\u30ff" for ch in d.text) != (person.locale == "ja"):
            problems.append(f"{where}: {d.step} by {d.channel} is not in {person.locale}")
        code = next((m.get("coupon") for m in ledger if m["step"] == d.step), None)
        if d.step == "coupon" and (not code or str(code) not in d.text):
            problems.append(f"{where}: the ledger's coupon {code!r} is not in the message")
    return problems


def coverage(people: Sequence[Person], reference: Mapping[str, Expected]) -> Counter[str]:
    """How many customers of each kind the reference expects (entered ones by zone and
    behaviour, messages by step, status and channel)."""
    kinds: Counter[str] = Counter()
    for person in people:
        exp = reference[person.cid]
        kinds[exp.decision] += 1
        kinds[f"zone:{person.time_zone}"] += exp.decision == "entered"
        kinds[f"behaviour:{person.behaviour}"] += exp.decision == "entered"
        for m in exp.messages:
            kinds[f"{m.step}:{m.status}:{m.channel}"] += 1
    return kinds


def lateness(
    people: Sequence[Person], reference: Mapping[str, Expected], seen: Observed
) -> dict[str, timedelta]:
    """How late each step ran at worst: the coupon after the reference's instant, the
    reminder after three days from the coupon step (for the report, not asserted)."""
    worst: dict[str, timedelta] = {}
    for person in people:
        ran = {
            str(m["step"]): when(m["at"]) for m in seen.records.get(person.cid, {}).get("MSG", [])
        }
        for message in reference[person.cid].messages:
            if message.step not in ran:
                continue
            exact = ran["coupon"] + WAIT_USE if message.step == "reminder" else message.nominal
            delay = ran[message.step] - exact
            worst[message.step] = max(worst.get(message.step, delay), delay)
    return worst


# --- the test --------------------------------------------------------------------------------


def test_a_cohort_of_simultaneous_entries_follows_the_reference_per_customer(
    cohort_cloud: tuple[LocalCloud, EmailLog], capsys: pytest.CaptureFixture[str]
) -> None:
    cloud, log = cohort_cloud
    people = cohort(CUSTOMERS)
    reference = {p.cid: expected(p) for p in people}
    # every kind of customer is in the cohort: nothing passes for want of a case
    kinds = coverage(people, reference)
    needed = [
        "entered",
        "holdout",
        "skipped",
        *(f"zone:{z}" for z in ZONES),
        *(f"behaviour:{b}" for b in BEHAVIOURS),
        *(f"{s}:sent:{c}" for s in STEP_ORDER for c in ("email", "line")),
        *(f"{s}:suppressed:None" for s in STEP_ORDER),
        "coupon:exit:None",
    ]
    assert all(kinds[k] for k in needed), ("a bigger cohort, please", {k: kinds[k] for k in needed})
    started = wall.perf_counter()

    # Given the whole cohort signed up, then every first order at the same instant
    cloud.put_events([e for p in people for e in signup_events(p, T0)])
    cloud.drain()
    cloud.put_events([order_event(p, 1, T0) for p in people])
    cloud.drain()
    entered = wall.perf_counter()
    # When they withdraw consent and order again at their moments, and six days pass
    for at in sorted(set(ACTION_AT.values())):
        cloud.advance_to(at, wake="batch")
        acting = [p for p in people if ACTION_AT.get(p.behaviour) == at]
        cloud.put_events([e for p in acting for e in action_events(p, at)])
        cloud.drain()
    cloud.advance_to(END, wake="batch")
    finished = wall.perf_counter()

    # Then every customer's entry, ledger, executions and messages are the reference's
    seen = Observed.read(cloud, log, people)
    problems = [p for person in people for p in compare(person, reference[person.cid], seen)]
    if "?" in seen.inbox:
        problems.append(f"{len(seen.inbox['?'])} messages to addresses outside the cohort")
    # (SES received exactly what the handlers asked it to send)
    asked = Counter(a for _, op, params in log.sent for a, _ in email_recipients(op, params))
    if moto_email_counts(cloud) != asked:
        problems.append("SES holds other emails than the handlers asked it to send")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:40])
    # holdouts got nothing (compare() says so per customer; this says it of all of them)
    holdouts = [p.cid for p in people if reference[p.cid].decision == "holdout"]
    assert not [c for c in holdouts if seen.inbox.get(c) or seen.records.get(c, {}).get("MSG")]
    errors = [(e.function, e.error.get("errorMessage")) for e in cloud.errors]
    assert not errors, errors[:5]
    assert not any(cloud.dlq_messages().values())
    with capsys.disabled():
        print(
            f"\ncohort of {CUSTOMERS}: entry {entered - started:.0f}s, "
            f"journeys {finished - entered:.0f}s, checks {wall.perf_counter() - finished:.0f}s; "
            f"{sum(len(v) for v in seen.inbox.values())} messages; latest: "
            + ", ".join(f"{k} +{v}" for k, v in lateness(people, reference, seen).items())
            + "; "
            + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items()))
        )
