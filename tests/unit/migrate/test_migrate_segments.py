"""Segment dimensions -> conditions on the customer view: each kind of dimension, groups and
sources, dates as prefixes, what cannot be said (a decision), and the fixture's segments
selecting the customers Pinpoint's would."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kizuna.domain.customer import ConsentState, Customer
from kizuna.events.custom import vocabulary
from kizuna.programs.patterns import matches
from kizuna.programs.view import customer_view
from kizuna.runtime.config import CustomConfig, KizunaConfig, TrackedEvent
from kizuna_tools.migrate.attributes import AttributeMap
from kizuna_tools.migrate.endpoints import migrate_endpoints
from kizuna_tools.migrate.report import Report, Status
from kizuna_tools.migrate.segments import (
    Conditions,
    Inexpressible,
    check_segments,
    conjoin,
    date_matchers,
    date_prefixes,
    translate_segments,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pinpoint"
NOW = datetime(2026, 11, 30, tzinfo=UTC)


def amap() -> AttributeMap:
    m = AttributeMap()
    m.plan("UserAttributes", "MembershipTier", [["Gold"], ["Silver"]])
    m.plan("UserAttributes", "FirstName", [["Hanako"]])
    m.plan("UserAttributes", "Email", [["a@example.jp"]])
    m.plan("Attributes", "Interests", [["tea", "sweets"], ["tea"]])
    m.plan("Attributes", "Newsletter", [["true"], ["false"]])
    m.plan("Attributes", "SignupDate", [["2024-01-05"]])
    m.plan("Attributes", "Household", [["2"], ["4"]])
    m.plan("Metrics", "Spend", None)
    return m


def dims(**parts: Any) -> dict[str, Any]:
    return parts


def attr(kind: str, *values: str) -> dict[str, Any]:
    return {"AttributeType": kind, "Values": list(values)}


@pytest.mark.parametrize(
    ("dimensions", "condition"),
    [
        (
            dims(UserAttributes={"MembershipTier": attr("INCLUSIVE", "Gold", "Platinum")}),
            {"attributes": {"membership_tier": ["Gold", "Platinum"]}},
        ),
        (
            dims(UserAttributes={"MembershipTier": attr("EXCLUSIVE", "Bronze")}),
            {"attributes": {"membership_tier": [{"anything-but": ["Bronze"]}]}},
        ),
        (
            dims(Attributes={"Interests": attr("CONTAINS", "te")}),
            {"attributes": {"interests": [{"wildcard": "*te*"}]}},
        ),
        (
            dims(Attributes={"Newsletter": attr("INCLUSIVE", "true")}),
            {"attributes": {"newsletter": [True]}},
        ),
        (
            dims(Attributes={"Newsletter": attr("EXCLUSIVE", "true")}),
            {"attributes": {"newsletter": [False]}},
        ),
        (
            dims(Attributes={"Household": attr("INCLUSIVE", "2", "3")}),
            {"attributes": {"household": [2, 3]}},
        ),
        (
            dims(Metrics={"Spend": {"ComparisonOperator": "GREATER_THAN", "Value": 5000.0}}),
            {"attributes": {"spend": [{"numeric": [">", 5000]}]}},
        ),
        (
            dims(Attributes={"SignupDate": attr("ON", "2024-01-05T10:00:00Z")}),
            {"attributes": {"signup_date": ["2024-01-05"]}},
        ),
        (
            dims(
                Demographic={
                    "Channel": {"DimensionType": "INCLUSIVE", "Values": ["EMAIL", "GCM", "APNS"]}
                }
            ),
            {"reachable": ["email", "push"]},
        ),
        (dims(Location={"Country": {"Values": ["JP"]}}), {"attributes": {"country": ["JP"]}}),
        (
            dims(Behavior={"Recency": {"Duration": "DAY_7", "RecencyType": "INACTIVE"}}),
            {"behaviour": {"app.opened": {"count_7d": [0]}}},
        ),
        (
            dims(Behavior={"Recency": {"Duration": "HR_24", "RecencyType": "ACTIVE"}}),
            {"behaviour": {"app.opened": {"count_1d": [{"numeric": [">=", 1]}]}}},
        ),
    ],
)
def test_each_dimension_becomes_its_condition(
    dimensions: dict[str, Any], condition: dict[str, Any]
) -> None:
    translation = Conditions(amap()).dimensions(dimensions, "s")
    assert translation.decisions == []
    assert translation.condition == condition


def test_dimensions_together_are_one_condition_and_windows_are_declared() -> None:
    conditions = Conditions(amap())
    translation = conditions.dimensions(
        dims(
            UserAttributes={"MembershipTier": attr("INCLUSIVE", "Gold")},
            Attributes={"Interests": attr("INCLUSIVE", "tea")},
            Behavior={"Recency": {"Duration": "DAY_30", "RecencyType": "ACTIVE"}},
        ),
        "s",
    )
    assert translation.condition == {
        "attributes": {"interests": ["tea"], "membership_tier": ["Gold"]},
        "behaviour": {"app.opened": {"count_30d": [{"numeric": [">=", 1]}]}},
    }
    assert conditions.activity_windows == {30}


@pytest.mark.parametrize(
    ("dimensions", "why"),
    [
        (dims(Demographic={"Platform": {"Values": ["ios"]}}), "Kizuna keeps no device platform"),
        (
            dims(Location={"GPSPoint": {"Coordinates": {"Latitude": 35.6, "Longitude": 139.7}}}),
            "GPSPoint",
        ),
        (dims(UserAttributes={"FirstName": attr("INCLUSIVE", "Hanako")}), "a profile name"),
        (dims(UserAttributes={"Email": attr("CONTAINS", "@example")}), "personal data"),
        (
            dims(UserAttributes={"MembershipTier": attr("BEFORE", "2024-01-01T00:00:00Z")}),
            "a time comparison on a string",
        ),
        (dims(Attributes={"Interests": attr("CONTAINS", "a*b")}), "a '*'"),
        (dims(Attributes={"Interests": attr("INCLUSIVE")}), "INCLUSIVE: no values"),
        # 18 significant digits: as a float it would select 1000000000000 instead
        (
            dims(Attributes={"Household": attr("INCLUSIVE", "999999999999.999999")}),
            "a number compared with",
        ),
    ],
)
def test_what_cannot_be_said_is_a_decision_not_a_broader_condition(
    dimensions: dict[str, Any], why: str
) -> None:
    translation = Conditions(amap()).dimensions(dimensions, "s")
    assert translation.condition == {}
    assert len(translation.decisions) == 1 and why in translation.decisions[0]


def test_an_attribute_no_endpoint_has_is_declared_as_text_and_said() -> None:
    m = amap()
    translation = Conditions(m).dimensions(dims(Attributes={"Vip": attr("INCLUSIVE", "yes")}), "s")
    assert translation.condition == {"attributes": {"vip": ["yes"]}}
    assert m.get("Attributes", "Vip").spec.type.value == "string"
    assert "no endpoint has it" in translation.notes[0]


def test_conjoin_joins_numeric_bounds_and_refuses_two_conditions_on_one_field() -> None:
    low = {"attributes": {"spend": [{"numeric": [">=", 10]}]}}
    high = {"attributes": {"spend": [{"numeric": ["<", 20]}]}}
    assert conjoin(low, high) == {"attributes": {"spend": [{"numeric": [">=", 10, "<", 20]}]}}
    with pytest.raises(Inexpressible):
        conjoin({"rank": ["Gold"]}, {"rank": ["Silver"]})


def test_date_comparisons_read_dates_as_pinpoint_did() -> None:
    assert date_matchers("AFTER", ["2025-06-30T00:00:00Z"])[:3] == [
        {"prefix": "2025-07"},
        {"prefix": "2025-08"},
        {"prefix": "2025-09"},
    ]
    # BEFORE midnight excludes that day; BEFORE noon includes it (the date is its midnight)
    assert date_matchers("BEFORE", ["2024-03-01T00:00:00Z"])[-1] == {"prefix": "2024-02"}
    assert date_matchers("BEFORE", ["2024-03-01T12:00:00Z"])[-1] == "2024-03-01"
    assert date_matchers("BETWEEN", ["2024-01-05T00:00:00Z", "2024-01-06T00:00:00Z"]) == [
        "2024-01-05",
        "2024-01-06",
    ]


@given(
    st.dates(date(1990, 1, 1), date(2035, 12, 31)),
    st.integers(0, 900),
    st.dates(date(1990, 1, 1), date(2035, 12, 31)),
)
def test_date_prefixes_match_exactly_the_dates_in_the_range(
    first: date, span: int, probe: date
) -> None:
    last = min(first + timedelta(days=span), date(2099, 12, 31))
    prefixes = date_prefixes(first, last)
    matched = any(probe.isoformat().startswith(p) for p in prefixes)
    assert matched == (first <= probe <= last)
    for edge in (first, last, first - timedelta(days=1), last + timedelta(days=1)):
        assert any(edge.isoformat().startswith(p) for p in prefixes) == (first <= edge <= last)


def segment(sid: str, name: str, **fields: Any) -> dict[str, Any]:
    return {"Id": sid, "Name": name, "SegmentType": "DIMENSIONAL", "Version": 1, **fields}


def test_groups_sources_and_import_segments() -> None:
    report = Report()
    conditions = Conditions(amap())
    base = segment(
        "s1", "Gold", Dimensions=dims(UserAttributes={"MembershipTier": attr("INCLUSIVE", "Gold")})
    )
    any_of = segment(
        "s2",
        "Tea or newsletter",
        SegmentGroups={
            "Groups": [
                {
                    "Dimensions": [
                        dims(Attributes={"Interests": attr("INCLUSIVE", "tea")}),
                        dims(Attributes={"Newsletter": attr("INCLUSIVE", "true")}),
                    ],
                    "SourceSegments": [{"Id": "s1", "Version": 1}],
                    "Type": "ANY",
                }
            ],
            "Include": "ALL",
        },
    )
    none_of = segment(
        "s3",
        "Not tea",
        SegmentGroups={
            "Groups": [
                {
                    "Dimensions": [dims(Attributes={"Interests": attr("INCLUSIVE", "tea")})],
                    "Type": "NONE",
                }
            ]
        },
    )
    imported = {
        **segment("s4", "VIP list"),
        "SegmentType": "IMPORT",
        "ImportDefinition": {
            "Format": "CSV",
            "S3Url": "s3://b/k.csv",
            "Size": 3,
            "ExternalId": "x",
            "RoleArn": "r",
        },
    }
    on_import = segment(
        "s5",
        "VIP gold",
        SegmentGroups={"Groups": [{"SourceSegments": [{"Id": "s4"}], "Dimensions": []}]},
    )
    result = translate_segments([any_of, none_of, imported, base, on_import], conditions, report)
    # a source segment's conditions are part of the segment built on it
    assert result.by_id["s2"].condition == {
        "attributes": {"membership_tier": ["Gold"]},
        "$or": [{"attributes": {"interests": ["tea"]}}, {"attributes": {"newsletter": [True]}}],
    }
    assert result.by_id["s2"].complete
    # NONE cannot be said: written INCOMPLETE, as everyone, with a decision
    assert not result.by_id["s3"].complete
    assert "Type NONE" in result.by_id["s3"].translation.decisions[0]
    assert result.by_id["s3"].document()["description"].startswith("INCOMPLETE")
    # an IMPORT segment is reported, not written; one built on it needs a decision
    assert (
        result.by_id["s4"].name is None
        and report.find("segment", "VIP list").status == Status.NOT_MIGRATED
    )
    assert "IMPORT segment" in result.by_id["s5"].translation.decisions[0]


def test_a_condition_kizuna_refuses_is_not_written() -> None:
    report = Report()
    result = translate_segments(
        [
            segment(
                "s1",
                "Big",
                Dimensions=dims(
                    Metrics={"Spend": {"ComparisonOperator": "GREATER_THAN", "Value": 1.0}}
                ),
            )
        ],
        Conditions(amap()),
        report,
    )
    check_segments(result, vocabulary(KizunaConfig()), report)  # Spend not declared
    assert not result.by_id["s1"].written
    assert report.find("segment", "Big").status == Status.NOT_MIGRATED


# -- the fixture's segments select whom Pinpoint's would --------------------------------------
def _endpoints() -> dict[str, list[dict[str, Any]]]:
    users: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted((FIXTURES / "endpoints").iterdir()):
        text = (
            gzip.decompress(path.read_bytes()).decode()
            if path.suffix == ".gz"
            else path.read_text()
        )
        for line in text.splitlines():
            ep = json.loads(line)
            users[ep.get("User", {}).get("UserId") or ep["Id"]].append(ep)
    return users


def _customer(row: dict[str, Any]) -> Customer:
    consent = {
        channel: ConsentState(status=row[f"{channel}_consent"], at=NOW, source="import", stamp="")
        for channel in ("email", "sms", "push")
        if row.get(f"{channel}_consent")
    }
    attributes = {
        k: Decimal(str(v)) if isinstance(v, int | float) and not isinstance(v, bool) else v
        for k, v in (row.get("attributes") or {}).items()
    }
    return Customer(
        customer_id=row["customer_id"],
        email=row.get("email"),
        phone=row.get("phone"),
        consent=consent,
        attributes=attributes,
    )


def test_the_fixture_segments_select_the_customers_pinpoints_did() -> None:
    # Given the migrated customers and segments
    report = Report()
    customers = migrate_endpoints(FIXTURES / "endpoints", report)
    items = json.loads((FIXTURES / "segments.json").read_text())["SegmentsResponse"]["Item"]
    conditions = Conditions(customers.attributes)
    segments = translate_segments(items, conditions, report)
    cfg = KizunaConfig(
        custom=CustomConfig(
            attributes=customers.attributes.declarations(),
            tracked=(TrackedEvent(detail_type="app.opened", windows_days=(30,)),),
        )
    )
    check_segments(segments, vocabulary(cfg), report)
    views = {r["customer_id"]: customer_view(_customer(r), NOW, cfg) for r in customers.rows}

    def members(pinpoint_id: str) -> set[str]:
        condition = segments.by_id[pinpoint_id].condition
        return {cid for cid, view in views.items() if matches(condition, view)}

    users = {u: eps for u, eps in _endpoints().items() if u in views}

    def reachable_email(ep: dict[str, Any]) -> bool:
        return (
            ep["ChannelType"] == "EMAIL"
            and ep["EndpointStatus"] == "ACTIVE"
            and ep["OptOut"] == "NONE"
        )

    # Gold members: tier Gold/Platinum, country JP, on the email channel (who gets an email)
    gold = {
        u
        for u, eps in users.items()
        if any(
            reachable_email(e)
            and e.get("User", {}).get("UserAttributes", {}).get("MembershipTier", [""])[0]
            in ("Gold", "Platinum")
            and e.get("Location", {}).get("Country") == "JP"
            for e in eps
        )
    }
    assert members("5e9f1c2a7b3d4e6f8a0b1c2d3e4f5a01") == gold
    assert 10 < len(gold) < 300
    # High spenders or newsletter readers: any endpoint with spend >= 50000 or the newsletter
    either = {
        u
        for u, eps in users.items()
        if any(
            e.get("Metrics", {}).get("LifetimeSpend", 0) >= 50000
            or e.get("Attributes", {}).get("NewsletterOptIn") == ["true"]
            for e in eps
        )
    }
    assert members("5e9f1c2a7b3d4e6f8a0b1c2d3e4f5a03") == either
    # Recent sign-ups (the expressible part): signed up after 2025-06-30
    recent = {
        u
        for u, eps in users.items()
        if any(e.get("Attributes", {}).get("SignupDate", ["0"])[0] > "2025-06-30" for e in eps)
    }
    assert members("5e9f1c2a7b3d4e6f8a0b1c2d3e4f5a04") == recent
    assert not segments.by_id["5e9f1c2a7b3d4e6f8a0b1c2d3e4f5a04"].complete  # Platform: a decision
