"""The segments routes on moto: the list with definitions, the live count and a sample of ids
(no personal data), for viewers and above; 401 without a token; 404 for an unknown segment;
422 for a malformed name or sample size."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.api.campaign_setup import REPEAT_BUYERS, prepare_campaigns
from tests.integration.api.harness import Api

pytestmark = pytest.mark.integration

ROUTES = (
    "/api/segments",
    "/api/segments/repeat-buyers/count",
    "/api/segments/repeat-buyers/sample",
)


@pytest.fixture
def sapi(api: Api) -> Iterator[Api]:
    yield prepare_campaigns(api)


def test_segments_need_a_signed_in_person(sapi: Api) -> None:
    for path in ROUTES:
        assert sapi.call("GET", path).status == 401, path
        assert sapi.call("GET", path, as_="none").status == 403, path
        assert sapi.call("GET", path, as_="machine").status == 401, path
        assert sapi.call("GET", path, as_="viewer").status == 200, path


def test_the_list_has_each_definition(sapi: Api) -> None:
    segments = sapi.call("GET", "/api/segments", as_="viewer").json()["segments"]
    by_name = {s["name"]: s for s in segments}
    assert {"repeat-buyers", "gold-at-risk", "champions"} <= set(by_name)
    assert by_name["repeat-buyers"]["conditions"] == {"lifecycle": ["repeat"]}
    assert by_name["repeat-buyers"]["description"]


def test_count_and_sample_are_the_members_now(sapi: Api) -> None:
    count = sapi.call("GET", "/api/segments/repeat-buyers/count", as_="viewer").json()
    assert count["count"] == len(REPEAT_BUYERS)
    assert count["as_of"].startswith("2026-11-30")
    sample = sapi.call("GET", "/api/segments/repeat-buyers/sample", as_="viewer", query={"n": "3"})
    body = sample.json()
    assert len(body["customer_ids"]) == 3
    assert set(body["customer_ids"]) <= set(REPEAT_BUYERS)
    # ids only: no name, address or any other field of the customer
    assert set(body) == {"name", "customer_ids"}
    assert "example.jp" not in sample.body and "花子" not in sample.body


def test_unknown_or_malformed_requests(sapi: Api) -> None:
    assert sapi.call("GET", "/api/segments/nope/count", as_="viewer").status == 404
    assert sapi.call("GET", "/api/segments/Not_A_Name/count", as_="viewer").status == 422
    for n in ("0", "101", "x", "1_0", "+3", "3.0", " 3", "03"):
        answer = sapi.call(
            "GET", "/api/segments/repeat-buyers/sample", as_="viewer", query={"n": n}
        )
        assert answer.status == 422, n
        assert answer.json()["detail"][0]["loc"] == ["query", "n"]
