"""``kizuna local serve``'s controls: the virtual clock (CLI and ``POST /_local/clock``), a
start instant in the past (history replayed as of its own time), console users, and
``kizuna scoring run --as-of`` against the serving runtime."""

from __future__ import annotations

import http.client
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kizuna_tools.cli import app
from kizuna_tools.local import LocalCloud
from kizuna_tools.local.server import parse_duration, parse_instant
from kizuna_tools.local.testing import CloudFactory
from tests.integration.local.fixtures import probe_template, write_project

pytestmark = pytest.mark.integration


def kizuna(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return str(result.output)


def post(port: int, path: str, body: Any) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("POST", path, body=json.dumps(body))
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def test_durations_and_instants_parse_strictly() -> None:
    assert parse_duration("2h") == timedelta(hours=2)
    assert parse_duration("1d12h30m5s") == timedelta(days=1, hours=12, minutes=30, seconds=5)
    for bad in ("", "2", "h", "-2h", "0s", "2 hours"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)
    assert parse_instant("1997-06-01") == datetime(1997, 6, 1, tzinfo=UTC)
    assert parse_instant("1997-06-01T09:00:00+09:00") == datetime(1997, 6, 1, tzinfo=UTC)
    assert parse_instant("1997-06-01T00:00:00Z") == datetime(1997, 6, 1, tzinfo=UTC)
    for bad in ("1997-06-01T09:00:00", "yesterday", "1997-13-01"):
        with pytest.raises(ValueError):
            parse_instant(bad)


@pytest.fixture
def probe(local_cloud_factory: CloudFactory, tmp_path: Path) -> LocalCloud:
    return local_cloud_factory(probe_template(), project_root=write_project(tmp_path))


def nightly_runs(cloud: LocalCloud) -> list[str]:
    return sorted(
        str(i["customer_id"])
        for i in cloud.scan("Customers")
        if str(i["customer_id"]).startswith("nightly#")
    )


def test_the_clock_moves_from_the_cli_and_over_http_firing_what_falls_due(
    probe: LocalCloud,
) -> None:
    start = probe.clock.now()
    with probe.serve(0, api_port=0, speed=0) as handle:
        url = str(handle.api_url)
        assert f"{start.isoformat()} (speed 0)" in kizuna("local", "clock", "show", "--url", url)
        # when the CLI moves the clock a day on: the schedules fire on virtual time (the 03:00
        # UTC rule, and 09:00 in Tokyo)
        kizuna("local", "clock", "advance", "--by", "1d", "--url", url)
        assert probe.clock.now() == start + timedelta(days=1)
        first_day = nightly_runs(probe)
        assert f"nightly#{(start + timedelta(hours=3)).isoformat()}" in first_day
        # and over HTTP, to an instant
        target = start + timedelta(days=2, hours=4)
        status, state = post(handle.api_port or 0, "/_local/clock", {"to": target.isoformat()})
        assert (status, state["now"]) == (200, target.isoformat())
        due = [start + timedelta(hours=h) for h in (3, 24, 27, 48, 51)]  # up to day 3, 04:00
        assert nightly_runs(probe) == [f"nightly#{at.isoformat()}" for at in due]
        # the clock never goes back; malformed requests are refused with the reason
        output = kizuna("local", "clock", "advance", "--to", "2020-01-01", "--url", url, code=2)
        assert "only moves forward" in output
        kizuna("local", "clock", "advance", "--by", "soon", "--url", url, code=2)
        kizuna("local", "clock", "advance", "--url", url, code=2)
        for body in ({}, {"by": "2h", "to": target.isoformat()}, {"by": 2}, {"at": "x"}):
            assert post(handle.api_port or 0, "/_local/clock", body)[0] == 400
        assert post(handle.api_port or 0, "/_local/nothing", {})[0] == 404
        # no user pool in this template: a user cannot be added, and the server says why
        status, answer = post(
            handle.api_port or 0, "/_local/users", {"username": "a", "group": "b"}
        )
        assert status == 400 and "user pools" in answer["message"]
        assert probe.clock.now() == target
    # no server left: the CLI says so
    assert "no `kizuna local serve`" in kizuna("local", "clock", "show", "--url", url, code=2)


def test_at_speed_the_clock_follows_real_time_from_the_last_manual_move(
    probe: LocalCloud,
) -> None:
    start = probe.clock.now()
    with probe.serve(0, api_port=0, speed=3600, tick_seconds=0.02) as handle:
        deadline = time.monotonic() + 10
        while probe.clock.now() < start + timedelta(minutes=30) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert probe.clock.now() >= start + timedelta(minutes=30)  # an hour per second
        moved = handle.advance(timedelta(days=3))
        time.sleep(0.3)
        now = probe.clock.now()
        assert moved <= now < moved + timedelta(hours=2)  # on from the move, not from start


def test_history_replayed_from_1997_is_evaluated_as_of_1997_and_scored_on_demand(
    local_cloud_factory: CloudFactory, kizuna_template_json: dict[str, Any]
) -> None:
    # given the real app started in 1997 (kizuna local serve --start 1997-03-01)
    start = datetime(1997, 3, 1, tzinfo=UTC)
    cloud = local_cloud_factory(kizuna_template_json, start=start)
    detail = {
        "customer_id": "c-1997",
        "occurred_at": (start + timedelta(hours=1)).isoformat(),
        "order_id": "o-1997",
        "total": "3000",
        "currency": "JPY",
        "channel": "web",
        "lines": [{"product_id": "tea-009", "quantity": 1, "unit_price": "3000"}],
    }
    cloud.advance(hours=2)
    cloud.put_events(
        [{"Source": "com.example.shop", "DetailType": "order.placed", "Detail": detail}]
    )
    cloud.drain()
    # then the order is applied as of 1997 (not refused as too old, nor dated today)
    table = cloud.find("AWS::DynamoDB::Table", "Customers")[0].logical_id
    item = next(i for i in cloud.scan(table) if i["customer_id"] == "c-1997")
    assert str(item["last_order_at"]).startswith("1997-03-01")
    assert int(item["order_count"]) == 1
    with cloud.serve(0, api_port=0, speed=0) as handle:
        url = str(handle.api_url)
        # when the scoring runs on demand, as of an instant of that history
        output = kizuna("scoring", "run", "--as-of", "1997-03-01T01:30:00Z", "--local", url)
        result = json.loads(output)
        # then the state machine the schedule starts ran, as of that instant
        assert result["status"] == "SUCCEEDED", result
        assert result["output"]["date"] == "1997-03-01"
        assert result["output"]["customers"] == 1
        scored = next(i for i in cloud.scan(table) if i["customer_id"] == "c-1997")
        assert scored.get("rfm_segment")
        # an instant after the virtual clock is refused, nothing started
        later = kizuna("scoring", "run", "--as-of", "1998-01-01", "--local", url, code=2)
        assert "after the virtual clock" in later
        kizuna("scoring", "run", "--as-of", "March", "--local", url, code=2)
