"""The campaigns routes on moto: who may call what (401 without a token, 403 for a viewer's
write, nothing changed), validation errors naming the field, and a campaign's life through
the API: create -> estimate -> dry run -> preview (ja and en) -> schedule -> pause -> resume
-> cancel, each write audited; an update only over the version read; results per variant."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
import yaml

from kizuna.adapters.dynamodb import customer_to_item, ledger_item
from kizuna.adapters.stepfunctions import Executions
from kizuna.campaigns.engine import SEND_STEP, execution_of
from kizuna.domain.ingest import apply_events
from kizuna.domain.timestamps import iso
from kizuna.ports import DefinitionConflict
from kizuna.services.campaign_admin import EDITABLE
from tests.factories import order, parsed
from tests.integration.api.campaign_setup import (
    CFG,
    GROUP,
    NOW,
    REPEAT_BUYERS,
    SHOPPERS,
    SOURCES,
    prepare_campaigns,
    winter_sale,
)
from tests.integration.api.harness import REGION, Api

pytestmark = pytest.mark.integration

READS = [
    ("GET", "/api/campaigns", None),
    ("GET", "/api/campaigns/winter-sale", None),
    ("POST", "/api/campaigns/winter-sale/estimate", None),
    ("POST", "/api/campaigns/winter-sale/dry-run", None),
    ("POST", "/api/campaigns/winter-sale/preview", {}),
]
WRITES = [
    ("POST", "/api/campaigns", {"definition": winter_sale(id="other"), "template_sources": {}}),
    (
        "PUT",
        "/api/campaigns/winter-sale",
        {"definition": winter_sale(name="Changed"), "version": 1},
    ),
    ("DELETE", "/api/campaigns/winter-sale", None),
    ("POST", "/api/campaigns/winter-sale/schedule", None),
    ("POST", "/api/campaigns/winter-sale/pause", None),
    ("POST", "/api/campaigns/winter-sale/resume", None),
]


@pytest.fixture
def capi(api: Api) -> Iterator[Api]:
    yield prepare_campaigns(api)


def create(capi: Api, **fields: Any) -> Any:
    body = {"definition": winter_sale(**fields), "template_sources": SOURCES}
    return capi.call("POST", "/api/campaigns", as_="marketer", body=body)


def audit_actions(capi: Api) -> list[tuple[str, str, str]]:
    rows = capi.deps.audit.day(NOW.date().isoformat())
    return sorted((r["action"], r["target"], r["actor_name"]) for r in rows)


def test_every_route_needs_a_token_and_writes_need_a_marketer(capi: Api) -> None:
    # given a stored draft campaign
    assert create(capi).status == 200
    before = capi.call("GET", "/api/campaigns/winter-sale", as_="viewer").json()
    # then no token is 401 on every route, reads or writes
    for method, path, body in READS + WRITES:
        answer = capi.call(method, path, body=body)
        assert answer.status == 401, (method, path, answer.body)
    # and a viewer may read but not write
    for method, path, body in READS:
        assert capi.call(method, path, as_="viewer", body=body).status == 200, path
    for method, path, body in WRITES:
        answer = capi.call(method, path, as_="viewer", body=body)
        assert answer.status == 403, (method, path, answer.body)
    # and nothing changed, nothing was audited but the marketer's create
    after = capi.call("GET", "/api/campaigns/winter-sale", as_="viewer").json()
    assert after == before
    assert [a for a, _, _ in audit_actions(capi)] == ["campaign.create"]


def test_a_campaign_from_create_to_pause(capi: Api) -> None:
    # when a marketer creates it from JSON with library templates
    created = create(capi)
    assert created.status == 200, created.body
    assert created.json() == {"id": "winter-sale", "version": 1, "status": "draft"}
    listed = capi.call("GET", "/api/campaigns", as_="viewer").json()["campaigns"]
    assert [(c["id"], c["status"], c["updated_by"]) for c in listed] == [
        ("winter-sale", "draft", "mari")
    ]
    detail = capi.call("GET", "/api/campaigns/winter-sale", as_="viewer").json()
    assert "sale/ja/email.subject.j2" in detail["template_files"]
    assert "sale_urgent/en/line.txt.j2" in detail["template_files"]
    assert detail["schedule"]["state"] == "DISABLED"

    # then the estimate counts the repeat buyers (the segment), by decision and channel
    estimate = capi.call("POST", "/api/campaigns/winter-sale/estimate", as_="viewer").json()
    assert estimate["audience"] == len(REPEAT_BUYERS)
    assert sum(estimate["by_status"].values()) == len(REPEAT_BUYERS)
    assert estimate["by_channel"].get("email", 0) == estimate["by_status"].get("send", 0)

    # and the dry run renders one sample per locale and channel for a marketer, none for a
    # viewer (a sample is a real member's message)
    dry = capi.call("POST", "/api/campaigns/winter-sale/dry-run", as_="marketer").json()
    assert {(s["locale"], s["channel"]) for s in dry["samples"]} == {
        ("ja", "email"),
        ("en", "email"),
    }
    ja = next(s for s in dry["samples"] if s["locale"] == "ja")
    assert "花子" in ja["parts"]["subject"] and "10%" in ja["parts"]["subject"]
    viewer_dry = capi.call("POST", "/api/campaigns/winter-sale/dry-run", as_="viewer").json()
    assert viewer_dry["samples"] is None and viewer_dry["audience"] == dry["audience"]

    # and the preview shows each variant in ja and en on each channel, with the chosen
    # customer's data (marketer) ...
    answer = capi.call(
        "POST",
        "/api/campaigns/winter-sale/preview",
        as_="marketer",
        body={"customer_id": "s01", "locales": ["ja", "en"]},
    )
    assert answer.status == 200, answer.body
    previews = answer.json()["previews"]
    assert {(p["variant"], p["locale"], p["channel"]) for p in previews} == {
        (v, loc, ch) for v in ("a", "b") for loc in ("ja", "en") for ch in ("email", "line")
    }
    assert all(p["error"] is None for p in previews), previews
    by = {(p["variant"], p["locale"], p["channel"]): p for p in previews}
    assert "月末セール" in by[("a", "ja", "email")]["parts"]["subject"]
    assert by[("a", "en", "email")]["rendered_locale"] == "en"
    assert "Hanako" in by[("a", "en", "email")]["parts"]["subject"]
    assert by[("a", "en", "email")]["parts"] != by[("b", "en", "email")]["parts"]
    # ... which a viewer may not choose, though a sample customer's preview is theirs
    refused = capi.call(
        "POST", "/api/campaigns/winter-sale/preview", as_="viewer", body={"customer_id": "s01"}
    )
    assert refused.status == 403
    sample = capi.call("POST", "/api/campaigns/winter-sale/preview", as_="viewer", body={})
    assert sample.status == 200 and len(sample.json()["previews"]) == 8

    # when it is scheduled, the schedule is enabled; paused, disabled; resumed, enabled
    scheduler = boto3.client("scheduler", region_name=REGION)
    for action, status, state in (
        ("schedule", "scheduled", "ENABLED"),
        ("pause", "paused", "DISABLED"),
        ("resume", "scheduled", "ENABLED"),
    ):
        answer = capi.call("POST", f"/api/campaigns/winter-sale/{action}", as_="marketer")
        assert answer.status == 200, answer.body
        assert answer.json()["status"] == status
        schedule = scheduler.get_schedule(Name="winter-sale", GroupName=GROUP)
        assert schedule["State"] == state
    # and an action its status does not allow is a 409
    again = capi.call("POST", "/api/campaigns/winter-sale/resume", as_="marketer")
    assert again.status == 409 and "scheduled" in again.json()["message"]
    # and DELETE cancels it (kept, with its results)
    cancelled = capi.call("DELETE", "/api/campaigns/winter-sale", as_="marketer")
    assert cancelled.json() == {"id": "winter-sale", "previous": "scheduled", "status": "cancelled"}
    assert scheduler.get_schedule(Name="winter-sale", GroupName=GROUP)["State"] == "DISABLED"

    # and every write is in the audit log: who, what, which campaign
    assert audit_actions(capi) == sorted(
        (f"campaign.{a}", "winter-sale", "mari")
        for a in ("create", "schedule", "pause", "resume", "cancel")
    )


def test_create_from_yaml_text_and_update_only_over_the_version_read(capi: Api) -> None:
    text = yaml.safe_dump(winter_sale(), allow_unicode=True)
    body = {"yaml": text, "template_sources": SOURCES, "locales": ["ja", "en"]}
    assert capi.call("POST", "/api/campaigns", as_="marketer", body=body).status == 200
    # creating it again is a conflict
    again = capi.call("POST", "/api/campaigns", as_="marketer", body=body)
    assert again.status == 409
    # an update over version 1 keeps the stored templates and makes version 2
    update = {"definition": winter_sale(name="Winter sale, extended"), "version": 1}
    answer = capi.call("PUT", "/api/campaigns/winter-sale", as_="marketer", body=update)
    assert answer.status == 200, answer.body
    assert answer.json()["version"] == 2
    stored = capi.call("GET", "/api/campaigns/winter-sale", as_="viewer").json()
    assert stored["definition"]["name"] == "Winter sale, extended"
    assert "sale/ja/email.subject.j2" in stored["template_files"]
    # a second update over version 1 (someone else's write came between) is refused
    stale = capi.call("PUT", "/api/campaigns/winter-sale", as_="marketer", body=update)
    assert stale.status == 409
    assert capi.call("GET", "/api/campaigns/winter-sale", as_="viewer").json()["version"] == 2
    # the id cannot change under a PUT
    moved = {"definition": winter_sale(id="spring-sale"), "version": 2}
    answer = capi.call("PUT", "/api/campaigns/winter-sale", as_="marketer", body=moved)
    assert answer.status == 422 and answer.json()["detail"][0]["field"] == "id"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"definition": winter_sale(audience={"segments": ["nope"]})}, "audience.segments"),
        ({"definition": winter_sale(name="")}, "name"),
        ({"definition": winter_sale(channels=["fax"])}, "channels.0"),
        ({"definition": winter_sale(holdout_percent=90)}, "holdout_percent"),
        ({"definition": winter_sale(id="Bad Id")}, "id"),
        ({"definition": winter_sale(template="missing")}, "template"),
        ({"definition": winter_sale(id="cart-abandonment")}, "id"),  # a program's id
        ({"yaml": "id: [unclosed"}, "yaml"),
        ({"yaml": "a: &x [1]\nb: *x\n"}, "yaml"),
        (
            {"definition": winter_sale(), "templates": {"sale/ja/../../x.j2": "x"}},
            "templates.sale/ja/../../x.j2",
        ),
        ({"definition": winter_sale(), "template_sources": {"sale": "nope/sale"}}, None),
        # what DynamoDB would refuse as an item (400 KB) is refused first, by field
        ({"definition": winter_sale(description="あ" * 150_000)}, "description"),
        (
            {
                "definition": winter_sale(variants=[]),
                "templates": {
                    "sale/ja/email.subject.j2": "セール",
                    "sale/ja/email.html.j2": "<p>" + "あ" * 140_000 + "</p>",
                    "sale/ja/email.txt.j2": "セール",
                },
            },
            "templates",
        ),
        # control characters, a bidi override, spaces only
        ({"definition": winter_sale(name="Sale\x1b[31m")}, "name"),
        ({"definition": winter_sale(name="Sale \u202egnp.exe")}, "name"),
        ({"definition": winter_sale(name="   ")}, "name"),
        ({"definition": winter_sale(description="ok\nbut \x00")}, "description"),
        # at the ends of what datetime holds: its UTC, or a local time's window, raised
        # OverflowError once the campaign was stored (a 500, and a campaign without schedule)
        (
            {"definition": winter_sale(schedule={"type": "once", "at": "9999-12-31T23:59-14:00"})},
            "schedule.at",
        ),
        (
            {
                "definition": winter_sale(
                    schedule={"type": "local_time", "date": "0001-01-01", "time": "00:00"}
                )
            },
            "schedule.date",
        ),
        (
            {
                "definition": winter_sale(
                    schedule={
                        "type": "recurring",
                        "rate": "rate(7 days)",
                        "end": "9999-12-31T23:59:00-14:00",
                    }
                )
            },
            "schedule.end",
        ),
    ],
)
def test_an_invalid_campaign_is_422_naming_the_field(
    capi: Api, body: dict[str, Any], field: str | None
) -> None:
    body.setdefault("template_sources", SOURCES) if "templates" not in body else None
    answer = capi.call("POST", "/api/campaigns", as_="marketer", body=body)
    assert answer.status == 422, answer.body
    fields = [d["field"] for d in answer.json()["detail"]]
    assert (field or "template_sources.sale") in fields, fields
    assert capi.call("GET", "/api/campaigns", as_="marketer").json()["campaigns"] == []
    assert audit_actions(capi) == []


def test_a_campaign_on_no_channel_the_stack_sends_on_is_422(capi: Api) -> None:
    """The stack's channels (the function's DEPLOYED_CHANNELS): a LINE-only campaign on a
    stack without LINE is refused, naming the channels; with email beside LINE it is taken."""
    capi.deps.deployed_channels = frozenset({"card", "dm", "email", "sms"})
    answer = create(capi, channels=["line"])
    assert answer.status == 422, answer.body
    assert [(d["field"], d["msg"]) for d in answer.json()["detail"]] == [
        (
            "channels",
            "none of its channels (line) is deployed in this stack (it sends on card, dm, "
            "email, sms): every message would be suppressed, no_channel",
        )
    ], answer.body
    assert create(capi, channels=["line", "email"]).status == 200


def nested_audience(depth: int) -> dict[str, Any]:
    condition: dict[str, Any] = {"prefecture": ["東京都"]}
    for n in range(depth):
        condition = {"$or": [condition, {"prefecture": [f"県{n}"]}]}
    return condition


def test_an_audience_nested_too_deep_or_too_long_is_422_and_the_list_still_reads(
    capi: Api,
) -> None:
    """An audience nested 100 $or levels deep was stored (200) and then no campaign list
    (API, console) could be read: the stored JSON was deeper than the reader takes. One of
    3,000 wildcards was stored too, and cost half a second a customer to evaluate."""
    assert create(capi).status == 200
    deep = winter_sale(id="deep")
    deep["audience"] = {"conditions": nested_audience(100)}
    wide = winter_sale(id="wide")
    wide["audience"] = {
        "conditions": {"prefecture": [{"wildcard": f"*a*a*a*{n}"} for n in range(3000)]}
    }
    for definition, why in ((deep, "nested deeper than 16"), (wide, "characters, over the")):
        body = {"definition": definition, "template_sources": SOURCES}
        answer = capi.call("POST", "/api/campaigns", as_="marketer", body=body)
        assert answer.status == 422, answer.body
        assert why in answer.body, answer.body
    listed = capi.call("GET", "/api/campaigns", as_="viewer")
    assert listed.status == 200 and len(listed.json()["campaigns"]) == 1
    # a condition nested as deep as a real one is taken
    fine = winter_sale(id="fine")
    fine["audience"] = {"conditions": nested_audience(5)}
    body = {"definition": fine, "template_sources": SOURCES}
    assert capi.call("POST", "/api/campaigns", as_="marketer", body=body).status == 200
    assert capi.call("GET", "/api/campaigns/fine", as_="viewer").status == 200


def test_a_malformed_request_is_422_from_the_schema(capi: Api) -> None:
    for body in (
        {},
        {"definition": winter_sale(), "yaml": "id: x"},
        {"definition": 3},
        {"definition": winter_sale(), "locales": ["ja"]},  # locales without template_sources
        {"definition": winter_sale(), "surprise": True},
    ):
        answer = capi.call("POST", "/api/campaigns", as_="marketer", body=body)
        assert answer.status == 422, (body, answer.body)
        assert answer.json()["detail"][0]["loc"][0] == "body"
    bad_path = capi.call("GET", "/api/campaigns/NOT_AN_ID", as_="viewer")
    assert bad_path.status == 422
    missing = capi.call("GET", "/api/campaigns/none-such", as_="viewer")
    assert missing.status == 404


def test_an_updates_version_is_a_whole_json_number(capi: Api) -> None:
    # Given a stored campaign (version 1)
    assert create(capi).status == 200
    # When it is updated over a version written as text or with a fraction (read as 1), or
    # one with more digits than a DynamoDB number holds (the write raised decimal.Rounded)
    for version in ("1", " 1", "0_1", 1.0, 10**38, 2**53):
        update = {"definition": winter_sale(name="Changed"), "version": version}
        answer = capi.call("PUT", "/api/campaigns/winter-sale", as_="marketer", body=update)
        # Then the request is refused, naming the field, and nothing changes
        assert answer.status == 422, (version, answer.body)
        assert answer.json()["detail"][0]["loc"] == ["body", "version"], answer.body
    assert capi.call("GET", "/api/campaigns/winter-sale", as_="viewer").json()["version"] == 1


def test_scheduling_a_campaign_whose_time_passed_is_refused(capi: Api) -> None:
    past = {"type": "once", "at": iso(NOW - timedelta(hours=1))}
    assert create(capi, schedule=past).status == 200
    answer = capi.call("POST", "/api/campaigns/winter-sale/schedule", as_="marketer")
    assert answer.status == 409 and "passed" in answer.json()["message"]
    detail = capi.call("GET", "/api/campaigns/winter-sale", as_="viewer").json()
    assert detail["status"] == "draft"
    # nor is it created (or updated) as scheduled, nor as done: 409, nothing stored
    created = create(capi, id="late-sale", schedule=past, status="scheduled")
    assert created.status == 409 and "has passed" in created.json()["message"]
    created = create(capi, id="done-sale", status="done")
    assert created.status == 409 and "set by Kizuna" in created.json()["message"]
    for name in ("late-sale", "done-sale"):
        assert capi.call("GET", f"/api/campaigns/{name}", as_="viewer").status == 404
    update = {"definition": {**winter_sale(schedule=past), "status": "scheduled"}, "version": 1}
    answer = capi.call("PUT", "/api/campaigns/winter-sale", as_="marketer", body=update)
    assert answer.status == 409 and "has passed" in answer.json()["message"]


def test_a_campaign_written_scheduled_after_its_time_or_end_is_409_naming_the_field(
    capi: Api,
) -> None:
    # a one-off campaign whose time passed, a recurring one whose end passed: nothing stored
    late = create(
        capi, status="scheduled", schedule={"type": "once", "at": "2026-11-29T10:00:00+09:00"}
    )
    assert late.status == 409
    assert late.json()["message"] == (
        "winter-sale: schedule.at (2026-11-29T10:00:00+09:00) has passed: change the schedule"
    )
    ended = {"type": "recurring", "rate": "rate(7 days)", "end": iso(NOW - timedelta(days=1))}
    answer = create(capi, id="weekly-sale", status="scheduled", schedule=ended)
    assert answer.status == 409
    assert answer.json()["message"].startswith("weekly-sale: schedule.end (2026-11-29T01:00:00")
    for name in ("winter-sale", "weekly-sale"):
        assert capi.call("GET", f"/api/campaigns/{name}", as_="viewer").status == 404
    # nor is a stored paused one updated (or resumed) to scheduled after its end
    assert create(capi, id="weekly-sale", status="paused", schedule=ended).status == 200
    update = {
        "definition": winter_sale(id="weekly-sale", status="scheduled", schedule=ended),
        "version": 1,
    }
    answer = capi.call("PUT", "/api/campaigns/weekly-sale", as_="marketer", body=update)
    assert answer.status == 409 and "schedule.end" in answer.json()["message"]
    answer = capi.call("POST", "/api/campaigns/weekly-sale/resume", as_="marketer")
    assert answer.status == 409 and "schedule.end" in answer.json()["message"]
    detail = capi.call("GET", "/api/campaigns/weekly-sale", as_="viewer").json()
    assert (detail["status"], detail["version"]) == ("paused", 1)


def test_a_one_off_campaign_that_ran_is_409_when_its_time_is_moved(capi: Api) -> None:
    # Given a campaign scheduled for NOW + 2 days that has fired (its occurrence running)
    assert create(capi, status="scheduled").status == 200
    at = NOW + timedelta(days=2)
    assert capi.deps.campaigns.start_occurrence("winter-sale", "20261202T0100Z", at, at)
    capi.deps.now = lambda: at + timedelta(hours=1)
    # When its time is moved ahead (written scheduled, or paused): 409, nothing written
    ahead = {"type": "once", "at": iso(at + timedelta(days=2))}
    for status in ("scheduled", "paused"):
        update = {"definition": winter_sale(status=status, schedule=ahead), "version": 1}
        answer = capi.call("PUT", "/api/campaigns/winter-sale", as_="marketer", body=update)
        assert answer.status == 409
        assert answer.json()["message"] == (
            "winter-sale: schedule.at cannot be changed: the campaign already ran (occurrence "
            "20261202T0100Z); a one-off campaign runs once (to send again, create a new "
            "campaign with a new id)"
        )
    detail = capi.call("GET", "/api/campaigns/winter-sale", as_="viewer").json()
    assert (detail["status"], detail["version"]) == ("scheduled", 1)
    schedule = boto3.client("scheduler", region_name=REGION).get_schedule(
        Name="winter-sale", GroupName=GROUP
    )
    assert schedule["ScheduleExpression"] == "at(2026-12-02T01:00:00)"


def test_an_experiment_change_an_occurrence_ran_through_is_409_saying_so(capi: Api) -> None:
    """An occurrence that started and finished between the update's read and its write
    refused the write (the experiment is written only if no occurrence started since), and
    the answer said someone else had changed the campaign: nobody had, and the marketer,
    reading it again, found the version they had sent."""
    # Given a recurring campaign, scheduled (version 1)
    weekly = {"type": "recurring", "rate": "rate(7 days)"}
    assert create(capi, id="weekly-sale", status="scheduled", schedule=weekly).status == 200
    store = capi.deps.campaigns
    assert store is not None
    at = NOW + timedelta(hours=1)

    def ran_meanwhile() -> None:
        # the schedule fires, its occurrence starts (on version 1) and completes
        assert store.start_occurrence("weekly-sale", "20261130T0200Z", at, at, version=1)
        assert store.complete_occurrence("weekly-sale", "20261130T0200Z", at)

    class Meanwhile:
        """The store, as the occurrence runs just before the definition's write."""

        def __getattr__(self, name: str) -> Any:
            if name == "put_definition":
                ran_meanwhile()
                capi.deps.campaigns = store
            return getattr(store, name)

    capi.deps.campaigns = Meanwhile()  # type: ignore[assignment]
    # When the holdout is changed over version 1 as that occurrence runs through
    changed = {"definition": winter_sale(id="weekly-sale", status="scheduled", schedule=weekly)}
    changed["definition"]["holdout_percent"] = 20
    update = {**changed, "version": 1}
    answer = capi.call("PUT", "/api/campaigns/weekly-sale", as_="marketer", body=update)
    # Then 409, saying what happened and what to do; nothing written
    assert capi.deps.campaigns is store
    assert answer.status == 409
    assert answer.json()["message"] == (
        "weekly-sale: occurrence 20261130T0200Z started and finished while this change was "
        "being written, so nothing was written (variants, winner, holdout_percent and goal "
        "are written only if no occurrence started since the campaign was read); no "
        "occurrence is unfinished now: write the change again (read the campaign first to "
        "see that occurrence's results)"
    )
    detail = capi.call("GET", "/api/campaigns/weekly-sale", as_="viewer").json()
    assert (detail["version"], detail["definition"]["holdout_percent"]) == (1, 10)
    # And the same update, sent again, is written
    again = capi.call("PUT", "/api/campaigns/weekly-sale", as_="marketer", body=update)
    assert again.status == 200 and again.json()["version"] == 2


