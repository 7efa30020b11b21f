"""The membership anniversary (``customer.anniversary``): the local date of ``member_since``
each year from the first, found through the MEMBER activity rows, once per year."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kizuna.domain.customer import Customer
from kizuna.domain.ingest import apply_events
from kizuna.events import DerivedEvent
from kizuna.programs.claims import CLAIMS
from kizuna.programs.loader import TRIGGER_EVENTS, load_program
from kizuna.programs.sweeps import SweepKind
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.sweep import SweepRequest, run_sweep
from kizuna_tools.fakes import MemoryStore
from tests.factories import parsed, upsert

CFG = KizunaConfig()  # the shop's default time zone: Asia/Tokyo
DAILY = SweepRequest(kinds=[SweepKind.ANNIVERSARIES], lookback_minutes=1440)


def at(y: int, m: int, d: int, h: int = 0) -> datetime:
    return datetime(y, m, d, h, tzinfo=UTC)


class Publisher:
    def __init__(self) -> None:
        self.events: list[DerivedEvent] = []

    def publish(self, events: Sequence[DerivedEvent]) -> list[int]:
        self.events.extend(events)
        return []


def fold(store: MemoryStore, raw: dict[str, Any]) -> None:
    """Ingest one event into ``store``: the customer and the activity rows it writes."""
    ev = parsed(raw)
    cur = store.customers.get(ev.customer_id) or Customer(customer_id=ev.customer_id)
    result = apply_events(cur, [ev], CFG, ev.detail.occurred_at)
    store.customers[ev.customer_id] = result.customer
    store.put_activity(result.activity)


def shop(*members: tuple[str, str, str | None]) -> MemoryStore:
    store = MemoryStore()
    for cid, since, zone in members:
        fields: dict[str, Any] = {"member_since": since}
        if zone is not None:
            fields["time_zone"] = zone
        fold(store, upsert(cid, at(2020, 1, 1), f"ev-{cid}", **fields))
    return store


def daily(store: MemoryStore, publisher: Publisher, now: datetime) -> list[tuple[str, str, int]]:
    """Run the sweep at ``now``; (customer, local date, years) of what it put."""
    before = len(publisher.events)
    run_sweep(DAILY, store, store, publisher, CFG, FixedClock(now))
    out = []
    for e in publisher.events[before:]:
        assert e.detail_type == "customer.anniversary"
        d = e.detail.model_dump(mode="json")
        out.append((d["customer_id"], d["date"], d["years"]))
    return out


def test_the_anniversary_fires_on_the_local_date_once() -> None:
    # given members who joined on 10 March, in Tokyo, in New York, and in the shop's zone
    store = shop(
        ("tokyo", "2020-03-10", "Asia/Tokyo"),
        ("ny", "2024-03-10", "America/New_York"),
        ("shop-zone", "2026-03-10", None),
        ("other", "2020-03-11", "Asia/Tokyo"),
    )
    publisher = Publisher()
    # when the sweep runs just after midnight UTC on 10 March 2027 (09:00 in Tokyo, 19:00
    # the day before in New York), then after midnight in New York
    assert sorted(daily(store, publisher, at(2027, 3, 10, 0))) == [
        ("shop-zone", "2027-03-10", 1),
        ("tokyo", "2027-03-10", 7),
    ]
    assert daily(store, publisher, at(2027, 3, 10, 4)) == []  # 23:00 in New York
    assert daily(store, publisher, at(2027, 3, 10, 6)) == [("ny", "2027-03-10", 3)]
    ny = publisher.events[-1].detail.model_dump(mode="json")
    assert ny["occurred_at"] == "2027-03-10T05:00:00Z"  # local midnight (EDT)
    assert ny["member_since"] == "2024-03-10" and ny["time_zone"] == "America/New_York"
    assert ny["event_id"] == "ny:anniversary:2027"


def test_a_second_run_the_same_day_puts_the_same_event_or_nothing() -> None:
    store = shop(("tokyo", "2020-03-10", "Asia/Tokyo"))
    first, again = Publisher(), Publisher()
    assert daily(store, first, at(2027, 3, 10, 1)) == [("tokyo", "2027-03-10", 7)]
    assert daily(store, first, at(2027, 3, 10, 2)) == []  # after the watermark: nothing
    store.watermarks.clear()  # a retry that lost the watermark: the same id, deduplicated
    daily(store, again, at(2027, 3, 10, 3))
    assert [e.detail for e in again.events] == [e.detail for e in first.events]


@pytest.mark.parametrize(
    ("year", "expected"), [(2027, "2027-02-28"), (2028, "2028-02-29")], ids=["non-leap", "leap"]
)
def test_a_29_february_member_is_celebrated_once_a_year(year: int, expected: str) -> None:
    store = shop(("leap", "2024-02-29", "America/New_York"))
    publisher = Publisher()
    fired: list[tuple[str, str, int]] = []
    for n in range(30):
        fired += daily(store, publisher, at(year, 2, 14, 16) + timedelta(days=n))
    assert fired == [("leap", expected, year - 2024)]


def test_nothing_in_the_join_year() -> None:
    # given a member who joined on 5 May 2027 (and one without a start)
    store = shop(("new", "2027-05-05", "Asia/Tokyo"))
    fold(store, upsert("none", at(2020, 1, 1), "ev-none", time_zone="Asia/Tokyo"))
    publisher = Publisher()
    # when the sweep runs every day for two years
    fired: list[tuple[str, str, int]] = []
    for n in range(730):
        fired += daily(store, publisher, at(2027, 1, 1, 16) + timedelta(days=n))
    # then only the first anniversary, a year on
    assert fired == [("new", "2028-05-05", 1)]


def test_a_changed_start_moves_the_index_row() -> None:
    store = shop(("m", "2020-03-10", "Asia/Tokyo"))
    assert store.members_since_on("03-10") == ["m"]
    # an older event does not win (last writer wins, as other profile fields)
    fold(store, upsert("m", at(2019, 1, 1), "ev-old", member_since="2020-07-07"))
    assert store.customers["m"].member_since == date(2020, 3, 10)
    assert store.members_since_on("07-07") == []
    fold(store, upsert("m", at(2021, 1, 1), "ev-fix", member_since="2020-04-01"))
    assert store.customers["m"].member_since == date(2020, 4, 1)
    assert store.members_since_on("03-10") == [] and store.members_since_on("04-01") == ["m"]
    publisher = Publisher()
    assert daily(store, publisher, at(2027, 3, 10, 1)) == []
    assert daily(store, publisher, at(2027, 4, 1, 1)) == [("m", "2027-04-01", 7)]


def test_the_claim_is_checked_against_the_current_start() -> None:
    assert "customer.anniversary" in TRIGGER_EVENTS
    store = shop(("tokyo", "2020-03-10", "Asia/Tokyo"))
    publisher = Publisher()
    daily(store, publisher, at(2027, 3, 10, 1))
    detail = publisher.events[0].detail.model_dump(mode="json")
    c = store.customers["tokyo"]
    check = CLAIMS["customer.anniversary"]
    assert check(detail, c, None)
    assert not check({**detail, "years": 6}, c, None)
    assert not check({**detail, "years": 0}, c, None)
    assert not check(detail, c.model_copy(update={"member_since": date(2020, 3, 11)}), None)
    assert not check(detail, c.model_copy(update={"member_since": None}), None)


PROGRAM = """\
id: anniversary
name: Membership anniversary
trigger:
  event: customer.anniversary
  conditions: {years: CONDITION}
