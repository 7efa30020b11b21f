"""Yearly date triggers: birthdays, on the customer's local date."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kizuna.domain.customer import Customer
from kizuna.domain.ingest import apply_events
from kizuna.domain.yearly import celebrated_on, keys_for_window, month_day, occurrences
from kizuna.events import DerivedEvent
from kizuna.programs.claims import CLAIMS
from kizuna.programs.loader import TRIGGER_EVENTS
from kizuna.programs.sweeps import SweepKind
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.sweep import SweepRequest, run_sweep
from kizuna_tools.fakes import MemoryStore
from tests.factories import order, parsed, upsert

CFG = KizunaConfig()  # the shop's default time zone: Asia/Tokyo
TOKYO, NEW_YORK = ZoneInfo("Asia/Tokyo"), ZoneInfo("America/New_York")
NY = "America/New_York"
DAILY = SweepRequest(kinds=[SweepKind.BIRTHDAYS], lookback_minutes=1440)


def at(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=UTC)


# --- the domain: which date, when it starts ---------------------------------------------------
def test_29_february_is_celebrated_on_28_february_in_a_non_leap_year() -> None:
    leap = date(2000, 2, 29)
    assert celebrated_on(leap, 2028) == date(2028, 2, 29)
    assert celebrated_on(leap, 2027) == date(2027, 2, 28)
    assert celebrated_on(date(1990, 3, 1), 2027) == date(2027, 3, 1)
    assert month_day(leap) == "02-29"


def test_a_birthday_starts_at_local_midnight() -> None:
    born = date(1990, 6, 15)
    day = (at(2027, 6, 13), at(2027, 6, 17))
    # Tokyo: 15 June 00:00 JST is 14 June 15:00 UTC; New York (EDT): 15 June 04:00 UTC
    (tokyo,) = occurrences(born, TOKYO, *day)
    (new_york,) = occurrences(born, NEW_YORK, *day)
    assert (tokyo.day, tokyo.years, tokyo.starts_at) == (date(2027, 6, 15), 37, at(2027, 6, 14, 15))
    assert (new_york.day, new_york.starts_at) == (date(2027, 6, 15), at(2027, 6, 15, 4))
    # a window that ends just before local midnight has none; no celebration in the year of birth
    assert occurrences(born, TOKYO, at(2027, 6, 14), at(2027, 6, 14, 15)) == []
    assert occurrences(date(2027, 6, 15), TOKYO, *day) == []


def test_the_window_keys_cover_every_time_zone_and_the_leap_day() -> None:
    # a daily run at 16:00 UTC (01:00 in Tokyo) on 28 February 2027, a non-leap year
    keys = keys_for_window(at(2027, 2, 27, 16), at(2027, 2, 28, 16))
    assert keys == ["02-27", "02-28", "02-29", "03-01"]
    # in a leap year, 02-29 is a day of its own
    assert keys_for_window(at(2028, 2, 28, 16), at(2028, 2, 29, 16)) == ["02-28", "02-29", "03-01"]
    assert keys_for_window(at(2028, 3, 1, 16), at(2028, 3, 2, 16)) == ["03-01", "03-02", "03-03"]
    # over the year's end
    assert keys_for_window(at(2027, 12, 31, 16), at(2028, 1, 1, 16)) == ["01-01", "01-02", "12-31"]


@given(
    born=st.dates(min_value=date(1930, 1, 1), max_value=date(2010, 12, 31)),
    zone=st.sampled_from(["Asia/Tokyo", "America/New_York", "Pacific/Kiritimati", "Etc/GMT+12"]),
    start=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2031, 12, 31)),
    hours=st.integers(min_value=1, max_value=24 * 10),
)
def test_every_celebration_in_a_window_has_a_queried_key(
    born: date, zone: str, start: datetime, hours: int
) -> None:
    # whatever the zone and window, the index keys the sweep queries include the origin's
    begin = start.replace(tzinfo=UTC)
    end = begin + timedelta(hours=hours)
    if occurrences(born, ZoneInfo(zone), begin, end):
        assert month_day(born) in keys_for_window(begin, end)


def test_consecutive_windows_celebrate_each_year_once() -> None:
    # swept day by day for 9 years, a 29 February birthday comes back once a year
    born, tz = date(2000, 2, 29), NEW_YORK
    runs = [at(2024, 1, 1, 16) + timedelta(days=n) for n in range(9 * 366)]
    found = [o for a, b in pairwise(runs) for o in occurrences(born, tz, a, b)]
    assert [o.day for o in found] == [
        date(2024, 2, 29),
        date(2025, 2, 28),
        date(2026, 2, 28),
        date(2027, 2, 28),
        date(2028, 2, 29),
        date(2029, 2, 28),
        date(2030, 2, 28),
        date(2031, 2, 28),
        date(2032, 2, 29),
    ]
    assert [o.years for o in found] == list(range(24, 33))


# --- the sweep --------------------------------------------------------------------------------
class Publisher:
    def __init__(self) -> None:
        self.events: list[DerivedEvent] = []

    def publish(self, events: Sequence[DerivedEvent]) -> list[int]:
        self.events.extend(events)
        return []


def shop(*raws: dict[str, Any]) -> MemoryStore:
    store = MemoryStore()
    for raw in raws:
        ev = parsed(raw)
        cur = store.customers.get(ev.customer_id) or Customer(customer_id=ev.customer_id)
        store.customers[ev.customer_id] = apply_events(
            cur, [ev], CFG, ev.detail.occurred_at
        ).customer
    return store


def member(cid: str, born: str, zone: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"birth_date": born}
    if zone is not None:
        fields["time_zone"] = zone
    return upsert(cid, at(2024, 1, 1), f"ev-{cid}", **fields)


def daily(
    store: MemoryStore, publisher: Publisher, now: datetime, request: SweepRequest = DAILY
) -> list[tuple[str, str, str]]:
    """Run the sweep at ``now``; (customer, detail-type, local date) of what it put."""
    before = len(publisher.events)
    run_sweep(request, store, store, publisher, CFG, FixedClock(now))
    return [
        (e.detail.customer_id, e.detail_type, e.detail.model_dump(mode="json")["date"])
        for e in publisher.events[before:]
    ]


def test_birthdays_fire_on_the_local_date_around_midnight_utc() -> None:
    # given two customers born on 10 March, one in Tokyo, one in New York, and a third
    # without a time zone (the shop's: Tokyo)
    store = shop(
        member("tokyo", "1990-03-10", "Asia/Tokyo"),
        member("ny", "1985-03-10", "America/New_York"),
        member("shop-zone", "2000-03-10", None),
        member("other", "1990-03-11", "Asia/Tokyo"),
    )
    assert store.customers["tokyo"].birthday_mmdd == "03-10"
    publisher = Publisher()
    # when the sweep runs just after midnight UTC on 10 March (09:00 in Tokyo, 19:00 the
    # day before in New York), and again just before the next midnight UTC
    assert sorted(daily(store, publisher, at(2027, 3, 10, 0, 5))) == [
        ("shop-zone", "customer.birthday", "2027-03-10"),
        ("tokyo", "customer.birthday", "2027-03-10"),
    ]
    assert daily(store, publisher, at(2027, 3, 10, 4, 30)) == []  # 23:30 in New York
    assert daily(store, publisher, at(2027, 3, 10, 5, 30)) == [  # 01:30 in New York (EDT)
        ("ny", "customer.birthday", "2027-03-10")
    ]
    # then each fired once, with the age on that date and the zone it is local to
    details = {e.detail.customer_id: e.detail.model_dump(mode="json") for e in publisher.events}
    assert details["tokyo"]["age"] == 37 and details["tokyo"]["time_zone"] == "Asia/Tokyo"
    assert details["shop-zone"]["time_zone"] == "Asia/Tokyo"
    assert details["ny"]["age"] == 42
    assert details["ny"]["occurred_at"] == "2027-03-10T05:00:00Z"  # local midnight (EDT)
    assert details["ny"]["event_id"] == "ny:birthday:2027"


def test_a_rerun_the_same_day_repeats_the_same_event_ids() -> None:
    store = shop(member("tokyo", "1990-03-10", "Asia/Tokyo"))
    first, again = Publisher(), Publisher()
    daily(store, first, at(2027, 3, 10, 1))
    # a re-run of the same day (no watermark saved: a retry, or another store's run)
    store.watermarks.clear()
    daily(store, again, at(2027, 3, 10, 2))
    assert [e.detail for e in again.events] == [e.detail for e in first.events]
    assert len(first.events) == 1
    # and, with the watermark, the next run finds nothing more
    assert daily(store, first, at(2027, 3, 10, 3)) == []


@pytest.mark.parametrize(
    ("year", "expected"), [(2027, "2027-02-28"), (2028, "2028-02-29")], ids=["non-leap", "leap"]
)
def test_a_29_february_birthday_fires_once_in_a_leap_and_a_non_leap_year(
    year: int, expected: str
) -> None:
    # given a customer born on 29 February in New York, and daily runs at 16:00 UTC (01:00
    # in Tokyo, the schedule's time) from mid-February to mid-March
    store = shop(member("leap", "2000-02-29", "America/New_York"))
    assert store.customers["leap"].birthday_mmdd == "02-29"
    publisher = Publisher()
    fired: list[tuple[str, str, str]] = []
    for n in range(30):
        fired += daily(store, publisher, at(year, 2, 14, 16) + timedelta(days=n))
    # then the birthday fired once, on its local date
    assert fired == [("leap", "customer.birthday", expected)]
    assert publisher.events[0].detail.model_dump()["age"] == year - 2000


def test_no_birthday_for_customers_without_a_birth_date() -> None:
    # given a customer without a birth date, who orders (a first order is no yearly date)
    store = shop(
        upsert("x", at(2024, 1, 1), "ev-x", time_zone="Asia/Tokyo"),
        order("x", "o1", 3000, at(2025, 5, 9, 20)),
    )
    assert store.customers["x"].birthday_mmdd is None
    publisher = Publisher()
    for n in range(400):
        daily(store, publisher, at(2025, 1, 1, 16) + timedelta(days=n))
    assert publisher.events == []


def test_the_birthday_is_a_program_trigger_with_its_claim_checked() -> None:
    assert "customer.birthday" in TRIGGER_EVENTS
    store = shop(member("tokyo", "1990-03-10", "Asia/Tokyo"))
    publisher = Publisher()
    daily(store, publisher, at(2027, 3, 10, 1))
    (event,) = publisher.events
    detail = event.detail.model_dump(mode="json")
    customer = store.customers["tokyo"]
    check = CLAIMS["customer.birthday"]
    assert check(detail, customer, None)
    assert not check({**detail, "age": 36}, customer, None)
    moved = customer.model_copy(update={"birth_date": date(1990, 3, 11)})
    assert not check(detail, moved, None)


# --- a change of time zone on (or just before) the day -----------------------------------------
# New York's 10 March 2027 starts at 05:00 UTC (EST), Tokyo's at 15:00 UTC the day before.
NY_MIDNIGHT, TOKYO_MIDNIGHT = at(2027, 3, 10, 5), at(2027, 3, 9, 15)
HOURLY = SweepRequest(kinds=[SweepKind.BIRTHDAYS], lookback_minutes=60)


def test_a_move_east_makes_the_day_under_way_due_once() -> None:
    born = date(1990, 3, 10)
    # the window after a move to Tokyo at 20:00 UTC: Tokyo's midnight is behind it
    window = (at(2027, 3, 9, 19, 30), at(2027, 3, 9, 20, 30))
    assert occurrences(born, TOKYO, *window) == []
    (due,) = occurrences(born, TOKYO, *window, zone_changed_at=at(2027, 3, 9, 20))
    assert (due.day, due.years, due.starts_at) == (date(2027, 3, 10), 37, TOKYO_MIDNIGHT)
    # the previous run read after the change: it judged the day already
    seen = at(2027, 3, 9, 20, 25)
    assert occurrences(born, TOKYO, *window, at(2027, 3, 9, 20), seen_by=seen) == []
    # a change long before the day began: nothing more than local midnight
    assert occurrences(born, TOKYO, *window, zone_changed_at=at(2027, 1, 1)) == []
    # and not after the day ended in the new zone
    late = (at(2027, 3, 10, 15, 30), at(2027, 3, 10, 16, 30))
    assert occurrences(born, TOKYO, *late, zone_changed_at=at(2027, 3, 10, 16)) == []


@given(
    zone=st.sampled_from(["Asia/Tokyo", "America/New_York", "Pacific/Kiritimati", "Etc/GMT+12"]),
    start=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2031, 12, 31)),
)
def test_the_window_keys_name_the_dates_under_way_at_its_start(zone: str, start: datetime) -> None:
    # the local date under way at the window's start, in any zone, has its key queried (a
    # one-minute window: the narrowest the keys are asked for)
    begin = start.replace(tzinfo=UTC)
    local = begin.astimezone(ZoneInfo(zone)).date()
    keys = keys_for_window(begin, begin + timedelta(minutes=1))
    assert month_day(local) in keys
    if celebrated_on(date(2000, 2, 29), local.year) == local:  # 28 Feb of a non-leap year
        assert "02-29" in keys


ZONES = [
    "Asia/Tokyo",
    "America/New_York",
    "America/Los_Angeles",
    "Europe/London",
    "Australia/Sydney",
    "Pacific/Auckland",
    "Asia/Kolkata",
    "Pacific/Honolulu",
    "Pacific/Kiritimati",
    "Etc/GMT+12",
]


@given(
    born=st.dates(min_value=date(1950, 1, 1), max_value=date(2010, 12, 31)),
    old=st.sampled_from(ZONES),
    new=st.sampled_from(ZONES),
    hours=st.sampled_from([1, 3, 24]),
    phase=st.integers(min_value=0, max_value=23 * 60),
    change=st.integers(min_value=-3 * 24 * 60, max_value=3 * 24 * 60),
)
def test_a_zone_change_around_the_day_keeps_one_celebration(
    born: date, old: str, new: str, hours: int, phase: int, change: int
) -> None:
    # chained windows every `hours` (the customer read a second after each run starts), and
    # a move from `old` to `new` received within three days of the birthday (2027)
    day = celebrated_on(born, 2027)
    changed_at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(minutes=change)
    first = datetime.combine(day, datetime.min.time(), UTC) - timedelta(days=4, minutes=phase)
    runs = [first + timedelta(hours=hours * n) for n in range(8 * 24 // hours + 1)]
    found: list[date] = []
    for previous, (start, end) in zip([None, *runs], pairwise(runs), strict=False):
        seen = changed_at <= end + timedelta(seconds=1)
        tz = ZoneInfo(new) if seen else ZoneInfo(old)
        stamp = changed_at if seen and old != new else None  # ingest: only a change
        seen_by = None if previous is None else start - timedelta(minutes=5)
        found += [o.day for o in occurrences(born, tz, start, end, stamp, seen_by)]
    apart = local_midnight_gap(day, old, new)
    if old == new:
        assert found == [day]  # no change: exactly one, as before
    elif apart < timedelta(hours=23):  # all but the moves between the farthest zones
        assert set(found) == {day}  # never lost, repeats are the same id
        if hours == 24 and apart <= timedelta(0):  # a move west, daily: at most twice
            assert len(found) <= 2
    else:
        assert set(found) <= {day}


def local_midnight_gap(day: date, old: str, new: str) -> timedelta:
    """How much later the date starts in ``old`` than in ``new`` (> 0: a move east)."""
    start = datetime.combine(day, datetime.min.time())
    return start.replace(tzinfo=ZoneInfo(old)).astimezone(UTC) - start.replace(
        tzinfo=ZoneInfo(new)
    ).astimezone(UTC)


def fold(store: MemoryStore, raw: dict[str, Any], now: datetime) -> Customer:
    """Ingest one event received at ``now`` and save the customer (a stored item)."""
    ev = parsed(raw)
    cur = store.customers.get(ev.customer_id) or Customer(customer_id=ev.customer_id)
    result = apply_events(cur, [ev], CFG, now)
    store.put_activity(result.activity)
    return store.save_customer(result.customer, cur.version)


def hourly_day(
    store: MemoryStore, begin: datetime, hours: int, moves: dict[datetime, tuple[str, str]]
) -> Publisher:
    """Hourly runs (chained by the watermark) from ``begin``; ``moves``: at an instant, a
    customer's new time zone, received then."""
    publisher = Publisher()
    for n in range(hours):
        now = begin + timedelta(hours=n)
        for when, (cid, zone) in moves.items():
            if now - timedelta(hours=1) < when <= now:
                fold(store, upsert(cid, when, f"move-{cid}-{n}", time_zone=zone), when)
        daily(store, publisher, now, HOURLY)
    return publisher