def test_a_cancelled_campaign_is_not_written_over_in_the_store_itself(capi: Api) -> None:
    # the campaigns table refuses it in the same write (DynamoDB's condition, on moto)
    assert create(capi).status == 200
    store = capi.deps.campaigns
    stored = store.get_definition("winter-sale")
    assert stored is not None
    assert store.set_status("winter-sale", "cancelled", NOW)
    for version in (None, 1):
        with pytest.raises(DefinitionConflict):
            store.put_definition(
                stored.campaign,
                stored.templates,
                "x",
                NOW,
                expected_version=version,
                only_from=EDITABLE,
            )
    other = stored.campaign.model_copy(update={"id": "spring-sale"})
    assert store.put_definition(other, stored.templates, "x", NOW, only_from=EDITABLE) == 1
    again = store.get_definition("winter-sale")
    assert again is not None and (again.status, again.version) == ("cancelled", 1)
    body = {"definition": winter_sale(name="Renamed"), "version": 1}
    answer = capi.call("PUT", "/api/campaigns/winter-sale", as_="marketer", body=body)
    assert answer.status == 409 and "cancelled" in answer.json()["message"]


def test_results_per_variant_sent_suppressed_and_converted(capi: Api) -> None:
    # given a campaign whose occurrence sent to three customers (variants a and b), suppressed
    # one and held one out; s00 ordered after the message
    assert create(capi).status == 200
    occurrence = "20261202T0100Z"
    at = NOW + timedelta(days=2)
    execution = execution_of("winter-sale", occurrence)
    rows = [
        ("s00", "sent", "a", "a"),
        ("s01", "sent", "b", "b"),
        ("s02", "sent", "a", "a"),
        ("s03", "suppressed", "b", "b"),
        ("s04", "holdout", "holdout", None),
    ]
    dynamodb = boto3.resource("dynamodb", region_name=REGION)
    activity = dynamodb.Table("activity")
    for cid, status, arm, variant in rows:
        data = {
            "program": "winter-sale",
            "campaign": "winter-sale",
            "occurrence": occurrence,
            "execution": execution,
            "status": status,
            "arm": arm,
            "variant": variant,
            "channel": "email" if status == "sent" else None,
            "reason": "frequency_cap_day" if status == "suppressed" else None,
            "at": iso(at),
            "sent_at": iso(at) if status == "sent" else None,
        }
        clean = {k: v for k, v in data.items() if v is not None}
        activity.put_item(Item=ledger_item(cid, execution, SEND_STEP, clean))
    buyer = next(c for c in SHOPPERS if c.customer_id == "s00")
    buyer = apply_events(
        buyer, [parsed(order("s00", "s00-o3", 4000, at + timedelta(days=1)))], CFG, at
    ).customer
    dynamodb.Table("customers").put_item(Item=customer_to_item(buyer))
    dynamodb.Table("campaigns").put_item(
        Item={
            "campaign_id": "winter-sale",
            "sk": f"OCC#{occurrence}",
            "status": "done",
            "audience": 5,
            "sent": 3,
            "suppressed": 1,
            "holdout": 1,
        }
    )

    # when its results are read
    detail = capi.call("GET", "/api/campaigns/winter-sale", as_="viewer").json()

    # then per variant: sent, suppressed, converted
    (occ,) = detail["occurrences"]
    assert occ["occurrence"] == occurrence and occ["counts"]["sent"] == 3
    got = {
        v["variant"]: (v["sent"], v["suppressed"], v["holdout"], v["converted"])
        for v in occ["variants"]
    }
    assert got == {"a": (2, 0, 0, 1), "b": (1, 1, 0, 0), "holdout": (0, 0, 1, 0)}
    # and the intent-to-treat lift: everyone assigned (b's suppressed s03 too) vs the holdout
    by = {v["variant"]: v for v in occ["variants"]}
    assert [(by[k]["assigned"], by[k]["assigned_converted"]) for k in ("a", "b")] == [
        (2, 1),
        (2, 0),
    ]
    assert by["a"]["lift"]["treated_rate"] == 0.5 and by["a"]["lift"]["holdout_n"] == 1
    assert by["b"]["lift"]["treated_n"] == 2 and by["holdout"]["lift"] is None


