"""Campaign administration on in-memory fakes (what the CLI, the API and the console share):
template files given as data, library templates, the status transitions and the schedule that
follows them, the optimistic version, the dry run and the preview, results per variant, and
the console form's definition."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kizuna.api.console.pages_campaigns import definition_from_form
from kizuna.campaigns.loader import CampaignError, parse_campaign
from kizuna.campaigns.model import Campaign, CampaignStatus
from kizuna.delivery.deployed import (
    channels_text,
    deployed_channels,
    parse_channels,
    split_deployed,
)
from kizuna.domain.customer import Customer, OrderFact
from kizuna.domain.timestamps import iso
from kizuna.ports import DefinitionConflict, ExecutionState, ExecutionsUnavailable
from kizuna.programs.bundle import REPO_ROOT
from kizuna.runtime.config import KizunaConfig
from kizuna.segments import load_segments
from kizuna.services.campaign_admin import (
    CampaignAdmin,
    CampaignRules,
    StatusConflict,
    library_templates,
    results_of,
)
from kizuna_tools.fakes import MemoryCampaigns, MemoryStore
from tests.factories import PausedMeanwhile, campaign_definition, customer, opted_in

NOW = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
SOURCES = {"sale": "month-end-sale/sale", "sale_urgent": "month-end-sale/sale_urgent"}


class Schedules:
    def __init__(self) -> None:
        self.put_calls: list[tuple[str, str]] = []

    def put(self, campaign: Campaign, status: CampaignStatus, now: datetime) -> None:
        self.put_calls.append((campaign.id, str(status)))

    def get(self, campaign_id: str) -> dict[str, Any] | None:
        return None


def rules() -> CampaignRules:
    return CampaignRules(
        KizunaConfig(),
        REPO_ROOT / "templates",
        load_segments(REPO_ROOT / "segments"),
        frozenset({"cart-abandonment"}),
    )


def sale(**fields: Any) -> dict[str, Any]:
    return campaign_definition(
        **{
            "id": "winter-sale",
            "status": "draft",
            "template": "sale",
            "channels": ["email"],
            "schedule": {"type": "once", "at": (NOW + timedelta(days=1)).isoformat()},
            "coupon": {"discount": "10%", "valid_days": 3},
            **fields,
        }
    )


def admin(store: MemoryStore | None = None) -> tuple[CampaignAdmin, MemoryCampaigns, Schedules]:
    campaigns, schedules = MemoryCampaigns(), Schedules()
    return (
        CampaignAdmin(rules(), campaigns, store or MemoryStore(), schedules),
        campaigns,
        schedules,
    )


def saved(a: CampaignAdmin, **fields: Any) -> Campaign:
    used = parse_campaign(sale(**fields)).templates()
    files = a.rules.library_files({k: v for k, v in SOURCES.items() if k in used})
    campaign = a.rules.validate(sale(**fields), files, NOW)
    a.save(campaign, files, "mari", NOW, expected_version=0)
    return campaign


def test_library_templates_are_folder_and_name() -> None:
    found = library_templates(REPO_ROOT / "templates")
    assert "month-end-sale/sale" in found and "cart-abandonment/cart" in found
    assert not any(name.startswith("_base") for name in found)


def test_template_files_given_as_data_are_checked_by_name_and_locale() -> None:
    r = rules()
    files = r.library_files({"sale": "month-end-sale/sale"}, ["en"])
    assert sorted(files) == [f"sale/en/email.{p}.j2" for p in ("html", "subject", "txt")] + [
        "sale/en/line.txt.j2"
    ]
    with pytest.raises(CampaignError) as err:
        r.validate(sale(), files, NOW)  # no ja: the default locale
    assert [(i.field, i.message) for i in err.value.issues] == [
        ("templates", "template 'sale' needs the default locale 'ja' (has en)")
    ]
    with pytest.raises(CampaignError) as err:
        r.validate(
            sale(), {**r.library_files({"sale": SOURCES["sale"]}), "x/ja/email.txt.j2": ""}, NOW
        )
    assert [i.field for i in err.value.issues] == ["templates.x/ja/email.txt.j2"]
    with pytest.raises(CampaignError) as err:
        r.library_files({"sale": "../etc"})
    assert [i.field for i in err.value.issues] == ["template_sources.sale"]
    broken = {
        **r.library_files({"sale": SOURCES["sale"]}),
        "sale/ja/email.subject.j2": "{{ nope }}",
    }
    with pytest.raises(CampaignError) as err:
        r.validate(sale(), broken, NOW)
    assert "undefined name 'nope'" in str(err.value)


def test_a_campaign_on_no_channel_the_stack_sends_on_is_refused() -> None:
    """A LINE-only campaign on a stack without a LINE token would have every message
    suppressed (no_channel): a write is refused; with a deployed channel among its channels,
    or when the stack's channels are not known (``kizuna campaigns validate``), it is taken."""
    r = replace(rules(), deployed_channels=deployed_channels(push=False, line=False, webhook=False))
    files = r.library_files({"sale": SOURCES["sale"]})
    with pytest.raises(CampaignError) as err:
        r.validate(sale(channels=["line"]), files, NOW)
    assert [(i.field, i.message) for i in err.value.issues] == [
        (
            "channels",
            "none of its channels (line) is deployed in this stack (it sends on card, dm, "
            "email, sms): every message would be suppressed, no_channel",
        )
    ]
    assert r.validate(sale(channels=["line", "email"]), files, NOW).id == "winter-sale"
    assert rules().validate(sale(channels=["line"]), files, NOW).id == "winter-sale"
    with_line = replace(
        r, deployed_channels=deployed_channels(push=False, line=True, webhook=False)
    )
    assert with_line.validate(sale(channels=["line"]), files, NOW).id == "winter-sale"