def test_a_move_east_on_the_day_still_gets_the_birthday_once() -> None:
    # given customers born on 10 March in New York; one moves to Tokyo at 20:00 UTC on 9
    # March (after Tokyo's midnight: the runs before judged New York's, still to come)
    store = MemoryStore()
    for cid in ("mover", "stayer"):
        fold(store, member(cid, "1990-03-10", "America/New_York"), at(2024, 1, 1))
    moves = {at(2027, 3, 9, 20): ("mover", "Asia/Tokyo")}
    # when the sweep runs every hour for two days
    publisher = hourly_day(store, at(2027, 3, 8, 12, 30), 48, moves)
    # then each hears once: the mover in the first run after the move, the stayer at New
    # York's midnight (before the fix: the mover never)
    events = [(e.detail.customer_id, e.detail.event_id) for e in publisher.events]
    assert sorted(events) == [("mover", "mover:birthday:2027"), ("stayer", "stayer:birthday:2027")]
    mover = next(
        e.detail.model_dump(mode="json")
        for e in publisher.events
        if e.detail.customer_id == "mover"
    )
    assert mover["time_zone"] == "Asia/Tokyo" and mover["date"] == "2027-03-10"
    assert mover["occurred_at"] == "2027-03-09T15:00:00Z"  # Tokyo's midnight, deterministic
    assert store.customers["stayer"].time_zone_changed_at is None