def test_the_openapi_document_describes_the_routes(capi: Api) -> None:
    doc = capi.call("GET", "/api/openapi.json", as_="viewer").json()
    for path in (
        "/api/campaigns",
        "/api/campaigns/{campaign_id}",
        "/api/campaigns/{campaign_id}/preview",
        "/api/segments/{name}/sample",
    ):
        assert path in doc["paths"], sorted(doc["paths"])
    post = doc["paths"]["/api/campaigns"]["post"]
    assert post["tags"] == ["campaigns"] and post["summary"]


def test_a_sequential_tests_looks_and_decision_in_the_api_and_the_console(capi: Api) -> None:
    # given a campaign whose sequential winner test was undecided at look 1 and chose b at 2
    assert create(capi).status == 200
    due = NOW + timedelta(days=1)

    def look(number: int, a: int, b: int, p: float, winner: str | None) -> dict[str, Any]:
        at = iso(due + timedelta(days=number - 1))
        counts = {"a": {"exposed": 400, "converted": a}, "b": {"exposed": 410, "converted": b}}
        return {"number": number, "due": at, "at": at, "counts": counts, "p_value": str(p)}

    first, second = look(1, 20, 29, 0.3412, None), look(2, 40, 71, 0.0123, "b")
    second["winner"] = "b"
    boto3.resource("dynamodb", region_name=REGION).Table("campaigns").put_item(
        Item={
            "campaign_id": "winter-sale",
            "sk": "OCC#20261202T0100Z",
            "status": "done",
            "audience": 810,
            "looks": [first, second],
            "winner": "b",
            "winner_reason": "b beats a",
        }
    )

    # when the campaign is read through the API and the console
    (occ,) = capi.call("GET", "/api/campaigns/winter-sale", as_="viewer").json()["occurrences"]
    cookies = capi.session("viewer")
    page = capi.call("GET", "/console/campaigns/winter-sale", cookies=cookies).body

    # then each look (counts, p-value, choice) and the decision are shown in both
    assert occ["looks"] == [
        "look 1 (due 2026-12-01 01:00Z, taken 2026-12-01 01:00Z): a 20/400, b 29/410; "
        "p 0.3412 -> undecided",
        "look 2 (due 2026-12-02 01:00Z, taken 2026-12-02 01:00Z): a 40/400, b 71/410; "
        "p 0.0123 -> b",
    ]
    assert occ["decision"] == "decision: b after 2 looks" and occ["next_look_at"] is None
    for line in (*occ["looks"], occ["decision"]):
        assert line.replace(">", "&gt;") in page