def test_the_deployed_channels_are_read_strictly() -> None:
    assert parse_channels("") is None
    assert parse_channels("card,dm,email,line,sms") == {"card", "dm", "email", "line", "sms"}
    assert parse_channels(channels_text({"sms", "email"})) == {"email", "sms"}
    for bad in ("email,", "email, sms", "email,fax", "email,email", "EMAIL", ","):
        with pytest.raises(ValueError, match="channel names"):
            parse_channels(bad)


def test_the_channels_offered_are_the_deployed_ones_in_their_order() -> None:
    """What the console's campaign form offers: the stack's channels among its own, in the
    form's order, and the others apart; every one when the stack's list is not known."""
    deployed = deployed_channels(push=False, line=True, webhook=False)
    assert split_deployed(("email", "sms", "push", "line"), deployed) == (
        ("email", "sms", "line"),
        ("push",),
    )
    assert split_deployed(("push", "email"), None) == (("push", "email"), ())


def test_transitions_follow_the_status_and_the_schedule_follows_them() -> None:
    a, campaigns, schedules = admin()
    saved(a)
    assert schedules.put_calls == [("winter-sale", "draft")]
    with pytest.raises(StatusConflict):
        a.transition("winter-sale", "pause", NOW)  # a draft cannot be paused
    for action, status in (("schedule", "scheduled"), ("pause", "paused"), ("resume", "scheduled")):
        assert a.transition("winter-sale", action, NOW)[1] == status
    assert a.transition("winter-sale", "cancel", NOW) == ("scheduled", "cancelled")
    assert [s for _, s in schedules.put_calls] == [
        "draft",
        "scheduled",
        "paused",
        "scheduled",
        "cancelled",
    ]
    with pytest.raises(StatusConflict):
        a.transition("winter-sale", "resume", NOW)
    assert campaigns.definitions["winter-sale"].status == "cancelled"


def test_a_campaign_whose_time_passed_is_not_scheduled() -> None:
    a, campaigns, _ = admin()
    saved(a)
    with pytest.raises(StatusConflict, match="has passed"):
        a.transition("winter-sale", "schedule", NOW + timedelta(days=2))
    assert campaigns.definitions["winter-sale"].status == "draft"


def test_writes_only_over_the_version_read() -> None:
    a, campaigns, _ = admin()
    campaign = saved(a)
    with pytest.raises(DefinitionConflict):
        a.save(campaign, {}, "mari", NOW, expected_version=0)  # exists
    files = campaigns.definitions["winter-sale"].templates
    assert a.save(campaign, files, "ada", NOW, expected_version=1) == 2
    with pytest.raises(DefinitionConflict):
        a.save(campaign, files, "mari", NOW, expected_version=1)  # stale
    a.transition("winter-sale", "cancel", NOW)
    with pytest.raises(StatusConflict):
        a.save(campaign, files, "mari", NOW, expected_version=2)


def test_dry_run_and_preview_render_without_sending() -> None:
    store = MemoryStore()
    for cid, locale in (("c1", "ja"), ("c2", "en"), ("c3", "ja")):
        store.customers[cid] = customer(cid, locale=locale, first_name="Aiko")
    store.customers["c4"] = customer("c4", consent={})  # nothing consented
    a, campaigns, _ = admin(store)
    saved(
        a,
        variants=[
            {"name": "a", "weight": 50},
            {"name": "b", "weight": 50, "template": "sale_urgent"},
        ],
    )
    stored = campaigns.definitions["winter-sale"]
    result = a.dry_run(stored, NOW)
    assert result.audience == 4
    assert result.by_status["send"] == 3 and result.by_channel["email"] == 3
    assert result.by_reason["suppressed: no_channel"] == 1
    assert set(result.samples) == {("ja", "email"), ("en", "email")}
    assert store.messages == {}  # nothing claimed or recorded
    previews = a.preview(stored, NOW, customer=store.customers["c1"])
    assert [(p.variant, p.locale, p.channel) for p in previews] == [
        ("a", "ja", "email"),
        ("a", "en", "email"),
        ("b", "ja", "email"),
        ("b", "en", "email"),
    ]
    assert all(p.error is None and "Aiko" in p.parts["subject"] for p in previews)


@pytest.mark.parametrize(
    ("schedule", "ja", "en"),
    [
        # on 5 December at 10:00 in each zone, valid 3 days: to the 8th (not 3 December)
        ({"type": "local_time", "date": "2026-12-05", "time": "10:00"}, "2026年12月8日",
         "December 8, 2026"),
        ({"type": "once", "at": "2026-12-10T10:00:00+09:00"}, "2026年12月13日",
         "December 13, 2026"),
    ],
)  # fmt: skip
def test_the_preview_dates_the_coupon_from_the_send_not_from_the_preview(
    schedule: dict[str, Any], ja: str, en: str
) -> None:
    """A month-end sale previewed weeks ahead read "until" three days after the preview."""
    # given a campaign to be sent after the preview (NOW is 30 November)
    a, campaigns, _ = admin()
    saved(a, schedule=schedule)
    stored = campaigns.definitions["winter-sale"]
    # when it is previewed
    previews = {p.locale: p for p in a.preview(stored, NOW)}
    # then the coupon expires valid_days after the send, in the customer's zone
    assert ja in previews["ja"].parts["text"], previews["ja"].parts["text"]
    assert en in previews["en"].parts["text"], previews["en"].parts["text"]


