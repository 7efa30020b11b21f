from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from kizuna.domain.customer import Customer
from kizuna.programs.steps import local_time_after, next_local_time
from kizuna.runtime.config import KizunaConfig


def test_next_local_time_in_tokyo_and_new_york() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    # 2026-01-05 00:30 UTC is 09:30 in Tokyo: 10:00 the same day
    assert next_local_time(datetime(2026, 1, 5, 0, 30, tzinfo=UTC), time(10), tokyo) == datetime(
        2026, 1, 5, 1, 0, tzinfo=UTC
    )
    # 02:00 UTC is 11:00 in Tokyo: 10:00 the next day
    assert next_local_time(datetime(2026, 1, 5, 2, 0, tzinfo=UTC), time(10), tokyo) == datetime(
        2026, 1, 6, 1, 0, tzinfo=UTC
    )
    ny = ZoneInfo("America/New_York")  # DST starts 2026-03-08
    assert next_local_time(datetime(2026, 3, 8, 12, 0, tzinfo=UTC), time(19), ny) == datetime(
        2026, 3, 8, 23, 0, tzinfo=UTC
    )


def test_unknown_time_zone_falls_back_to_the_default() -> None:
    c = Customer(customer_id="c", time_zone="Mars/Olympus")
    at = local_time_after(c, datetime(2026, 1, 5, 0, 0, tzinfo=UTC), 86400, "10:00", KizunaConfig())
    assert at == datetime(2026, 1, 6, 1, 0, tzinfo=UTC)


# --- daylight saving: calendar days, and wall times the clocks skip or repeat ---------------
NY = ZoneInfo("America/New_York")
DST_ZONES = ("America/New_York", "Europe/London", "Australia/Sydney")


def _changes(tz: ZoneInfo, year: int) -> list[datetime]:
    """The instants (UTC, to the hour) the zone's offset changes in ``year``."""
    hour = datetime(year, 1, 1, tzinfo=UTC)
    found = []
    while hour.year == year:
        if (hour + timedelta(hours=1)).astimezone(tz).utcoffset() != hour.astimezone(
            tz
        ).utcoffset():
            found.append(hour + timedelta(hours=1))
        hour += timedelta(hours=1)
    return found


CHANGES = {
    name: [c for y in (2025, 2026) for c in _changes(ZoneInfo(name), y)] for name in DST_ZONES
}


def _exists(day: date, at: time, tz: ZoneInfo) -> bool:
    """Does the clock in ``tz`` ever read ``at`` on ``day``?"""
    wanted = datetime.combine(day, at)
    return any(
        datetime.combine(day, at, tzinfo=tz)
        .replace(fold=f)
        .astimezone(UTC)
        .astimezone(tz)
        .replace(tzinfo=None, fold=0)
        == wanted
        for f in (0, 1)
    )


@st.composite
def near_a_change(draw: st.DrawFn) -> tuple[ZoneInfo, datetime]:
    """A DST zone and an instant within two days of one of its clock changes."""
    name = draw(st.sampled_from(DST_ZONES))
    change = draw(st.sampled_from(CHANGES[name]))
    minutes = draw(st.integers(-48 * 60, 48 * 60))
    seconds = draw(st.integers(0, 59))
    return ZoneInfo(name), change + timedelta(minutes=minutes, seconds=seconds)


# the hours the clocks change at in these zones (00:00-04:00) more often than the rest
WALL = st.builds(
    time,
    st.one_of(st.integers(0, 3), st.integers(0, 23)),
    st.sampled_from([0, 15, 30, 45, 59]) | st.integers(0, 59),
)


@given(near_a_change(), WALL)
def test_next_local_time_is_the_first_reading_of_the_wall_time_at_or_after_the_start(
    where: tuple[ZoneInfo, datetime], at: time
) -> None:
    tz, after = where
    got = next_local_time(after, at, tz)
    assert got >= after
    local = got.astimezone(tz)
    if _exists(local.date(), at, tz):
        assert local.time() == at, (after, at, local)
    else:  # the clocks skip it that day: the reading shifted by the gap, that day
        assert local.time() > at
    # and no earlier instant from `after` on has that wall time (a minute at a time)
    minute = after.replace(second=0, microsecond=0)
    minute += timedelta(minutes=1) if minute < after else timedelta()
    while minute < got:
        assert minute.astimezone(tz).time() != at, (after, at, minute, got)
        minute += timedelta(minutes=1)