def test_a_move_east_between_daily_runs_gets_the_birthday_once() -> None:
    # the deployed schedule: daily at 01:00 in Tokyo (16:00 UTC)
    store = MemoryStore()
    fold(store, member("mover", "1990-03-10", "America/New_York"), at(2024, 1, 1))
    publisher = Publisher()
    fired = daily(store, publisher, at(2027, 3, 8, 16)) + daily(
        store, publisher, at(2027, 3, 9, 16)
    )
    assert fired == []  # Tokyo's midnight was in this window, New York's is not yet
    fold(
        store,
        upsert("mover", at(2027, 3, 9, 20), "move", time_zone="Asia/Tokyo"),
        at(2027, 3, 9, 20),
    )
    fired = daily(store, publisher, at(2027, 3, 10, 16)) + daily(
        store, publisher, at(2027, 3, 11, 16)
    )
    assert fired == [("mover", "customer.birthday", "2027-03-10")]


def test_a_move_west_repeats_the_same_event_id() -> None:
    # given a customer born on 10 March in Tokyo, who hears at Tokyo's midnight and then
    # moves to New York (whose midnight is still to come)
    store = MemoryStore()
    fold(store, member("west", "1990-03-10", "Asia/Tokyo"), at(2024, 1, 1))
    moves = {at(2027, 3, 9, 20): ("west", "America/New_York")}
    publisher = hourly_day(store, at(2027, 3, 8, 12, 30), 48, moves)
    # then the event is put twice, with one id: downstream, the same trigger (deduplicated)
    assert [e.detail.event_id for e in publisher.events] == ["west:birthday:2027"] * 2