UNDECIDED = "undecided after 2 looks, no winner, the rest get the first variant a"


def put_winner_occurrences(capi: Api) -> list[str]:
    """Occurrences of winter-sale: an A/B test that chose b, one that found no winner (the
    rest got the first variant a), one of each recorded before winner_decided (a
    best-rate test, and a sequential test whose looks named no winner), and one whose test
    has chosen nothing yet; their names."""
    assert create(capi).status == 200
    table = boto3.resource("dynamodb", region_name=REGION).Table("campaigns")
    counts = {"a": {"exposed": 40, "converted": 2}, "b": {"exposed": 41, "converted": 3}}
    looks = [
        {"number": n, "due": iso(NOW), "at": iso(NOW), "counts": counts, "p_value": "0.5"}
        for n in (1, 2)
    ]
    occurrences: dict[str, dict[str, Any]] = {
        "20261201T0100Z": {"winner": "b", "winner_reason": "b wins", "winner_decided": True},
        "20261202T0100Z": {"winner": "a", "winner_reason": UNDECIDED, "winner_decided": False},
        "20261203T0100Z": {"winner": "b", "winner_reason": "best open rate"},
        "20261204T0100Z": {"winner": "a", "winner_reason": UNDECIDED, "looks": looks},
        "20261205T0100Z": {},
    }
    for occurrence, fields in occurrences.items():
        table.put_item(
            Item={
                "campaign_id": "winter-sale",
                "sk": f"OCC#{occurrence}",
                "status": "done",
                "audience": 10,
                **fields,
            }
        )
    return list(occurrences)