@given(near_a_change(), WALL, st.integers(0, 3), st.integers(0, 23 * 60))
def test_a_wait_of_days_then_a_local_time_counts_days_on_the_local_calendar(
    where: tuple[ZoneInfo, datetime], at: time, days: int, minutes: int
) -> None:
    tz, now = where
    customer = Customer(customer_id="c", time_zone=tz.key)
    seconds = days * 86400 + minutes * 60
    got = local_time_after(customer, now, seconds, at.strftime("%H:%M"), KizunaConfig())
    # the wait's days are dates on the customer's calendar, its hours and minutes elapsed
    local = now.astimezone(tz)
    on = (local.replace(fold=0) + timedelta(days=days)).astimezone(UTC) if days else now
    start = on + timedelta(minutes=minutes)
    assert got >= start >= now
    assert got == next_local_time(start, at, tz)
    if minutes == 0 and days and _exists(local.date() + timedelta(days=days), local.time(), tz):
        # whole days: the same wall-clock time `days` dates on, however long those days were
        assert start.astimezone(tz).replace(tzinfo=None, fold=0) == (
            local.replace(tzinfo=None, fold=0) + timedelta(days=days)
        )


def test_one_day_then_10_00_on_the_spring_forward_weekend() -> None:
    # Saturday 8 March 2025 09:30 EST; a day later is Sunday 09:30 EDT (23 hours): Sunday
    # 10:00, not Monday (24 hours later is already 10:30)
    c = Customer(customer_id="c", time_zone="America/New_York")
    entered = datetime(2025, 3, 8, 9, 30, tzinfo=NY)
    got = local_time_after(c, entered.astimezone(UTC), 86400, "10:00", KizunaConfig())
    assert got == datetime(2025, 3, 9, 10, 0, tzinfo=NY).astimezone(UTC)
    # and in autumn (25-hour day): Saturday 1 Nov 10:30 EDT, one day on is Sunday 10:30
    # EST: Monday 10:00, not Sunday 10:00 (24 hours later is only 09:30)
    entered = datetime(2025, 11, 1, 10, 30, tzinfo=NY)
    got = local_time_after(c, entered.astimezone(UTC), 86400, "10:00", KizunaConfig())
    assert got == datetime(2025, 11, 3, 10, 0, tzinfo=NY).astimezone(UTC)
    # hours are elapsed time: 23 of them after Saturday 09:30 EST are Sunday 09:30 EDT, so
    # "23 hours, then 09:00" is Monday 09:00 (on the clock, 23 hours on would be 08:30)
    entered = datetime(2025, 3, 8, 9, 30, tzinfo=NY)
    got = local_time_after(c, entered.astimezone(UTC), 23 * 3600, "09:00", KizunaConfig())
    assert got == datetime(2025, 3, 10, 9, 0, tzinfo=NY).astimezone(UTC)


def test_next_local_time_in_the_repeated_and_the_skipped_hour() -> None:
    # 2025-11-02 01:15 EST (the second 01:15) is 06:15Z: the next 01:30 is 01:30 EST,
    # 06:30Z (01:30 EDT, 05:30Z, is 45 minutes before it)
    after = datetime(2025, 11, 2, 6, 15, tzinfo=UTC)
    assert next_local_time(after, time(1, 30), NY) == datetime(2025, 11, 2, 6, 30, tzinfo=UTC)
    # from before both readings: the first, 01:30 EDT
    after = datetime(2025, 11, 2, 4, 0, tzinfo=UTC)  # 00:00 EDT
    assert next_local_time(after, time(1, 30), NY) == datetime(2025, 11, 2, 5, 30, tzinfo=UTC)
    # 02:30 does not exist on 2025-03-09 (02:00 EST -> 03:00 EDT): 03:30 EDT, the gap later
    after = datetime(2025, 3, 9, 5, 0, tzinfo=UTC)  # 00:00 EST
    assert next_local_time(after, time(2, 30), NY) == datetime(2025, 3, 9, 7, 30, tzinfo=UTC)
    assert next_local_time(after, time(2, 30), NY).astimezone(NY).time() == time(3, 30)