def test_no_zone_change_no_extra_event_over_a_day_of_hourly_runs() -> None:
    # given customers in many zones born on 10 March (one changed zone long ago)
    zones = [None, *ZONES]
    store = MemoryStore()
    for i, zone in enumerate(zones):
        fold(store, member(f"c{i}", "1990-03-10", zone), at(2024, 1, 1))
    fold(store, upsert("c1", at(2025, 1, 1), "old-move", time_zone="Europe/London"), at(2025, 1, 1))
    assert store.customers["c1"].time_zone_changed_at == at(2025, 1, 1)
    # when the sweep runs every hour over three days around the date
    publisher = hourly_day(store, at(2027, 3, 8, 12, 30), 72, {})
    # then exactly one event per customer
    ids = [e.detail.event_id for e in publisher.events]
    assert sorted(ids) == sorted(f"c{i}:birthday:2027" for i in range(len(zones)))


def test_a_first_zone_stamps_a_change_only_when_it_is_not_the_shops() -> None:
    # customers stored by an order before they signed up (no zone: the shop's, Tokyo)
    store = MemoryStore()
    for cid in ("same", "moved"):
        fold(store, order(cid, f"o-{cid}", 5000, at(2027, 3, 1)), at(2027, 3, 1))
        assert store.customers[cid].time_zone is None
    received = at(2027, 3, 9, 20)
    # signing up in the shop's zone moves nothing: no stamp, no extra birthday due
    signup = {"birth_date": "1990-03-10"}
    fold(store, upsert("same", at(2027, 3, 9), "s1", time_zone="Asia/Tokyo", **signup), received)
    assert store.customers["same"].time_zone == "Asia/Tokyo"
    assert store.customers["same"].time_zone_changed_at is None
    # signing up in another zone is a move from the shop's
    fold(store, upsert("moved", at(2027, 3, 9), "s2", time_zone=NY, **signup), received)
    assert store.customers["moved"].time_zone_changed_at == received