def test_an_ab_test_that_found_no_winner_says_so_in_the_api(capi: Api) -> None:
    # given A/B tests decided, undecided (the rest got the first variant), and not chosen
    put_winner_occurrences(capi)
    # when the campaign is read through the API
    occurrences = capi.call("GET", "/api/campaigns/winter-sale", as_="viewer").json()["occurrences"]
    # then winner_decided says whether the test chose the winner (an occurrence recorded
    # before it reads as its looks say), and is null without a winner
    assert {o["occurrence"]: (o["winner"], o["winner_decided"]) for o in occurrences} == {
        "20261201T0100Z": ("b", True),
        "20261202T0100Z": ("a", False),
        "20261203T0100Z": ("b", True),
        "20261204T0100Z": ("a", False),
        "20261205T0100Z": (None, None),
    }


def test_an_ab_test_that_found_no_winner_is_not_shown_as_a_winner_in_the_console(
    capi: Api,
) -> None:
    # given A/B tests decided, undecided (the rest got the first variant), and not chosen
    names = put_winner_occurrences(capi)
    cookies = capi.session("viewer")
    # when the campaign page is read, in both languages
    for lang, word, winner, no_winner in (
        ("en", "inner", "Winner: b (", "No winner: first variant a sent to the rest ("),
        ("ja", "勝者", "勝者: b（", "勝者なし: 最初のバリアント a を残りに送信（"),
    ):
        page = capi.call(
            "GET", "/console/campaigns/winter-sale", cookies=cookies, query={"lang": lang}
        ).body
        cards = {
            occurrence: card
            for card in page.split('<div class="card">')[1:]
            for occurrence in names
            if occurrence in card
        }
        # then an undecided test's first variant is not called the winner (nor anything
        # where no winner is chosen yet)
        for occurrence in ("20261201T0100Z", "20261203T0100Z"):
            assert winner in cards[occurrence] and no_winner not in cards[occurrence], lang
        for occurrence in ("20261202T0100Z", "20261204T0100Z"):
            card = cards[occurrence]
            assert no_winner in card and winner.replace("b", "a") not in card, (lang, card)
        assert word not in cards["20261205T0100Z"], lang


