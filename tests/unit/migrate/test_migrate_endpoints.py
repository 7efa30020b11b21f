"""Endpoints -> customers: one customer per UserId, endpoints merged, consent from OptOut and
EndpointStatus, demographics and location normalised (and said), invalid ids reported."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kizuna.events.inbound import is_customer_id
from kizuna.runtime.config import CustomConfig, CustomValueSpec, KizunaConfig, ValueType
from kizuna_tools.fakes import MemoryStore
from kizuna_tools.importer import import_file
from kizuna_tools.migrate.attributes import MAX_LIST_ITEMS, MAX_TEXT
from kizuna_tools.migrate.endpoints import migrate_endpoints, normalise_locale, prefecture_of
from kizuna_tools.migrate.report import Report, Status

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pinpoint"


def endpoint(
    eid: str, channel: str, address: str, user: str | None = "u1", **fields: Any
) -> dict[str, Any]:
    ep: dict[str, Any] = {
        "Id": eid,
        "ChannelType": channel,
        "Address": address,
        "EndpointStatus": "ACTIVE",
        "OptOut": "NONE",
        "EffectiveDate": "2026-01-01T00:00:00.000Z",
    }
    if user is not None:
        ep["User"] = {"UserId": user}
    ep.update(fields)
    return ep


def migrate(
    tmp_path: Path, *endpoints: dict[str, Any], lines: list[str] | None = None
) -> tuple[Any, Report]:
    folder = tmp_path / "endpoints"
    folder.mkdir(exist_ok=True)
    text = "".join(json.dumps(e) + "\n" for e in endpoints) + "".join(f"{x}\n" for x in lines or [])
    (folder / "part-0.json").write_text(text)
    report = Report()
    return migrate_endpoints(folder, report), report


def notes(report: Report) -> list[str]:
    return [n for i in report.of("customers") for n in i.notes]


def test_a_users_endpoints_become_one_customer_with_every_address(tmp_path: Path) -> None:
    # Given one user with an email, a phone and two devices (iOS and Android)
    result, _ = migrate(
        tmp_path,
        endpoint("e1", "EMAIL", "hanako@example.jp"),
        endpoint("e2", "SMS", "+819012345678"),
        endpoint("e3", "APNS", "a" * 64),
        endpoint("e4", "GCM", "fcm:" + "b" * 60),
    )
    # Then one customer carries them all, opted in on each channel
    assert len(result.rows) == 1
    row = result.rows[0]
    assert row["customer_id"] == "u1"
    assert (row["email"], row["phone"]) == ("hanako@example.jp", "+819012345678")
    assert row["push_tokens"] == [
        {"token": "a" * 64, "platform": "APNS"},
        {"token": "fcm:" + "b" * 60, "platform": "FCM"},
    ]
    assert (row["email_consent"], row["sms_consent"], row["push_consent"]) == ("opted_in",) * 3
    assert result.endpoint_customer == {"e1": "u1", "e2": "u1", "e3": "u1", "e4": "u1"}


def test_opt_out_all_is_opted_out_and_the_address_is_kept(tmp_path: Path) -> None:
    result, report = migrate(
        tmp_path,
        endpoint("e1", "EMAIL", "hanako@example.jp", OptOut="ALL"),
        endpoint("e2", "GCM", "c" * 40, OptOut="ALL"),
    )
    row = result.rows[0]
    assert (row["email"], row["email_consent"], row["push_consent"]) == (
        "hanako@example.jp",
        "opted_out",
        "opted_out",
    )
    assert "push_tokens" not in row  # an opted-out device is not registered
    assert report.find("endpoint", "e2").status == Status.NOT_MIGRATED


def test_an_inactive_endpoint_keeps_its_address_but_no_consent(tmp_path: Path) -> None:
    result, report = migrate(
        tmp_path, endpoint("e1", "EMAIL", "old@example.jp", EndpointStatus="INACTIVE")
    )
    row = result.rows[0]
    assert row["email"] == "old@example.jp"
    assert "email_consent" not in row
    assert "sms: INACTIVE" not in " ".join(notes(report))
    assert "email: INACTIVE endpoint, not opted in: 1" in notes(report)


def test_of_two_email_endpoints_the_active_most_recent_wins_and_the_other_is_reported(
    tmp_path: Path,
) -> None:
    result, report = migrate(
        tmp_path,
        endpoint(
            "old",
            "EMAIL",
            "new@example.jp",
            EffectiveDate="2026-05-01T00:00:00Z",
            EndpointStatus="INACTIVE",
        ),
        endpoint("mid", "EMAIL", "mid@example.jp", EffectiveDate="2025-05-01T00:00:00Z"),
        endpoint("new", "EMAIL", "latest@example.jp", EffectiveDate="2026-02-01T00:00:00Z"),
    )
    assert result.rows[0]["email"] == "latest@example.jp"
    assert result.rows[0]["email_consent"] == "opted_in"
    for eid in ("old", "mid"):
        item = report.find("endpoint", eid)
        assert item.status == Status.NOT_MIGRATED
        assert "another EMAIL endpoint of the same user was kept" in item.notes[0]


def test_an_opt_out_of_the_kept_address_wins_over_an_older_active_endpoint(
    tmp_path: Path,
) -> None:
    # Given one address on two endpoints per channel: the older opted in, the newer opted out
    result, report = migrate(
        tmp_path,
        endpoint("e-old", "EMAIL", "hanako@example.jp", EffectiveDate="2025-01-01T00:00:00Z"),
        endpoint(
            "e-new",
            "EMAIL",
            "Hanako@Example.jp",
            OptOut="ALL",
            EffectiveDate="2026-01-01T00:00:00Z",
        ),
        endpoint("s-old", "SMS", "+819012345678", EffectiveDate="2025-01-01T00:00:00Z"),
        endpoint(
            "s-new", "SMS", "+819012345678", OptOut="ALL", EffectiveDate="2026-01-01T00:00:00Z"
        ),
    )
    # Then the address is kept, and opted out on both channels: the opt-out survives
    row = result.rows[0]
    assert (row["email"], row["email_consent"]) == ("hanako@example.jp", "opted_out")
    assert (row["phone"], row["sms_consent"]) == ("+819012345678", "opted_out")
    assert "OptOut ALL: email opted out" in report.find("endpoint", "e-new").notes
    assert any(
        "endpoint e-new has the same email" in n for n in report.find("endpoint", "e-old").notes
    )
    assert "email: opted out (OptOut ALL): 1" in notes(report)


def test_an_opt_out_of_the_kept_address_written_another_way_still_opts_it_out(
    tmp_path: Path,
) -> None:
    # Given opted-in addresses and, on other endpoints of the user, the same addresses opted
    # out but written in a way Kizuna cannot send to (a trailing space, a line feed, a phone
    # number with spaces and hyphens, a zero-width space)
    result, report = migrate(
        tmp_path,
        endpoint("e-in", "EMAIL", "hanako@example.jp", EffectiveDate="2026-02-01T00:00:00Z"),
        endpoint("e-out", "EMAIL", "Hanako@example.jp ", OptOut="ALL"),
        endpoint("s-in", "SMS", "+819012345678"),
        endpoint("s-out", "SMS", "+81 90-1234-5678", OptOut="ALL"),
        endpoint("e2-in", "EMAIL", "taro@example.jp", user="u2"),
        endpoint("e2-out", "EMAIL", "taro@example.jp\n", user="u2", OptOut="ALL"),
        endpoint("s2-in", "SMS", "+819011112222", user="u2"),
        endpoint("s2-out", "SMS", "+8190111\u200b12222", user="u2", OptOut="ALL"),
    )
    # Then the kept addresses are opted out: the opt-out of the address wins however written
    rows = {r["customer_id"]: r for r in result.rows}
    assert (rows["u1"]["email"], rows["u1"]["email_consent"]) == (
        "hanako@example.jp",
        "opted_out",
    )
    assert (rows["u1"]["phone"], rows["u1"]["sms_consent"]) == ("+819012345678", "opted_out")
    assert (rows["u2"]["email_consent"], rows["u2"]["sms_consent"]) == ("opted_out", "opted_out")
    # And the endpoints written another way are still left out as addresses, saying both
    out = report.find("endpoint", "s-out")
    assert out.status == Status.NOT_MIGRATED
    assert "its Address is not an E.164 phone number: left out" in out.notes
    assert (
        "OptOut ALL: its Address is endpoint s-in's phone written another way: sms opted out "
        "(an opt-out wins)" in out.notes
    )
    assert (
        "endpoint e-out has the same email written another way and OptOut ALL: email opted "
        "out (an opt-out wins)" in report.find("endpoint", "e-in").notes
    )
    assert "email: opted out (OptOut ALL): 2" in notes(report)


def test_an_opt_out_of_another_address_does_not_opt_out_the_kept_one(tmp_path: Path) -> None:
    # Given an opted-in address and another, newer, opted-out address
    result, report = migrate(
        tmp_path,
        endpoint("e-yes", "EMAIL", "yes@example.jp", EffectiveDate="2025-01-01T00:00:00Z"),
        endpoint(
            "e-no", "EMAIL", "no@example.jp", OptOut="ALL", EffectiveDate="2026-01-01T00:00:00Z"
        ),
    )
    # Then the opted-in address is kept, opted in; the other is left out and listed
    row = result.rows[0]
    assert (row["email"], row["email_consent"]) == ("yes@example.jp", "opted_in")
    assert report.find("endpoint", "e-no").status == Status.NOT_MIGRATED


def test_a_device_token_opted_out_on_any_of_its_endpoints_is_not_registered(
    tmp_path: Path,
) -> None:
    # Given one token on two endpoints, one of them opted out
    result, report = migrate(
        tmp_path,
        endpoint("g-in", "GCM", "t" * 40, EffectiveDate="2025-01-01T00:00:00Z"),
        endpoint("g-out", "GCM", "t" * 40, OptOut="ALL", EffectiveDate="2024-01-01T00:00:00Z"),
    )
    # Then the device is not registered and push is opted out
    row = result.rows[0]
    assert "push_tokens" not in row
    assert row["push_consent"] == "opted_out"
    assert report.find("endpoint", "g-in").status == Status.NOT_MIGRATED


def test_an_endpoint_id_read_twice_is_reported_once_and_its_opt_out_is_kept(
    tmp_path: Path,
) -> None:
    # Given overlapping export parts: the endpoint opted out, then a newer copy not opted out
    folder = tmp_path / "endpoints"
    folder.mkdir()
    older = endpoint("e1", "EMAIL", "a@example.jp", OptOut="ALL")
    newer = endpoint("e1", "EMAIL", "a@example.jp", EffectiveDate="2026-02-01T00:00:00Z")
    (folder / "part-0.json").write_text(json.dumps(older) + "\n")
    (folder / "part-1.json").write_text(json.dumps(newer) + "\n")
    # When the export is migrated
    report = Report()
    result = migrate_endpoints(folder, report)
    # Then the endpoint is one item saying where its copies were, and the opt-out is kept
    assert [i.source for i in report.of("endpoint")] == ["e1"]
    said = report.find("endpoint", "e1").notes
    assert said[0] == (
        "its Id appears 2 times in the export (endpoints/part-0.json:1, "
        "endpoints/part-1.json:1): the most recent copy (endpoints/part-1.json:1) is read"
    )
    assert "endpoints/part-0.json:1 has OptOut ALL: kept (an opt-out wins)" in said[1]
    assert result.rows[0]["email_consent"] == "opted_out"
    assert "endpoint Ids read more than once (the most recent copy kept): 1" in notes(report)
    assert report.counts["endpoints_read"] == 2


def test_an_endpoint_without_a_user_id_never_merges_into_the_user_with_its_id(
    tmp_path: Path,
) -> None:
    # Given an endpoint without a UserId whose Id is another user's UserId (read first)
    result, report = migrate(
        tmp_path,
        endpoint("u-100", "EMAIL", "stranger@example.jp", user=None),
        endpoint("e-alice", "EMAIL", "alice@example.jp", user="u-100"),
    )
    # Then the user keeps her own address, and the endpoint is left out, said by its id
    assert [(r["customer_id"], r["email"]) for r in result.rows] == [("u-100", "alice@example.jp")]
    assert result.endpoint_customer == {"e-alice": "u-100"}
    item = report.find("endpoint", "u-100")
    assert item.status == Status.NOT_MIGRATED
    assert "its Id is the User.UserId of other endpoints" in item.notes[0]
    assert not any("stranger" in n for i in report.items for n in i.notes)
    assert "endpoints without a UserId whose Id is a UserId (left out): 1" in notes(report)


def test_effective_date_becomes_updated_at_in_utc_and_an_unreadable_one_is_reported(
    tmp_path: Path,
) -> None:
    # Given endpoints updated at a Pinpoint time, "yesterday" and a time without an offset
    result, report = migrate(
        tmp_path,
        endpoint("e1", "EMAIL", "a@example.jp", EffectiveDate="2026-03-01T09:30:00.000Z"),
        endpoint("e2", "SMS", "+819012345678", EffectiveDate="yesterday"),
        endpoint("e3", "GCM", "g" * 40, EffectiveDate="2026-12-01T00:00:00"),
        endpoint("e4", "EMAIL", "b@example.jp", user="u2", EffectiveDate="2026-13-01T00:00:00Z"),
    )
    # Then updated_at is the latest readable time, in UTC with its offset
    rows = {r["customer_id"]: r for r in result.rows}
    assert rows["u1"]["updated_at"] == "2026-03-01T09:30:00+00:00"
    assert datetime.fromisoformat(rows["u1"]["updated_at"]).utcoffset() == timedelta(0)
    assert "updated_at" not in rows["u2"]  # none readable: imported with --as-of, and said
    # And each unreadable one is reported on its endpoint
    for eid in ("e2", "e3", "e4"):
        item = report.find("endpoint", eid)
        assert any("is not an ISO 8601 time with a UTC offset" in n for n in item.notes)
    assert "endpoints whose EffectiveDate is not an ISO 8601 time with an offset: 3" in notes(
        report
    )


def test_an_endpoint_without_a_user_id_is_a_customer_of_its_own_and_reported(
    tmp_path: Path,
) -> None:
    result, report = migrate(tmp_path, endpoint("anon-1", "GCM", "d" * 40, user=None))
    assert [r["customer_id"] for r in result.rows] == ["anon-1"]
    assert report.find("endpoint", "anon-1").status == Status.CHANGED
    assert "endpoints without a UserId (a customer each): 1" in notes(report)


def test_a_user_id_kizuna_refuses_is_reported_never_renamed(tmp_path: Path) -> None:
    # Given user ids with a trailing space and a '#'
    result, report = migrate(
        tmp_path,
        endpoint("e1", "EMAIL", "a@example.jp", user="C000599 "),
        endpoint("e2", "EMAIL", "b@example.jp", user="C000600#legacy"),
        endpoint("e3", "EMAIL", "c@example.jp", user="C000601"),
    )
    # Then only the valid one is a customer; the others are left out, each saying why
    assert [r["customer_id"] for r in result.rows] == ["C000601"]
    assert "it has a space" in report.find("endpoint", "e1").notes[0]
    assert "outside A-Z" in report.find("endpoint", "e2").notes[0]
    assert not any("C000599" in r["customer_id"] for r in result.rows)


def test_addresses_kizuna_cannot_send_to_are_left_out_and_reported(tmp_path: Path) -> None:
    result, report = migrate(
        tmp_path,
        endpoint("e1", "SMS", "09012345678"),  # no country code
        endpoint("e2", "VOICE", "+819012345678"),
        endpoint("e3", "APNS_SANDBOX", "f" * 64),
        endpoint("e4", "EMAIL", "not-an-address"),
    )
    row = result.rows[0]
    assert not {"phone", "email", "push_tokens"} & set(row)
    assert "not an E.164 phone number" in report.find("endpoint", "e1").notes[0]
    assert "voice channel is not a Kizuna channel" in report.find("endpoint", "e2").notes[0]
    assert "sandbox" in report.find("endpoint", "e3").notes[0]


def test_an_address_customer_upserted_refuses_is_reported_on_its_endpoint(tmp_path: Path) -> None:
    # Given addresses `$` would let through (a trailing line feed) or Kizuna refuses (an
    # invisible character, over 254 characters), and a good one of another user
    result, report = migrate(
        tmp_path,
        endpoint("e1", "EMAIL", "alice@example.com\n"),
        endpoint("e2", "SMS", "+819012345678\n"),
        endpoint("e3", "EMAIL", "al\u200bice@example.com", user="u2"),
        endpoint("e4", "EMAIL", "a" * 250 + "@example.com", user="u3"),
        endpoint("e5", "EMAIL", "bob@example.com", user="u4"),
    )
    # Then each is left out and said so on its endpoint, never kept in the report and then
    # dropped from the row
    rows = {r["customer_id"]: r for r in result.rows}
    for eid, user, what in (
        ("e1", "u1", "an email address"),
        ("e2", "u1", "an E.164 phone number"),
        ("e3", "u2", "an email address"),
        ("e4", "u3", "an email address"),
    ):
        item = report.find("endpoint", eid)
        assert item.status == Status.NOT_MIGRATED, eid
        assert f"its Address is not {what}: left out" in item.notes, eid
        assert not {"email", "phone"} & set(rows[user]), eid
    assert rows["u4"]["email"] == "bob@example.com"
    assert not any("refused" in n for n in notes(report))


def test_demographics_and_location_are_normalised_and_the_report_says_so(tmp_path: Path) -> None:
    result, report = migrate(
        tmp_path,
        endpoint(
            "e1",
            "EMAIL",
            "a@example.jp",
            Demographic={"Timezone": "Asia/Tokyo", "Locale": "ja_JP", "Platform": "ios"},
            Location={
                "Country": "JP",
                "Region": "Osaka-fu",
                "City": "Sakai",
                "PostalCode": "590-0001",
            },
        ),
        endpoint(
            "e2",
            "EMAIL",
            "b@example.jp",
            user="u2",
            Demographic={"Timezone": "JST", "Locale": "en_US"},
            Location={"Country": "JP", "Region": "Kyoto"},
        ),
    )
    u1, u2 = result.rows
    assert (u1["time_zone"], u1["locale"], u1["prefecture"], u1["region"]) == (
        "Asia/Tokyo",
        "ja",
        "Osaka",
        "Kansai",
    )
    assert u1["attributes"] == {"city": "Sakai", "country": "JP"}
    assert "time_zone" not in u2  # JST is not an IANA zone: left out, counted
    assert (u2["locale"], u2["prefecture"], u2["region"]) == ("en", "Kyoto", "Kansai")
    said = notes(report)
    for expected in (
        "locale ja_JP -> ja: 1",
        "locale en_US -> en: 1",
        "Location.Region Osaka-fu -> prefecture Osaka: 1",
        "time zones that are not IANA zones (left out): 1",
        "Location.PostalCode (not kept): 1",
        "Demographic.Platform (not kept: Kizuna keeps no device details): 1",
    ):
        assert expected in said


def test_custom_attributes_are_typed_renamed_and_merged(tmp_path: Path) -> None:
    user = {
        "UserId": "u1",
        "UserAttributes": {
            "FirstName": ["Hanako"],
            "FavoriteStore": ["Ginza"],
            "BirthDate": ["1990-04-01"],
        },
    }
    result, report = migrate(
        tmp_path,
        endpoint(
            "e1",
            "EMAIL",
            "a@example.jp",
            User=user,
            EffectiveDate="2026-01-01T00:00:00Z",
            Attributes={"Interests": ["tea"], "NewsletterOptIn": ["TRUE"]},
            Metrics={"Spend": 100.5},
        ),
        endpoint(
            "e2",
            "GCM",
            "g" * 40,
            User=user,
            EffectiveDate="2026-02-01T00:00:00Z",
            Attributes={"Interests": ["sweets", "tea"]},
            Metrics={"Spend": 200.0},
        ),
    )
    row = result.rows[0]
    assert row["first_name"] == "Hanako"  # a built-in profile field
    assert row["attributes"] == {
        "birth_date": "1990-04-01",
        "favorite_store": "Ginza",
        "interests": ["tea", "sweets"],  # the endpoints' lists joined
        "newsletter_opt_in": True,  # "TRUE" read as true, and said
        "spend": 200,  # the most recent endpoint's metric
    }
    declared = {a.name: a for a in result.declarations()}
    assert declared["birth_date"].personal and not declared["favorite_store"].personal
    assert declared["interests"].type.value == "string_list"
    said = notes(report)
    assert "Attributes.NewsletterOptIn: 'TRUE' read as true: 1" in said
    assert "customers whose endpoints disagree on Metrics.Spend (latest kept): 1" in said


def test_numbers_are_carried_exactly_or_reported_on_their_endpoint(tmp_path: Path) -> None:
    # Given metrics written with more digits than a float keeps, or more than 6 decimals, and
    # an attribute whose values are numbers, one of them with 18 significant digits
    line = (
        '{"Id": "e2", "ChannelType": "EMAIL", "Address": "b@example.jp", "User": {"UserId": '
        '"u2"}, "EffectiveDate": "2026-01-01T00:00:00Z", "Metrics": {"Big": '
        '999999999999.999999, "Fine": 12.5, "Long": 1.1234567}}'
    )
    result, report = migrate(
        tmp_path,
        endpoint("e1", "EMAIL", "a@example.jp", Attributes={"Score": ["999999999999.999999"]}),
        endpoint("e3", "EMAIL", "c@example.jp", user="u3", Attributes={"Score": ["12.5"]}),
        lines=[line],
    )
    rows = {r["customer_id"]: r for r in result.rows}
    declared = {a.name: a for a in result.declarations()}

    # Then the attribute is declared a string and every value kept as written (a number
    # would have become 1000000000000.0)
    assert declared["score"].type == ValueType.STRING
    assert rows["u1"]["attributes"]["score"] == "999999999999.999999"
    assert rows["u3"]["attributes"]["score"] == "12.5"
    # and the metrics a Kizuna number cannot hold as written are not migrated, never rounded:
    # said on the endpoint, counted; the rest of the endpoint migrates
    assert rows["u2"]["attributes"] == {"fine": 12.5}
    assert rows["u2"]["email"] == "b@example.jp"
    said = report.find("endpoint", "e2")
    assert said is not None and said.status == Status.CHANGED
    assert said.notes == [
        "Metrics.Big: a number with more significant digits than a Kizuna number carries "
        "exactly (15): not migrated for this customer (the rest of the endpoint is)",
        "Metrics.Long: not a number within +-1e12 with at most 6 decimals: not migrated for "
        "this customer (the rest of the endpoint is)",
    ]
    assert (
        "Metrics.Big: a number with more significant digits than a Kizuna number carries "
        "exactly (15) (not migrated): 1"
    ) in notes(report)


def test_a_value_over_kizunas_limits_is_reported_on_its_endpoints_never_cut(
    tmp_path: Path,
) -> None:
    # Given one user's two endpoints whose Tags lists join into 250 values (a Kizuna list
    # holds at most 200), another customer with 3 tags, and a note with a control character
    result, report = migrate(
        tmp_path,
        endpoint("e1", "EMAIL", "a@example.jp", Attributes={"Tags": [f"t{i}" for i in range(100)]}),
        endpoint(
            "e2",
            "GCM",
            "g" * 40,
            EffectiveDate="2026-02-01T00:00:00.000Z",
            Attributes={"Tags": [f"x{i}" for i in range(150)], "Store": ["Ginza"]},
        ),
        endpoint(
            "e3",
            "EMAIL",
            "b@example.jp",
            user="u2",
            Attributes={"Tags": ["a", "b", "c"], "Memo": ["line\x07bell"]},
        ),
        endpoint("e4", "EMAIL", "c@example.jp", user="u3", Attributes={"Memo": ["fine"]}),
    )
    rows = {r["customer_id"]: r for r in result.rows}
    declared = {a.name: a for a in result.declarations()}

    # Then the list is not cut to 200: u1 has no tags, and the rest of its endpoints migrate
    assert declared["tags"].max_items == 200
    assert rows["u1"]["attributes"] == {"store": "Ginza"}
    assert rows["u1"]["email"] == "a@example.jp" and rows["u1"]["push_tokens"]
    assert rows["u2"]["attributes"] == {"tags": ["a", "b", "c"]}  # the note left out, said
    assert rows["u3"]["attributes"] == {"memo": "fine"}
    # and each endpoint holding the value says why, and the report counts it
    tags = (
        "Attributes.Tags: 250 values, over the 200 its declaration holds (max_items; Kizuna's "
        "most is 200): not migrated for this customer (the rest of the endpoint is)"
    )
    for eid in ("e1", "e2"):
        item = report.find("endpoint", eid)
        assert item is not None and tags in item.notes and item.status == Status.CHANGED
    e3 = report.find("endpoint", "e3")
    assert e3 is not None and e3.notes == [
        "Attributes.Memo: over 256 characters or with control characters: not migrated for "
        "this customer (the rest of the endpoint is)"
    ]
    said = notes(report)
    assert (
        "Attributes.Tags: 250 values, over the 200 its declaration holds (max_items; Kizuna's "
        "most is 200) (not migrated): 1"
    ) in said


def test_the_migrations_limits_are_kizunas_own() -> None:
    fields = CustomValueSpec.model_fields
    assert [m.le for m in fields["max_items"].metadata if hasattr(m, "le")] == [MAX_LIST_ITEMS]
    assert [m.le for m in fields["max_length"].metadata if hasattr(m, "le")] == [MAX_TEXT]


def test_a_japanese_attribute_name_is_mapped_in_the_report_and_personal(tmp_path: Path) -> None:
    # Given attributes named in Japanese
    result, report = migrate(
        tmp_path,
        endpoint(
            "e1",
            "EMAIL",
            "a@example.jp",
            Attributes={"メールアドレス": ["b@example.jp"], "電話番号": ["09012345678"]},
        ),
    )
    # Then they get generated names, declared personal
    assert result.rows[0]["attributes"] == {"attr_1": "b@example.jp", "attr_2": "09012345678"}
    declared = {a.name: a for a in result.declarations()}
    assert declared["attr_1"].personal and declared["attr_2"].personal
    # and the report maps each original name to its generated one
    item = report.find("attribute", "Attributes.メールアドレス")
    assert item is not None and item.became == ["custom.attributes.attr_1 (string)"]
    assert (
        "renamed メールアドレス -> attr_1: a generated name, as メールアドレス has no Latin "
        "letters to keep (the declaration's description names it too)"
    ) in item.notes
    assert "personal data by its name: masked, erased, never in conditions" in item.notes


def test_a_line_that_is_not_an_endpoint_is_reported_and_the_others_are_read(tmp_path: Path) -> None:
    result, report = migrate(
        tmp_path,
        endpoint("e1", "EMAIL", "a@example.jp"),
        lines=['{"ChannelType": "EMAIL", "Adress": "x@example.jp"}', "not json"],
    )
    assert len(result.rows) == 1
    problems = {i.source: i.notes[0] for i in report.of("input")}
    assert "EndpointResponse has no member 'Adress'" in problems["endpoints/part-0.json:2"]
    assert problems["endpoints/part-0.json:3"].startswith("not JSON")


def test_a_line_giving_a_key_twice_or_nan_is_reported_not_read_as_its_last_value(
    tmp_path: Path,
) -> None:
    # Given u2's only endpoint line giving OptOut twice (json kept the last: opted in) and
    # u3's line with NaN for a metric
    twice = json.dumps(endpoint("e2", "EMAIL", "b@example.jp", user="u2", OptOut="ALL"))
    twice = twice[:-1] + ', "OptOut": "NONE"}'
    nan = json.dumps(endpoint("e3", "EMAIL", "c@example.jp", user="u3"))
    nan = nan[:-1] + ', "Metrics": {"spend": NaN}}'

    # When the endpoints are read
    result, report = migrate(tmp_path, endpoint("e1", "EMAIL", "a@example.jp"), lines=[twice, nan])

    # Then neither is migrated (u2 is not opted in by the second OptOut), each is said
    assert [r["customer_id"] for r in result.rows] == ["u1"]
    problems = {i.source: i.notes[0] for i in report.of("input")}
    assert problems["endpoints/part-0.json:2"] == (
        "not JSON (key 'OptOut' given twice): the line is left out"
    )
    assert problems["endpoints/part-0.json:3"] == (
        "not JSON (NaN is not a JSON number): the line is left out"
    )


def test_a_line_nested_too_deep_is_reported_and_the_others_are_read(tmp_path: Path) -> None:
    # Given an export line of 100,000 nested arrays (beyond what json.loads can recurse)
    deep = "[" * 100_000 + "]" * 100_000

    # When the endpoints are read
    result, report = migrate(tmp_path, endpoint("e1", "EMAIL", "a@example.jp"), lines=[deep])

    # Then that line is reported, not a crash, and the rest is migrated
    assert len(result.rows) == 1
    problems = {i.source: i.notes[0] for i in report.of("input")}
    assert problems["endpoints/part-0.json:2"] == "not JSON (nested too deep): the line is left out"


def test_gzipped_export_parts_are_read(tmp_path: Path) -> None:
    folder = tmp_path / "endpoints"
    folder.mkdir()
    with gzip.open(folder / "part-1.gz", "wt") as fh:
        fh.write(json.dumps(endpoint("e1", "EMAIL", "a@example.jp")) + "\n")
    result = migrate_endpoints(folder, Report())
    assert result.rows[0]["email"] == "a@example.jp"


def test_a_gzipped_part_cut_short_is_not_half_read_and_says_so(tmp_path: Path) -> None:
    # Given two gzipped parts, the second cut short (a download that stopped): its opted-in
    # endpoints come first, the opt-out of one of their addresses in the part's lost end
    folder = tmp_path / "endpoints"
    folder.mkdir()
    with gzip.open(folder / "part-0.gz", "wt") as fh:
        fh.write(json.dumps(endpoint("e0", "EMAIL", "zero@example.jp", user="u0")) + "\n")
    lines = [endpoint(f"e{i}", "EMAIL", f"c{i}@example.jp", user=f"u{i}") for i in range(1, 400)]
    lines.append(endpoint("late", "EMAIL", "c1@example.jp", user="u1", OptOut="ALL"))
    whole = gzip.compress("".join(json.dumps(e) + "\n" for e in lines).encode())
    (folder / "part-1.gz").write_bytes(whole[: len(whole) // 2])
    # When the export is migrated
    report = Report()
    result = migrate_endpoints(folder, report)
    # Then none of the cut part's endpoints is read (u1 is never imported opted in)...
    assert [r["customer_id"] for r in result.rows] == ["u0"]
    # ...and the report says the part is cut short, after how many lines, and what to do
    [item] = report.of("input")
    assert item.source == "endpoints/part-1.gz"
    assert item.status == Status.NOT_MIGRATED
    [said] = item.notes
    assert said.startswith("cannot be read to its end (its gzip data ends early: the file is cut")
    assert "none of its endpoints is read" in said
    assert said.endswith("copy it again from the export and migrate again")
    assert report.counts["endpoints_read"] == 1


def test_a_file_of_the_endpoint_folder_that_is_not_read_is_reported(tmp_path: Path) -> None:
    # Given an export part and, beside it, files saved under other names: an S3 object
    # without an extension, a .csv, a part still being downloaded, a hidden file
    folder = tmp_path / "endpoints"
    (folder / "job-1").mkdir(parents=True)
    line = json.dumps(endpoint("e1", "EMAIL", "a@example.jp")) + "\n"
    (folder / "part-0.json").write_text(line)
    (folder / "part-1").write_text(json.dumps(endpoint("e2", "EMAIL", "b@example.jp", user="u2")))
    (folder / "part-2.csv").write_text("ChannelType,Address\n")
    (folder / "job-1" / "part-3.gz.crdownload").write_bytes(gzip.compress(line.encode()))
    (folder / ".part-4.json").write_text(line)
    # When the export is migrated
    report = Report()
    result = migrate_endpoints(folder, report)
    # Then the part is read, and every other file is reported as not read, saying why
    assert [r["customer_id"] for r in result.rows] == ["u1"]
    unread = {i.source: i for i in report.of("input")}
    assert sorted(unread) == [
        "endpoints/.part-4.json",
        "endpoints/job-1/part-3.gz.crdownload",
        "endpoints/part-1",
        "endpoints/part-2.csv",
    ]
    for item in unread.values():
        assert item.status == Status.NOT_MIGRATED
        assert item.notes == [
            "not read: an export part is named *.json, *.jsonl, *.ndjson or *.gz (one "
            "EndpointResponse a line; a hidden file is not read); if this is one, rename it "
            "and migrate again"
        ]


def test_locale_and_prefecture_helpers() -> None:
    assert [normalise_locale(x) for x in ("ja_JP", "en-US", "ja", "japanese", "")] == [
        "ja",
        "en",
        "ja",
        None,
        None,
    ]
    assert [prefecture_of(x) for x in ("Tokyo-to", "tokyo", "Kyoto", "Kyoto-fu", "Gotham")] == [
        "Tokyo",
        "Tokyo",
        "Kyoto",
        "Kyoto",
        None,
    ]


def test_the_fixture_project_becomes_one_customer_per_valid_user(tmp_path: Path) -> None:
    # An independent reading of the export: users by UserId, endpoints without one
    endpoints: list[dict[str, Any]] = []
    for path in sorted((FIXTURES / "endpoints").iterdir()):
        text = (
            gzip.decompress(path.read_bytes()).decode()
            if path.suffix == ".gz"
            else path.read_text()
        )
        endpoints += [json.loads(line) for line in text.splitlines() if line.strip()]
    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ep in endpoints:
        by_user[ep.get("User", {}).get("UserId") or ep["Id"]].append(ep)
    expected = {k for k in by_user if is_customer_id(k)}
    opted_in_email = {
        k
        for k in expected
        if any(
            e["ChannelType"] == "EMAIL"
            and e["EndpointStatus"] == "ACTIVE"
            and e["OptOut"] == "NONE"
            for e in by_user[k]
        )
    }
    # When the export is migrated
    report = Report()
    result = migrate_endpoints(FIXTURES / "endpoints", report)
    # Then every valid user is one customer, and email consent follows the endpoints
    assert {r["customer_id"] for r in result.rows} == expected
    assert {
        r["customer_id"] for r in result.rows if r.get("email_consent") == "opted_in"
    } == opted_in_email
    assert report.counts["endpoints_read"] == len(endpoints) == 1000
    left_out = [i for i in report.of("endpoint") if "customer id" in " ".join(i.notes)]
    assert len(left_out) == sum(len(v) for k, v in by_user.items() if not is_customer_id(k))


def test_a_customer_over_kizunas_attribute_budget_keeps_its_consent_and_is_told(
    tmp_path: Path,
) -> None:
    # Given a user whose endpoints hold ~110 KB of custom attributes (Kizuna keeps 80,000
    # bytes a customer): Notes ~62 KB, Tags ~46 KB, Store a few bytes; the email opted out
    notes_ = [f"{i:03d}" + "n" * 300 for i in range(200)]
    tags = [f"{i:03d}" + "t" * 300 for i in range(150)]
    result, report = migrate(
        tmp_path,
        endpoint("e1", "EMAIL", "a@example.jp", OptOut="ALL", Attributes={"Notes": notes_}),
        endpoint("e2", "GCM", "g" * 40, Attributes={"Tags": tags, "Store": ["Ginza"]}),
        endpoint("e3", "EMAIL", "b@example.jp", user="u2", Attributes={"Tags": ["a"]}),
    )
    rows = {r["customer_id"]: r for r in result.rows}
    # Then u1 is written with its email, consent and device, and without its largest
    # attribute, whole (never cut): the rest fit
    u1 = rows["u1"]
    assert (u1["email"], u1["email_consent"]) == ("a@example.jp", "opted_out")
    assert u1["push_tokens"] and u1["push_consent"] == "opted_in"
    assert u1["attributes"] == {"store": "Ginza", "tags": tags}
    assert rows["u2"]["attributes"] == {"tags": ["a"]}
    # and the report names the customer, what was left out and why; the endpoint holding it
    # says so, the other does not
    said = report.find("customers", "customer u1")
    assert said is not None and said.status == Status.CHANGED
    assert len(said.notes) == 1 and "Attributes.Notes (" in said.notes[0]
    assert "over Kizuna's 80,000 a customer" in said.notes[0]
    assert "Tags" not in said.notes[0]
    assert any(n.startswith("Attributes.Notes (") for n in report.find("endpoint", "e1").notes)
    assert not any("Notes" in n for n in report.find("endpoint", "e2").notes)
    assert report.find("customers", "customer u2") is None
    assert "customers over Kizuna's 80,000 bytes of custom attributes: 1" in notes(report)
    # And the rows import as they are: a dry run and the import agree, nothing refused
    cfg = KizunaConfig(custom=CustomConfig(attributes=result.declarations()))
    path = tmp_path / "customers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in result.rows))
    store = MemoryStore()
    now = datetime(2026, 1, 10, tzinfo=UTC)
    for target in (None, store):
        imported = import_file("customers", path, target, cfg, now)
        assert (imported.errors, imported.imported) == ([], 2)
    assert str(store.customers["u1"].consent["email"].status) == "opted_out"


def without_channel(
    eid: str, address: str, user: str | None = "u1", **fields: Any
) -> dict[str, Any]:
    ep = endpoint(eid, "EMAIL", address, user, **fields)
    del ep["ChannelType"]
    return ep


def test_an_opt_out_on_an_endpoint_that_is_no_customers_address_opts_the_address_out(
    tmp_path: Path,
) -> None:
    # Given opted-in addresses whose owner opted them out on endpoints the migration does not
    # make a customer's address: one without a UserId whose Id is a UserId, one whose UserId
    # is not a customer id (written another way), one without a UserId or a usable Id (a
    # token), one without a ChannelType (of another user, in another case)
    result, report = migrate(
        tmp_path,
        endpoint("e-alice", "EMAIL", "alice@example.jp", user="u-100"),
        endpoint("u-100", "EMAIL", "alice@example.jp", user=None, OptOut="ALL"),
        endpoint("s-c599", "SMS", "+819012345678", user="C000599"),
        endpoint("s-bad", "SMS", "+81 90-1234-5678", user="C000599 ", OptOut="ALL"),
        endpoint("g-u3", "GCM", "t" * 40, user="u3"),
        endpoint("bad id#", "GCM", "t" * 40, user=None, OptOut="ALL"),
        endpoint("e-u4", "EMAIL", "hanako@example.jp", user="u4"),
        endpoint("e-u5", "EMAIL", "hanako@example.jp", user="u5"),
        without_channel("x-u5", "Hanako@Example.jp", user="u5", OptOut="ALL"),
        # and an opt-out of an address nobody keeps, a channel-less endpoint not opted out
        endpoint("e-nobody", "EMAIL", "nobody@example.jp", user="C000700 ", OptOut="ALL"),
        without_channel("x-u6", "x@example.jp", user="u6", Attributes={"Store": ["Ginza"]}),
        endpoint("e-u6", "EMAIL", "taro@example.jp", user="u6"),
    )
    rows = {r["customer_id"]: r for r in result.rows}
    # Then each kept address is opted out, for every customer who keeps it
    assert (rows["u-100"]["email"], rows["u-100"]["email_consent"]) == (
        "alice@example.jp",
        "opted_out",
    )
    assert (rows["C000599"]["phone"], rows["C000599"]["sms_consent"]) == (
        "+819012345678",
        "opted_out",
    )
    assert "push_tokens" not in rows["u3"] and rows["u3"]["push_consent"] == "opted_out"
    for cid in ("u4", "u5"):
        assert (rows[cid]["email"], rows[cid]["email_consent"]) == (
            "hanako@example.jp",
            "opted_out",
        )
    # and another address is not: u6's stays opted in, its channel-less endpoint's
    # attributes migrate
    assert rows["u6"]["email_consent"] == "opted_in"
    assert rows["u6"]["attributes"] == {"store": "Ginza"}
    # And the report says so on both endpoints
    assert (
        "endpoint u-100 has the same email and OptOut ALL, and is no customer's address (it "
        "has no UserId, and its Id is a UserId): email opted out (an opt-out of an address "
        "counts for every customer who keeps it)" in report.find("endpoint", "e-alice").notes
    )
    assert (
        "OptOut ALL: its Address is customer u-100's email: email opted out there (an "
        "opt-out of an address counts for every customer who keeps it)"
        in report.find("endpoint", "u-100").notes
    )
    assert any(
        "its UserId is not a customer id" in n for n in report.find("endpoint", "s-c599").notes
    )
    assert report.find("endpoint", "g-u3").status == Status.NOT_MIGRATED
    said = report.find("endpoint", "x-u5").notes
    assert [n for n in said if n.startswith("OptOut ALL")] == [
        f"OptOut ALL: its Address is customer {cid}'s email: email opted out there (an opt-out "
        "of an address counts for every customer who keeps it)"
        for cid in ("u4", "u5")
    ]
    assert (
        "OptOut ALL: no migrated customer keeps its Address (however written): nothing to opt "
        "out" in report.find("endpoint", "e-nobody").notes
    )
    # an endpoint without a ChannelType is not reported as migrated as it was
    x_u6 = report.find("endpoint", "x-u6")
    assert x_u6.status == Status.CHANGED
    assert x_u6.notes == [
        "no ChannelType: its Address is not kept (no channel to keep it on); its Attributes, "
        "Demographic and Location are its customer's"
    ]
    counted = notes(report)
    assert "email: opted out by an endpoint that is no customer's address: 3" in counted
    assert "sms: opted out by an endpoint that is no customer's address: 1" in counted
    assert "push devices opted out by an endpoint that is no customer's address: 1" in counted
    assert "endpoints without a ChannelType (their Address not kept): 2" in counted