def test_results_per_variant_count_conversions_after_the_message() -> None:
    campaign = parse_campaign(sale(goal={"event": "order.placed", "within_days": 7}))
    sent_at = NOW + timedelta(days=1)
    buyer = customer(
        "c1",
        orders={"o9": OrderFact(placed=True, at=sent_at + timedelta(days=2), total=3000)},
        consent=opted_in("email"),
    )
    late = customer(
        "c2", orders={"o8": OrderFact(placed=True, at=sent_at + timedelta(days=9), total=100)}
    )
    rows = [
        {
            "pk": "c1",
            "campaign": "winter-sale",
            "occurrence": "o1",
            "status": "sent",
            "arm": "a",
            "variant": "a",
            "at": sent_at.isoformat(),
        },
        {
            "pk": "c2",
            "campaign": "winter-sale",
            "occurrence": "o1",
            "status": "sent",
            "arm": "b",
            "variant": "b",
            "at": sent_at.isoformat(),
        },
        {
            "pk": "c3",
            "campaign": "winter-sale",
            "occurrence": "o1",
            "status": "suppressed",
            "arm": "b",
            "variant": "b",
            "reason": "frequency_cap_day",
            "at": sent_at.isoformat(),
        },
        {
            "pk": "c4",
            "campaign": "winter-sale",
            "occurrence": "o1",
            "status": "holdout",
            "arm": "holdout",
            "at": sent_at.isoformat(),
        },
    ]
    found: dict[str, Customer] = {"c1": buyer, "c2": late}
    (result,) = results_of(
        campaign,
        [{"occurrence": "o1", "status": "done", "sent": 2}],
        rows,
        lambda ids: {i: found[i] for i in ids if i in found},
    )
    got = {v.variant: (v.sent, v.suppressed, v.holdout, v.converted) for v in result.variants}
    assert got == {"a": (1, 0, 0, 1), "b": (1, 1, 0, 0), "holdout": (0, 0, 1, 0)}
    assert [v.variant for v in result.variants][-1] == "holdout"
    assert result.counts["sent"] == 2 and result.counts["failed"] == 0


def test_results_lift_is_intent_to_treat_like_the_report() -> None:
    """A message with no effect: in variant a and in the holdout alike, half the customers
    are reachable and 2 of those 5 order anyway, the unreachable never. The sent alone
    against the whole holdout read 40% against 20%; everyone assigned reads 20% against 20%,
    as the campaign report says (tests/reports/test_campaign_report.py)."""
    campaign = parse_campaign(sale(goal={"event": "order.placed", "within_days": 7}))
    at = NOW + timedelta(days=1)
    bought = {"o1": OrderFact(placed=True, at=at + timedelta(days=1), total=1000)}

    def entry(cid: str, status: str, arm: str) -> dict[str, Any]:
        row = {"pk": cid, "campaign": "winter-sale", "occurrence": "o1", "status": status}
        row |= {"arm": arm, "at": at.isoformat()}
        return row | ({"variant": arm} if arm != "holdout" else {})

    rows = [entry(f"s{i}", "sent", "a") for i in range(5)]
    rows += [entry(f"u{i}", "suppressed", "a") for i in range(3)]
    rows += [entry(f"d{i}", "deferred", "a") for i in range(2)]
    rows += [entry(f"h{i}", "holdout", "holdout") for i in range(10)]
    found = {cid: customer(cid, orders=bought) for cid in ("s0", "s1", "h0", "h1")}
    (result,) = results_of(
        campaign,
        [{"occurrence": "o1", "status": "done"}],
        rows,
        lambda ids: {i: found[i] for i in ids if i in found},
    )
    a, held = result.variants
    assert (a.sent, a.converted, a.assigned, a.assigned_converted) == (5, 2, 10, 2)
    assert (held.holdout, held.converted, held.assigned, held.lift) == (10, 2, 10, None)
    assert a.lift is not None and (a.lift.treated_rate, a.lift.holdout_rate) == (0.2, 0.2)
    assert a.lift.absolute_lift == 0 and not a.lift.significant
    # without a holdout there is nothing to compare with
    (alone,) = results_of(
        campaign,
        [{"occurrence": "o1", "status": "done"}],
        [r for r in rows if r["arm"] != "holdout"],
        lambda ids: {i: found[i] for i in ids if i in found},
    )
    assert [v.lift for v in alone.variants] == [None]


def test_results_name_the_winners_rows_apart_and_compare_only_them_with_the_holdout() -> None:
    """With winner selection the console showed one "b" row of b's test pool and everyone
    later sent the winner b (21/90; the report and the winner reason said 5/10); and it
    compared the test pool, sent days before, with the holdout decided after the wait:
    a payday between the two read as lift. The report shows the same figures."""
    from kizuna_tools.reports.build import Order
    from kizuna_tools.reports.campaigns import campaign_reports

    campaign = parse_campaign(sale(goal={"event": "order.placed", "within_days": 7}))
    test_at, main_at = NOW, NOW + timedelta(hours=72)

    def entry(cid: str, status: str, arm: str, variant: str | None, at: datetime) -> Any:
        row = {"pk": cid, "kind": "MSG", "campaign": "winter-sale", "occurrence": "o1"}
        row |= {"program": "winter-sale", "status": status, "arm": arm, "at": iso(at)}
        return row | ({"variant": variant, "channel": "email"} if variant else {})

    rows = [entry(f"a{i}", "sent", "a", "a", test_at) for i in range(10)]
    rows += [entry(f"b{i}", "sent", "b", "b", test_at) for i in range(10)]
    rows += [entry(f"w{i}", "sent", "winner", "b", main_at) for i in range(80)]
    rows += [entry(f"h{i}", "holdout", "holdout", None, main_at) for i in range(20)]
    payday = test_at + timedelta(days=1)  # the test pool's buyers: before the main pass
    buyers = {f"a{i}": payday for i in range(5)} | {f"b{i}": payday for i in range(5)}
    buyers |= {f"w{i}": main_at + timedelta(days=1) for i in range(16)}
    buyers |= {f"h{i}": main_at + timedelta(days=1) for i in range(4)}
    found = {
        c: customer(c, orders={"o": OrderFact(placed=True, at=at, total=1000)})
        for c, at in buyers.items()
    }
    occ = {"occurrence": "o1", "status": "done", "winner": "b"}
    (console,) = results_of(
        campaign, [occ], rows, lambda ids: {i: found[i] for i in ids if i in found}
    )
    got = {v.variant: (v.sent, v.converted, v.lift is not None) for v in console.variants}
    assert got == {
        "a": (10, 5, False),
        "b": (10, 5, False),
        "b (winner)": (80, 16, True),
        "holdout": (0, 4, False),
    }
    winner = next(v for v in console.variants if v.variant == "b (winner)")
    assert winner.lift is not None and winner.lift.absolute_lift == 0  # 20% against 20%
    orders = [Order(c, at, 1000.0) for c, at in buyers.items()]
    (report,) = campaign_reports(
        rows, orders, [{**occ, "campaign_id": "winter-sale"}], {"winter-sale": 7}
    )
    shown = {v.arm: (v.recipients, v.conversions, v.lift is not None) for v in report.variants}
    assert shown == {k: (v[0] or 20, v[1], v[2]) for k, v in got.items()}
    # without winner selection every variant is compared with the holdout
    plain = [r for r in rows if r["arm"] != "winner"]
    (console,) = results_of(
        campaign,
        [{"occurrence": "o1", "status": "done"}],
        plain,
        lambda ids: {i: found[i] for i in ids if i in found},
    )
    assert [v.variant for v in console.variants if v.lift is not None] == ["a", "b"]