def test_an_occurrence_whose_execution_ended_unfinished_is_shown_in_the_api_and_the_console(
    capi: Api,
) -> None:
    # given an occurrence left running by an execution that was stopped (ABORTED) before
    # Complete, and one whose execution still runs
    assert create(capi).status == 200
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.create_state_machine(
        name="campaign",
        definition='{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}',
        roleArn="arn:aws:iam::123456789012:role/campaign",
    )["stateMachineArn"]
    stopped = sfn.start_execution(stateMachineArn=machine, name="stopped")["executionArn"]
    running = sfn.start_execution(stateMachineArn=machine, name="running")["executionArn"]
    sfn.stop_execution(executionArn=stopped, cause="by hand")
    ended = sfn.describe_execution(executionArn=stopped)["stopDate"]
    table = boto3.resource("dynamodb", region_name=REGION).Table("campaigns")
    for occurrence, execution in (("20261201T0100Z", stopped), ("20261202T0100Z", running)):
        table.put_item(
            Item={
                "campaign_id": "winter-sale",
                "sk": f"OCC#{occurrence}",
                "occurrence": occurrence,
                "status": "running",
                "execution": execution,
                "audience": 120,
                "sent": 40,
            }
        )
    capi.deps.campaign_executions = Executions(sfn)

    # when the campaign is read through the API and the console, in both languages
    occurrences = capi.call("GET", "/api/campaigns/winter-sale", as_="viewer").json()["occurrences"]
    cookies = capi.session("viewer")
    pages = {
        lang: capi.call(
            "GET", "/console/campaigns/winter-sale", cookies=cookies, query={"lang": lang}
        ).body
        for lang in ("en", "ja")
    }

    # then the stopped one says how and when its execution ended, and what to do; the running
    # one says nothing
    by_name = {o["occurrence"]: o for o in occurrences}
    at = iso(ended)
    assert (
        by_name["20261201T0100Z"]["execution_status"],
        by_name["20261201T0100Z"]["execution_ended_at"],
    ) == ("ABORTED", at)
    assert by_name["20261202T0100Z"]["execution_status"] is None
    shown = f"{at[:10]} {at[11:16]} UTC"
    assert 'id="execution-ended-20261201T0100Z"' in pages["en"]
    assert f"ended ABORTED at {shown}" in pages["en"]
    assert "kizuna campaigns close" in pages["en"]
    assert f"{shown} に ABORTED で終わり" in pages["ja"]
    assert "execution-ended-20261202T0100Z" not in pages["en"] + pages["ja"]
    # and an occurrence's status is a word of the page's language
    assert "配信回 20261202T0100Z（配信中）" in pages["ja"] and "running" not in pages["ja"]


