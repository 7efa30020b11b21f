from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

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