def test_the_console_form_makes_a_definition() -> None:
    fields = {
        "id": "winter-sale",
        "name": "Winter",
        "segment": "",
        "channel_1": "email",
        "channel_2": "email",
        "channel_3": "line",
        "template_a": "month-end-sale/sale",
        "template_b": "month-end-sale/sale_urgent",
        "locale_ja": "on",
        "schedule_type": "once",
        "date": "2026-12-02",
        "time": "10:00",
        "time_zone": "Asia/Tokyo",
        "holdout_percent": "10",
    }
    definition, sources, locales, issues = definition_from_form(fields, "Asia/Tokyo")
    assert issues == []
    assert definition["audience"] == {"everyone": True}
    assert definition["channels"] == ["email", "line"]
    assert definition["schedule"] == {"type": "once", "at": "2026-12-02T10:00:00+09:00"}
    assert [(v["name"], v["weight"], v["template"]) for v in definition["variants"]] == [
        ("a", 50, "sale"),
        ("b", 50, "sale_urgent"),
    ]
    assert sources == SOURCES and locales == ["ja"]
    parse_campaign(definition)  # a valid campaign
    _, _, _, issues = definition_from_form({**fields, "date": "2 Dec", "locale_ja": ""}, "UTC")
    assert sorted(i.field or "" for i in issues) == ["locales", "schedule.date"]


def test_a_campaign_may_carry_a_line_json_checked_against_lines_rules() -> None:
    r = rules()
    text = {k: v for k, v in r.library_files({"sale": SOURCES["sale"]}).items() if "line" not in k}
    bubble = {"type": "bubble", "body": {"type": "box", "layout": "vertical", "contents": [
        {"type": "text", "text": "{{ customer.display_name }}"}]}}  # fmt: skip
    card = {"type": "flex", "altText": "Sale", "contents": bubble}
    good = {**text, **{f"sale/{loc}/line.json": json.dumps(card) for loc in ("ja", "en")}}
    line_sale = {**sale(), "channels": ["line"]}
    r.validate(line_sale, good, NOW)
    too_many = {**card, "contents": {"type": "carousel", "contents": [bubble] * 13}}
    bad = {**good, "sale/ja/line.json": json.dumps(too_many)}
    with pytest.raises(CampaignError) as err:
        r.validate(line_sale, bad, NOW)
    assert "13 bubbles, LINE takes 1 to 12" in str(err.value)