def test_a_body_nested_thousands_deep_is_refused_not_a_crash(capi: Api) -> None:
    # a YAML campaign of 3,000 nested lists (6 KB), and a JSON body 100,000 deep
    deep_yaml = "- " * 3000 + "x"
    answer = capi.call("POST", "/api/campaigns", as_="marketer", body={"yaml": deep_yaml})
    assert answer.status == 422 and answer.json()["detail"][0]["field"] == "yaml", answer.body
    deep_json = '{"definition": ' + "[" * 100_000 + "]" * 100_000 + "}"
    answer = capi.call("POST", "/api/campaigns", as_="viewer", body=deep_json)
    assert answer.status == 400 and "nested too deeply" in answer.body, answer.body
    assert capi.call("GET", "/api/campaigns", as_="marketer").json()["campaigns"] == []


def test_a_key_given_twice_or_a_nan_in_a_body_is_400_and_nothing_is_written(capi: Api) -> None:
    # Given bodies where a key is given twice (Python's json keeps the last: another reader,
    # a proxy's log, a reviewer, reads the first) or NaN stands for a number
    definition = json.dumps(winter_sale())
    sources = json.dumps(SOURCES)
    twice_inside = definition[:-1] + ', "name": "Another name"}'
    for body in (
        f'{{"definition": {twice_inside}, "template_sources": {sources}}}',
        f'{{"definition": {definition}, "template_sources": {sources}, "template_sources": {{}}}}',
        f'{{"definition": {definition.replace(": 10}", ": NaN}")}, "template_sources": {sources}}}',
    ):
        # When a marketer creates a campaign with it
        answer = capi.call("POST", "/api/campaigns", as_="marketer", body=body)
        # Then it is refused, saying why, and nothing is stored
        assert answer.status == 400, answer.body
        assert "twice" in answer.json()["message"] or "not valid JSON" in answer.body
    assert capi.call("GET", "/api/campaigns", as_="viewer").json()["campaigns"] == []
    # and the same on an update and a preview (the routes whose body Powertools validates)
    assert create(capi).status == 200
    update = f'{{"definition": {twice_inside}, "version": 1}}'
    answer = capi.call("PUT", "/api/campaigns/winter-sale", as_="marketer", body=update)
    assert answer.status == 400 and "'name' given twice" in answer.body, answer.body
    stored = capi.call("GET", "/api/campaigns/winter-sale", as_="viewer").json()
    assert stored["version"] == 1 and stored["definition"]["name"] == "Winter sale"
    preview = '{"customer_id": "s02", "customer_id": null}'
    answer = capi.call("POST", "/api/campaigns/winter-sale/preview", as_="viewer", body=preview)
    assert answer.status == 400 and "'customer_id' given twice" in answer.body, answer.body