def test_ingest_stamps_a_zone_change_when_received_and_only_a_change() -> None:
    store = MemoryStore()
    received = at(2027, 3, 9, 20)
    # a new customer with a zone: not a change (no sweep has read them)
    fold(store, member("c", "1990-03-10", "America/New_York"), at(2024, 1, 1))
    assert store.customers["c"].time_zone_changed_at is None
    # the same zone again, or another field: no change
    fold(store, upsert("c", at(2027, 3, 1), "same", time_zone="America/New_York"), received)
    fold(store, upsert("c", at(2027, 3, 2), "name", first_name="Aiko"), received)
    assert store.customers["c"].time_zone_changed_at is None
    # an older event (late, reordered) that loses to the stored stamp: no change
    fold(store, upsert("c", at(2023, 1, 1), "stale", time_zone="Asia/Tokyo"), received)
    assert store.customers["c"].time_zone == "America/New_York"
    assert store.customers["c"].time_zone_changed_at is None
    # a change: stamped with when ingest received it, not when it occurred
    fold(store, upsert("c", at(2027, 3, 5), "move", time_zone="Asia/Tokyo"), received)
    assert store.customers["c"].time_zone_changed_at == received
    # a redelivery of it changes nothing (nor the stamp)
    fold(
        store,
        upsert("c", at(2027, 3, 5), "move", time_zone="Asia/Tokyo"),
        received + timedelta(hours=1),
    )
    assert store.customers["c"].time_zone_changed_at == received