class Executions:
    """Step Functions' answer per execution ARN (an exception: it does not answer)."""

    def __init__(self, answers: dict[str, ExecutionState | Exception]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def state(self, execution_arn: str) -> ExecutionState | None:
        self.asked.append(execution_arn)
        answer = self.answers.get(execution_arn)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_results_show_an_unfinished_occurrence_whose_execution_ended() -> None:
    # given occurrences of one campaign: one whose execution failed (left running: no later
    # execution runs it), one stopped by the breaker whose execution timed out, one still
    # running, one done, one closed by hand, one whose execution's history is gone, one
    # from before executions were noted, and one whose execution Step Functions did not say
    a, campaigns, _ = admin()
    saved(a)
    ended = NOW + timedelta(hours=2)

    def occurrence(name: str, status: str, execution: str | None = None, **more: Any) -> None:
        assert campaigns.start_occurrence("winter-sale", name, NOW, NOW, execution, 1)
        campaigns.occurrences[("winter-sale", name)].update(status=status, **more)

    occurrence("20261201T0100Z", "running", "arn:failed")
    occurrence("20261202T0100Z", "stopped", "arn:timed-out", stop_reason="failure rate")
    occurrence("20261203T0100Z", "running", "arn:running")
    occurrence("20261204T0100Z", "done", "arn:failed-2", completed_at=iso(ended))
    occurrence("20261205T0100Z", "stopped", "arn:aborted", completed_at=iso(ended))
    occurrence("20261206T0100Z", "running", "arn:gone")
    occurrence("20261207T0100Z", "running")
    occurrence("20261208T0100Z", "running", "arn:throttled")
    executions = Executions(
        {
            "arn:failed": ExecutionState("FAILED", ended),
            "arn:timed-out": ExecutionState("TIMED_OUT", ended),
            "arn:running": ExecutionState("RUNNING"),
            "arn:failed-2": ExecutionState("FAILED", ended),
            "arn:aborted": ExecutionState("ABORTED", ended),
            "arn:throttled": ExecutionsUnavailable("ThrottlingException"),
        }
    )
    a.executions = executions
    stored = a.get("winter-sale")

    # when its results are read
    results = {r.occurrence: r for r in a.results(stored)}

    # then the two whose executions ended unfinished say how and when; the others nothing
    shown = {
        name: (r.execution_status, r.execution_ended_at)
        for name, r in results.items()
        if r.execution_status
    }
    assert shown == {
        "20261201T0100Z": ("FAILED", iso(ended)),
        "20261202T0100Z": ("TIMED_OUT", iso(ended)),
    }
    assert results["20261202T0100Z"].stop_reason == "failure rate"
    # only unfinished occurrences with an execution noted are asked about
    assert sorted(executions.asked) == [
        "arn:failed",
        "arn:gone",
        "arn:running",
        "arn:throttled",
        "arn:timed-out",
    ]


def test_name_and_description_rules_apply_to_writes_not_to_stored_definitions() -> None:
    # a definition stored before the rules (a long description, a control character) loads
    stored = parse_campaign(sale(description="x" * 3000, name="Sale\x07"))
    assert stored.description == "x" * 3000
    # a write is refused, by field; CRLF and tabs in a description are fine
    a, _, _ = admin()
    for fields, field in (
        ({"description": "x" * 2001}, "description"),
        ({"description": "ok\x00"}, "description"),
        ({"name": "Sale\u202e"}, "name"),
        ({"name": "   "}, "name"),
    ):
        with pytest.raises(CampaignError) as refused:
            saved(a, **fields)
        assert field in {i.field for i in refused.value.issues}, refused.value
    assert saved(a, description="line one\r\nline\ttwo").description.endswith("two")


def test_an_ended_campaign_is_not_written_again_and_done_is_kizunas() -> None:
    # Given a campaign a marketer cancelled
    a, campaigns, schedules = admin()
    campaign = saved(a, status="scheduled")
    files = campaigns.definitions["winter-sale"].templates
    a.transition("winter-sale", "cancel", NOW)
    schedules.put_calls.clear()

    # When its file (still saying scheduled) is applied again, unchanged: it stays cancelled
    assert a.save(campaign, files, "ci", NOW) == 1
    assert campaigns.definitions["winter-sale"].status == "cancelled"
    assert schedules.put_calls == []

    # and a changed definition is refused, whichever path writes it
    later = campaign.model_copy(update={"name": "Winter sale (2)"})
    for version in (None, 1):
        with pytest.raises(StatusConflict, match="is cancelled: it cannot be changed"):
            a.save(later, files, "ci", NOW, expected_version=version)
    assert campaigns.definitions["winter-sale"].campaign.name == campaign.name
    assert schedules.put_calls == []

    # and nobody writes "done": Kizuna sets it when a one-off campaign has sent
    done = parse_campaign(sale(id="other-sale", status="done"))
    with pytest.raises(StatusConflict, match="status done is set by Kizuna"):
        a.save(done, files, "ci", NOW, expected_version=0)
    assert "other-sale" not in campaigns.definitions


def test_a_one_off_campaign_whose_time_passed_is_not_written_or_resumed_as_scheduled() -> None:
    a, campaigns, schedules = admin()
    campaign = saved(a, status="paused")
    files = campaigns.definitions["winter-sale"].templates
    later = NOW + timedelta(days=2)  # past its time (NOW + 1 day)

    # a write that would schedule it (an update) is refused; apply leaves it paused; a draft
    # is written
    scheduled = campaign.model_copy(update={"status": CampaignStatus.SCHEDULED})
    with pytest.raises(StatusConflict, match="has passed"):
        a.save(scheduled, files, "ci", later, expected_version=1)
    assert a.save(scheduled, files, "ci", later) == 1
    with pytest.raises(StatusConflict, match="has passed"):
        a.transition("winter-sale", "resume", later)
    assert campaigns.definitions["winter-sale"].status == "paused"
    assert [s for _, s in schedules.put_calls] == ["paused"]
    draft = campaign.model_copy(update={"status": CampaignStatus.DRAFT})
    assert a.save(draft, files, "ci", later, expected_version=1) == 2


def test_the_refusal_names_the_schedule_field_whose_time_passed() -> None:
    a, _, _ = admin()
    later = NOW + timedelta(days=2)
    once = parse_campaign(sale(status="scheduled"))
    local = parse_campaign(
        sale(
            status="scheduled",
            schedule={"type": "local_time", "date": "2026-12-01", "time": "10:00"},
        )
    )
    with pytest.raises(StatusConflict) as refused:
        a.save(once, {}, "ci", later, expected_version=0)
    assert str(refused.value) == (
        "winter-sale: schedule.at (2026-12-01T01:00:00+00:00) has passed: change the schedule"
    )
    with pytest.raises(StatusConflict) as refused:
        a.save(local, {}, "ci", later, expected_version=0)
    assert str(refused.value) == (
        "winter-sale: schedule.date and time (2026-12-01 10:00, first at "
        "2026-11-30T20:00:00+00:00) has passed: change the schedule"
    )


def test_a_recurring_campaign_whose_end_passed_is_not_written_scheduled_or_resumed() -> None:
    # Given a paused weekly campaign that ends in a week
    weekly = {
        "type": "recurring",
        "cron": "cron(0 10 ? * FRI *)",
        "time_zone": "Asia/Tokyo",
        "end": (NOW + timedelta(days=7)).isoformat(),
    }
    a, campaigns, schedules = admin()
    campaign = saved(a, status="paused", schedule=weekly)
    files = campaigns.definitions["winter-sale"].templates
    later = NOW + timedelta(days=8)  # past its end

    # When it is written (an update, a new campaign) or resumed as scheduled: refused
    # (apply leaves it paused)
    scheduled = campaign.model_copy(update={"status": CampaignStatus.SCHEDULED})
    end = "schedule.end (2026-12-07T01:00:00+00:00) has passed: change the schedule"
    with pytest.raises(StatusConflict, match=re.escape(f"winter-sale: {end}")):
        a.save(scheduled, files, "ci", later, expected_version=1)
    assert a.save(scheduled, files, "ci", later) == 1
    other = scheduled.model_copy(update={"id": "autumn-sale"})
    with pytest.raises(StatusConflict, match=re.escape(end)):
        a.save(other, files, "ci", later, expected_version=0)
    with pytest.raises(StatusConflict, match=re.escape(end)):
        a.transition("winter-sale", "resume", later)
    # Then nothing was written and no schedule put; before its end, and as a draft, it is
    assert campaigns.definitions["winter-sale"].status == "paused"
    assert "autumn-sale" not in campaigns.definitions
    assert [s for _, s in schedules.put_calls] == ["paused"]
    assert a.transition("winter-sale", "resume", NOW)[1] == "scheduled"
    draft = campaign.model_copy(update={"status": CampaignStatus.DRAFT})
    assert a.save(draft, files, "ci", later) == 2


def test_a_scheduled_campaign_re_applied_unchanged_after_its_time_is_left_as_it_is() -> None:
    # Given a one-off campaign scheduled in time, and a weekly one whose end is near
    a, campaigns, schedules = admin()
    campaign = saved(a, status="scheduled")
    files = campaigns.definitions["winter-sale"].templates
    weekly = {
        "type": "recurring",
        "rate": "rate(7 days)",
        "end": (NOW + timedelta(days=1)).isoformat(),
    }
    recurring = saved(a, id="weekly-sale", status="scheduled", schedule=weekly)
    schedules.put_calls.clear()
    later = NOW + timedelta(days=2)  # both have passed: running, or done

    # When apply re-applies their files unchanged: each is left as it is, nothing put again
    assert a.left_as_is(campaign, files, later, campaigns.definitions["winter-sale"]) == (
        "scheduled; schedule.at has passed"
    )
    assert a.save(campaign, files, "ci", later) == 1
    assert a.save(recurring, files, "ci", later) == 1
    assert schedules.put_calls == []
    assert [campaigns.definitions[c].version for c in ("winter-sale", "weekly-sale")] == [1, 1]

    # but a changed definition, or an update naming its version, is still refused; a paused
    # one re-applied is left paused (apply does not resume it)
    renamed = campaign.model_copy(update={"name": "Winter sale (2)"})
    with pytest.raises(StatusConflict, match=r"schedule\.at \(.*\) has passed"):
        a.save(renamed, files, "ci", later)
    with pytest.raises(StatusConflict, match=r"schedule\.at \(.*\) has passed"):
        a.save(campaign, files, "ci", later, expected_version=1)
    a.transition("winter-sale", "pause", NOW)
    assert a.save(campaign, files, "ci", later) == 1
    assert campaigns.definitions["winter-sale"].status == "paused"


def test_a_campaign_cancelled_between_the_read_and_the_write_is_not_revived() -> None:
    a, campaigns, _ = admin()
    campaign = saved(a, status="scheduled")
    files = campaigns.definitions["winter-sale"].templates
    changed = campaign.model_copy(update={"name": "Winter sale (2)"})

    class CancelledMeanwhile:
        """The store as another request cancels the campaign right after save reads it."""

        def __getattr__(self, name: str) -> Any:
            return getattr(campaigns, name)

        def put_definition(self, *args: Any, **kwargs: Any) -> int:
            campaigns.set_status("winter-sale", "cancelled", NOW)
            return campaigns.put_definition(*args, **kwargs)

    a.store = CancelledMeanwhile()
    with pytest.raises(StatusConflict, match="is cancelled"):
        a.save(changed, files, "ci", NOW)
    assert campaigns.definitions["winter-sale"].status == "cancelled"


def test_a_one_off_campaign_that_ran_keeps_its_schedule() -> None:
    # Given a one-off campaign scheduled for NOW + 1 day, and one in local time
    a, campaigns, schedules = admin()
    campaign = saved(a, status="scheduled")
    local = saved(
        a,
        id="local-sale",
        status="scheduled",
        schedule={"type": "local_time", "date": "2026-12-02", "time": "10:00"},
    )
    files = campaigns.definitions["winter-sale"].templates
    # Before it ran, its time may be moved
    ahead = {"type": "once", "at": (NOW + timedelta(days=2)).isoformat()}
    moved = campaign.model_copy(update={"schedule": parse_campaign(sale(schedule=ahead)).schedule})
    assert a.save(moved, files, "mari", NOW, expected_version=1) == 2
    assert a.save(campaign, files, "mari", NOW, expected_version=2) == 3
    # When it has fired (an occurrence, still running: the campaign is still scheduled)
    campaigns.start_occurrence("winter-sale", "20261201T0100Z", NOW, NOW)
    campaigns.start_occurrence("local-sale", "20261201T2000Z", NOW, NOW)
    schedules.put_calls.clear()
    later = NOW + timedelta(days=1, hours=1)

    # Then moving its time ahead is refused on every write (apply, an update, as paused)
    refusal = (
        "winter-sale: schedule.at cannot be changed: the campaign already ran (occurrence "
        "20261201T0100Z); a one-off campaign runs once (to send again, create a new campaign "
        "with a new id)"
    )
    paused = moved.model_copy(update={"status": CampaignStatus.PAUSED})
    for definition, version in ((moved, None), (moved, 3), (paused, None), (paused, 3)):
        with pytest.raises(StatusConflict) as refused:
            a.save(definition, files, "ci", later, expected_version=version)
        assert str(refused.value) == refusal
    assert a.write_problem(moved, files, later, campaigns.definitions["winter-sale"]) == refusal
    next_day = local.model_copy(
        update={
            "schedule": parse_campaign(
                sale(schedule={"type": "local_time", "date": "2026-12-03", "time": "10:00"})
            ).schedule
        }
    )
    with pytest.raises(StatusConflict, match=r"^local-sale: schedule\.date cannot be changed"):
        a.save(next_day, files, "ci", later)
    assert [campaigns.definitions[c].version for c in ("winter-sale", "local-sale")] == [3, 1]
    assert schedules.put_calls == []
    # and its file re-applied unchanged, or changed elsewhere, is fine
    assert a.save(campaign, files, "ci", later) == 3
    renamed = campaign.model_copy(
        update={"name": "Winter sale (2)", "status": CampaignStatus.PAUSED}
    )
    assert a.save(renamed, files, "ci", later) == 4


def test_apply_leaves_a_paused_campaign_paused() -> None:
    # Given a campaign scheduled for NOW + 1 day, which a marketer paused
    a, campaigns, schedules = admin()
    campaign = saved(a, status="scheduled")
    files = campaigns.definitions["winter-sale"].templates
    a.transition("winter-sale", "pause", NOW)
    schedules.put_calls.clear()

    # When apply re-applies its file (status: scheduled) unchanged: left as it is, paused
    current = campaigns.definitions["winter-sale"]
    assert a.left_as_is(campaign, files, NOW, current) == "paused"
    assert a.save(campaign, files, "ci", NOW) == 1
    assert schedules.put_calls == []

    # When its file is changed: written, still paused (its schedule disabled)
    renamed = campaign.model_copy(update={"name": "Winter sale (2)"})
    assert a.as_applied(renamed, current).status == CampaignStatus.PAUSED
    assert a.save(renamed, files, "ci", NOW) == 2
    stored = campaigns.definitions["winter-sale"]
    assert (stored.status, stored.campaign.name) == ("paused", "Winter sale (2)")
    assert stored.campaign.status == CampaignStatus.PAUSED
    assert schedules.put_calls == [("winter-sale", "paused")]

    # Then an update naming its version, or the resume action, resumes it
    assert a.transition("winter-sale", "resume", NOW) == ("paused", "scheduled")
    a.transition("winter-sale", "pause", NOW)
    assert a.save(campaign, files, "mari", NOW, expected_version=2) == 3
    assert campaigns.definitions["winter-sale"].status == "scheduled"


def test_apply_does_not_write_scheduled_over_a_pause_that_came_between() -> None:
    a, campaigns, schedules = admin()
    campaign = saved(a, status="scheduled")
    files = campaigns.definitions["winter-sale"].templates
    renamed = campaign.model_copy(update={"name": "Winter sale (2)"})

    a.store = PausedMeanwhile(campaigns, "winter-sale", NOW)
    assert a.save(renamed, files, "ci", NOW) == 2
    stored = campaigns.definitions["winter-sale"]
    assert (stored.status, stored.campaign.name) == ("paused", "Winter sale (2)")
    assert schedules.put_calls[-1] == ("winter-sale", "paused")


def test_a_one_off_campaign_cannot_be_moved_while_scheduler_is_starting_it() -> None:
    # Given a one-off campaign scheduled for NOW + 1 day, its time just passed: Scheduler
    # fired (or retries for up to 6 hours) and no occurrence is written yet
    a, campaigns, _ = admin()
    campaign = saved(a, status="scheduled")
    files = campaigns.definitions["winter-sale"].templates
    just_after = NOW + timedelta(days=1, seconds=5)
    ahead = {"type": "once", "at": (NOW + timedelta(days=3)).isoformat()}
    moved = campaign.model_copy(update={"schedule": parse_campaign(sale(schedule=ahead)).schedule})
    # When its time is moved ahead / Then refused: the old instant still runs
    with pytest.raises(StatusConflict, match=r"schedule\.at cannot be changed: its time has"):
        a.save(moved, files, "mari", just_after, expected_version=1)
    with pytest.raises(StatusConflict, match=r"schedule\.at cannot be changed: its time has"):
        a.save(moved, files, "ci", just_after)
    assert campaigns.definitions["winter-sale"].version == 1


def test_apply_over_a_pause_still_refuses_a_time_that_has_passed() -> None:
    # Given a campaign paused before its time, whose time then passed (it never ran)
    a, campaigns, _ = admin()
    campaign = saved(a, status="scheduled")
    files = campaigns.definitions["winter-sale"].templates
    a.transition("winter-sale", "pause", NOW)
    later = NOW + timedelta(days=2)
    # When a changed file saying scheduled is applied / Then refused, as before the pause
    # rule: a resume it would invite is refused too ("change the schedule")
    renamed = campaign.model_copy(update={"name": "Winter sale (2)"})
    with pytest.raises(StatusConflict, match=r"schedule\.at .* has passed: change the schedule"):
        a.save(renamed, files, "ci", later)
    with pytest.raises(StatusConflict, match="has passed"):
        a.transition("winter-sale", "resume", later)


def test_apply_of_an_unchanged_draft_does_not_undo_a_marketers_schedule() -> None:
    # Given a campaign applied as a draft, which a marketer then scheduled in the console
    a, campaigns, schedules = admin()
    campaign = saved(a, status="draft")
    files = campaigns.definitions["winter-sale"].templates
    assert a.transition("winter-sale", "schedule", NOW) == ("draft", "scheduled")
    schedules.put_calls.clear()
    # When the deploy pipeline re-applies the same file (status: draft)
    current = campaigns.definitions["winter-sale"]
    assert a.left_as_is(campaign, files, NOW, current) == (
        "scheduled: changed since this file was applied"
    )
    assert a.save(campaign, files, "ci", NOW) == 1
    # Then it stays scheduled, its schedule untouched
    assert campaigns.definitions["winter-sale"].status == "scheduled"
    assert schedules.put_calls == []
    # and a file that changes its status still does (the author asked for it)
    a.save(campaign.model_copy(update={"status": CampaignStatus.CANCELLED}), files, "ci", NOW)
    assert campaigns.definitions["winter-sale"].status == "cancelled"


def test_a_file_saying_paused_pauses_on_every_apply() -> None:
    # Given a campaign applied as scheduled over a pause (stored paused), then resumed
    a, campaigns, _ = admin()
    campaign = saved(a, status="scheduled")
    files = campaigns.definitions["winter-sale"].templates
    a.transition("winter-sale", "pause", NOW)
    renamed = campaign.model_copy(update={"name": "Winter sale (2)"})
    assert a.save(renamed, files, "ci", NOW) == 2  # kept paused
    a.transition("winter-sale", "resume", NOW)
    # When its file now says paused: applied, it pauses (which a stored "paused" meant is
    # not known; of the two readings, the one that sends nothing)
    a.save(renamed.model_copy(update={"status": CampaignStatus.PAUSED}), files, "ci", NOW)
    assert campaigns.definitions["winter-sale"].status == "paused"


def test_a_one_off_may_be_moved_once_scheduler_has_given_up_starting_it() -> None:
    a, campaigns, _ = admin()
    campaign = saved(a, status="scheduled")
    files = campaigns.definitions["winter-sale"].templates
    ahead = {"type": "once", "at": (NOW + timedelta(days=3)).isoformat()}
    moved = campaign.model_copy(update={"schedule": parse_campaign(sale(schedule=ahead)).schedule})
    # six hours after its time with no occurrence, its start was dead-lettered: it never ran
    gave_up = NOW + timedelta(days=1, hours=6, minutes=1)
    assert a.save(moved, files, "mari", gave_up, expected_version=1) == 2


def test_a_campaign_paused_mid_run_can_be_resumed_after_its_time() -> None:
    # Given a one-off campaign that fired (its occurrence running) and was paused mid-run
    a, campaigns, schedules = admin()
    saved(a, status="scheduled")
    fired = NOW + timedelta(days=1)
    campaigns.start_occurrence("winter-sale", "20261201T0100Z", fired, fired)
    a.transition("winter-sale", "pause", fired + timedelta(minutes=5))
    schedules.put_calls.clear()
    # When the marketer resumes it an hour later / Then it is scheduled again (its batches
    # go on), and its one-time schedule, which fired, is left disabled
    later = fired + timedelta(hours=1)
    assert a.transition("winter-sale", "resume", later) == ("paused", "scheduled")
    assert schedules.put_calls == []
    # but a campaign whose occurrence is done, or whose execution ended (its retries of
    # the pause ran out), is not resumed: nothing would run
    a.transition("winter-sale", "pause", later)
    a.executions = Ended()
    campaigns.occurrences[("winter-sale", "20261201T0100Z")]["execution"] = "arn:x"
    with pytest.raises(StatusConflict, match="has passed"):
        a.transition("winter-sale", "resume", later)
    a.executions = None
    campaigns.occurrences[("winter-sale", "20261201T0100Z")]["status"] = "done"
    with pytest.raises(StatusConflict, match="has passed"):
        a.transition("winter-sale", "resume", later)


class Ended:
    """Step Functions: every execution ended FAILED."""

    def state(self, execution: str) -> ExecutionState:
        return ExecutionState("FAILED", NOW)


def test_the_experiment_is_not_changed_while_an_occurrence_is_unfinished() -> None:
    """A variant renamed or reweighted mid-run had the winner chosen (and the rest sent)
    by another definition than the one the test pool was sent: refused until the occurrence
    completes; other fields stay editable, and after it completes so are these."""
    variants = [{"name": "a", "weight": 50}, {"name": "b", "weight": 50}]
    winner = {"test_percent": 20, "metric": "open", "wait_hours": 4}
    a, campaigns, _ = admin()
    campaign = saved(a, status="scheduled", variants=variants, winner=winner)
    files = campaigns.definitions["winter-sale"].templates
    campaigns.start_occurrence("winter-sale", "20261201T0100Z", NOW, NOW)
    later = NOW + timedelta(hours=2)
    changes = {
        "variants": parse_campaign(
            sale(variants=[{"name": "a", "weight": 50}, {"name": "c", "weight": 50}])
        ).variants,
        "winner": parse_campaign(
            sale(variants=variants, winner={**winner, "metric": "click"})
        ).winner,
        "holdout_percent": 20,
        "goal": parse_campaign(sale(goal={"event": "order.placed", "within_days": 3})).goal,
    }
    for name, value in changes.items():
        changed = campaign.model_copy(update={name: value})
        for version in (None, 1):
            with pytest.raises(StatusConflict, match="while occurrence 20261201T0100Z is unf"):
                a.save(changed, files, "mari", later, expected_version=version)
    renamed = campaign.model_copy(update={"name": "Winter sale (2)"})
    assert a.save(renamed, files, "mari", later, expected_version=1) == 2
    campaigns.complete_occurrence("winter-sale", "20261201T0100Z", later)
    reweighted = renamed.model_copy(update={"holdout_percent": 20})
    assert a.save(reweighted, files, "mari", later, expected_version=2) == 3