steps:
  - {id: thanks, type: send, channels: [email], template: thanks}
"""


def test_a_program_trigger_on_years_is_validated_at_load(tmp_path: Path) -> None:
    path = tmp_path / "anniversary.yaml"
    for ok in ("[1]", '[{numeric: [">=", 5]}]'):
        path.write_text(PROGRAM.replace("CONDITION", ok))
        assert load_program(path).trigger.event == "customer.anniversary"
    path.write_text(PROGRAM.replace("{years: CONDITION}", "{yeras: [1]}"))
    with pytest.raises(Exception, match="yeras"):
        load_program(path)


def test_an_invalid_start_is_refused() -> None:
    with pytest.raises(Exception, match="member_since"):
        parsed(upsert("x", at(2020, 1, 1), "ev-x", member_since="2020-02-30"))


def save(store: MemoryStore, raw: dict[str, Any], now: datetime) -> None:
    """Ingest one event received at ``now`` into a stored customer (as ingest saves it)."""
    ev = parsed(raw)
    cur = store.customers.get(ev.customer_id) or Customer(customer_id=ev.customer_id)
    result = apply_events(cur, [ev], CFG, now)
    store.save_customer(result.customer, cur.version)
    store.put_activity(result.activity)


def test_a_move_east_on_the_day_still_gets_the_anniversary_once() -> None:
    # given members since 10 March in New York; one moves to Tokyo at 20:00 UTC on 9 March,
    # after Tokyo's midnight (15:00 UTC) and before New York's (05:00 UTC on 10 March)
    store = MemoryStore()
    for cid in ("mover", "stayer", "west"):
        zone = "Asia/Tokyo" if cid == "west" else "America/New_York"
        save(
            store,
            upsert(cid, at(2020, 1, 1), f"ev-{cid}", member_since="2020-03-10", time_zone=zone),
            at(2020, 1, 1),
        )
    hourly = SweepRequest(kinds=[SweepKind.ANNIVERSARIES], lookback_minutes=60)
    publisher = Publisher()
    # when the sweep runs every hour for two days (chained by its watermark)
    for n in range(48):
        now = at(2027, 3, 8, 12) + timedelta(hours=n, minutes=30)
        if now == at(2027, 3, 9, 20) + timedelta(minutes=30):
            moved = at(2027, 3, 9, 20)
            save(store, upsert("mover", moved, "move", time_zone="Asia/Tokyo"), moved)
            save(store, upsert("west", moved, "move-w", time_zone="America/New_York"), moved)
        run_sweep(hourly, store, store, publisher, CFG, FixedClock(now))
    # then each hears once (a move west: the same id twice); before the fix, the mover never
    ids = sorted(e.detail.event_id for e in publisher.events)
    assert ids == [
        "mover:anniversary:2027",
        "stayer:anniversary:2027",
        "west:anniversary:2027",
        "west:anniversary:2027",
    ]
    mover = next(e for e in publisher.events if e.detail.customer_id == "mover")
    detail = mover.detail.model_dump(mode="json")
    assert (detail["date"], detail["years"], detail["time_zone"]) == ("2027-03-10", 7, "Asia/Tokyo")
    assert detail["occurred_at"] == "2027-03-09T15:00:00Z"
