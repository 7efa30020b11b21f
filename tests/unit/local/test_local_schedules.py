"""Schedule expressions on virtual time (no AWS)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kizuna.domain.schedule_expressions import parse_schedule

T0 = datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday


def firings(
    expression: str, count: int, *, timezone: str = "UTC", anchor: datetime = T0
) -> list[str]:
    schedule = parse_schedule(expression, anchor=anchor, timezone=timezone)
    out: list[str] = []
    after = anchor
    for _ in range(count):
        nxt = schedule.next_after(after)
        if nxt is None:
            break
        out.append(nxt.strftime("%Y-%m-%d %H:%M %a"))
        after = nxt
    return out


def test_rate_counts_from_its_anchor() -> None:
    assert firings("rate(6 hours)", 3) == [
        "2026-01-01 06:00 Thu",
        "2026-01-01 12:00 Thu",
        "2026-01-01 18:00 Thu",
    ]
    schedule = parse_schedule("rate(1 day)", anchor=T0)
    assert schedule.next_after(T0 + timedelta(days=2, seconds=1)) == T0 + timedelta(days=3)


def test_cron_daily_and_weekdays() -> None:
    assert firings("cron(0 3 * * ? *)", 2) == ["2026-01-01 03:00 Thu", "2026-01-02 03:00 Fri"]
    assert firings("cron(30 9 ? * MON-FRI *)", 3) == [
        "2026-01-01 09:30 Thu",
        "2026-01-02 09:30 Fri",
        "2026-01-05 09:30 Mon",
    ]
    assert firings("cron(0/20 8 ? * 1 *)", 3) == [  # 1 = Sunday
        "2026-01-04 08:00 Sun",
        "2026-01-04 08:20 Sun",
        "2026-01-04 08:40 Sun",
    ]


def test_cron_last_nearest_weekday_and_nth() -> None:
    assert firings("cron(0 0 L * ? *)", 2) == ["2026-01-31 00:00 Sat", "2026-02-28 00:00 Sat"]
    assert firings("cron(0 1 1W * ? *)", 2) == ["2026-01-01 01:00 Thu", "2026-02-02 01:00 Mon"]
    assert firings("cron(0 0 ? * 6#3 *)", 2) == ["2026-01-16 00:00 Fri", "2026-02-20 00:00 Fri"]
    assert firings("cron(0 0 ? * 2L *)", 1) == ["2026-01-26 00:00 Mon"]
    assert firings("cron(0 12 1 1 ? 2027)", 2) == ["2027-01-01 12:00 Fri"]


def test_cron_in_a_time_zone() -> None:
    # 09:00 in Tokyo is midnight UTC
    assert firings("cron(0 9 * * ? *)", 2, timezone="Asia/Tokyo") == [
        "2026-01-02 00:00 Fri",
        "2026-01-03 00:00 Sat",
    ]


def test_at_fires_once() -> None:
    assert firings("at(2026-01-03T09:00:00)", 3, timezone="Asia/Tokyo") == ["2026-01-03 00:00 Sat"]


@pytest.mark.parametrize(
    "expression",
    [
        "rate(0 minutes)",
        "rate(1 week)",
        "rate(1 days)",  # AWS: singular for 1, plural above
        "rate(1 hours)",
        "rate(5 day)",
        "rate(30 minute)",
        "cron(0 3 * * *)",
        "cron(0 3 1 * MON *)",
        "cron(61 3 * * ? *)",
        "every day",
    ],
)
def test_rejects_bad_expressions(expression: str) -> None:
    with pytest.raises(ValueError):
        parse_schedule(expression, anchor=T0)


def test_a_rate_unit_agrees_in_number_with_its_value() -> None:
    for expression in ("rate(1 minute)", "rate(1 hour)", "rate(1 day)", "rate(5 minutes)"):
        parse_schedule(expression, anchor=T0)
    with pytest.raises(ValueError, match=r"rate of 1 takes the unit 'day'"):
        parse_schedule("rate(1 days)", anchor=T0)


def test_every_day_field_form_scheduler_reads_is_read() -> None:
    from kizuna.domain.schedule_expressions import check_expression

    for expression in (
        "cron(0 10 ? * 6#3 *)",
        "cron(0 10 ? * FRI#3 *)",
        "cron(0 10 L * ? *)",
        "cron(0 10 LW * ? *)",
        "cron(0 10 15W * ? *)",
        "cron(0 10 ? * 5L *)",
        "cron(0 10 1-5/2 * ? *)",
        "cron(*/5 * ? * mon-fri 2026-2030)",
        "cron(0 10 ? * FRI-MON *)",
    ):
        check_expression(expression)
