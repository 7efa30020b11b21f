"""The console's segment and campaign pages on moto, in Japanese and English: a marketer
creates a campaign from the form (and another from pasted YAML), previews each variant in ja
and en with a chosen customer's data, estimates it, dry-runs it, schedules and pauses it;
forms need the CSRF field and the marketer group; a viewer reads but sees no customer's
data."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest
import yaml

from kizuna.api.console import csrf_token
from kizuna.delivery.deployed import deployed_channels, parse_channels
from kizuna.runtime.settings import ENV_DEPLOYED_CHANNELS
from tests.integration.api.campaign_setup import NOW, REPEAT_BUYERS, prepare_campaigns, winter_sale
from tests.integration.api.harness import Api

pytestmark = pytest.mark.integration

DAY = (NOW + timedelta(days=2)).date().isoformat()


@pytest.fixture
def capi(api: Api) -> Iterator[Api]:
    yield prepare_campaigns(api)


def csrf_of(cookies: list[str]) -> str:
    session = next(c.split("=", 1)[1] for c in cookies if c.startswith("kizuna_session="))
    return csrf_token(session)


def form(**fields: str) -> dict[str, str]:
    base = {
        "id": "winter-sale",
        "name": "冬のセール",
        "segment": "repeat-buyers",
        "channel_1": "email",
        "channel_2": "line",
        "channel_3": "",
        "template_a": "month-end-sale/sale",
        "template_b": "month-end-sale/sale_urgent",
        "template_c": "",
        "locale_ja": "on",
        "locale_en": "on",
        "schedule_type": "once",
        "date": DAY,
        "time": "10:00",
        "time_zone": "Asia/Tokyo",
        "holdout_percent": "10",
        "coupon_discount": "10%",
        "coupon_days": "3",
    }
    return {**base, **fields}


def test_segment_pages_in_japanese_and_english(capi: Api) -> None:
    cookies = capi.session("viewer")
    ja = capi.call("GET", "/console/segments", cookies=cookies)
    en = capi.call("GET", "/console/segments", cookies=cookies, query={"lang": "en"})
    assert ja.status == en.status == 200
    assert "セグメント" in ja.body and "Segments" in en.body and "repeat-buyers" in ja.body
    page = capi.call("GET", "/console/segments/repeat-buyers", cookies=cookies)
    assert page.status == 200
    assert f'id="segment-count">{len(REPEAT_BUYERS)}<' in page.body
    assert all(cid in page.body for cid in REPEAT_BUYERS)
    assert "example.jp" not in page.body  # ids only
    assert "人数の推移" in page.body
    en_page = capi.call(
        "GET", "/console/segments/repeat-buyers", cookies=cookies, query={"lang": "en"}
    )
    assert "Size over time" in en_page.body and "not named segments" in en_page.body
    missing = capi.call("GET", "/console/segments/nope", cookies=cookies, query={"lang": "en"})
    assert missing.status == 404 and "No segment" in missing.body
    assert capi.call("GET", "/console/segments").status == 303  # no session: sign in


def test_a_marketer_creates_previews_dry_runs_schedules_and_pauses(capi: Api) -> None:
    cookies = capi.session("marketer")
    token = csrf_of(cookies)
    # the form, in both languages
    ja = capi.call("GET", "/console/campaigns/new", cookies=cookies)
    en = capi.call("GET", "/console/campaigns/new", cookies=cookies, query={"lang": "en"})
    assert ja.status == en.status == 200
    assert "キャンペーンを作成" in ja.body and "Create a campaign" in en.body
    assert "month-end-sale/sale_urgent" in ja.body and 'name="csrf"' in ja.body

    # without the CSRF field nothing is created
    refused = capi.call("POST", "/console/campaigns/new", cookies=cookies, form=form())
    assert refused.status == 403
    # a form with a problem is shown again with the field named
    bad = capi.call(
        "POST",
        "/console/campaigns/new",
        cookies=cookies,
        form=form(csrf=token, segment="no-such-segment"),
    )
    assert bad.status == 422 and "audience.segments" in bad.body
    assert 'value="冬のセール"' in bad.body  # what was typed is kept

    # when the form is posted
    created = capi.call("POST", "/console/campaigns/new", cookies=cookies, form=form(csrf=token))
    assert created.status == 303, created.body
    assert created.headers["Location"].startswith("/console/campaigns/winter-sale")
    page = capi.call("GET", "/console/campaigns/winter-sale", cookies=cookies)
    assert page.status == 200 and "冬のセール" in page.body and "下書き" in page.body
    en_page = capi.call(
        "GET", "/console/campaigns/winter-sale", cookies=cookies, query={"lang": "en"}
    )
    assert "Draft" in en_page.body and "Nothing sent yet." in en_page.body
    listed = capi.call("GET", "/console/campaigns", cookies=cookies, query={"lang": "en"})
    assert "winter-sale" in listed.body and "email → line" in listed.body

    # then its preview shows each variant in ja and en, with the chosen customer's data
    preview = capi.call(
        "GET", "/console/campaigns/winter-sale/preview", cookies=cookies, query={"customer": "s02"}
    )
    assert preview.status == 200
    assert preview.body.count('<section class="card preview"') == 2 * 2 * 2
    assert 'lang="ja"' in preview.body and 'lang="en"' in preview.body
    assert "月末セール" in preview.body and "顧客 s02 のデータで表示しています" in preview.body
    sample = capi.call(
        "GET", "/console/campaigns/winter-sale/preview", cookies=cookies, query={"lang": "en"}
    )
    assert "Shown with a sample customer" in sample.body and "Hanako" in sample.body

    # and its estimate and dry run
    estimate = capi.call("GET", "/console/campaigns/winter-sale/estimate", cookies=cookies)
    assert f'id="audience">{len(REPEAT_BUYERS)}<' in estimate.body
    dry = capi.call(
        "GET", "/console/campaigns/winter-sale/dry-run", cookies=cookies, query={"lang": "en"}
    )
    assert (
        "Dry run" in dry.body and "Japanese · email" in dry.body and "English · email" in dry.body
    )

    # when it is scheduled, then paused (each a form with the CSRF field)
    for action, shown in (("schedule", "予約済み"), ("pause", "一時停止中")):
        done = capi.call(
            "POST",
            f"/console/campaigns/winter-sale/{action}",
            cookies=cookies,
            form={"csrf": token},
        )
        assert done.status == 303, done.body
        path, _, query = done.headers["Location"].partition("?")
        page = capi.call("GET", path, cookies=cookies, query=dict(parse_qsl(query)))
        assert shown in page.body and 'role="status"' in page.body
    # the schedule's kind and state are words of the page's language, not stored values
    ja_page = capi.call("GET", "/console/campaigns/winter-sale", cookies=cookies)
    assert "· 停止中</p>" in ja_page.body and "DISABLED" not in ja_page.body
    ja_list = capi.call("GET", "/console/campaigns", cookies=cookies)
    assert "<td>一斉配信</td>" in ja_list.body and "<td>once</td>" not in ja_list.body
    en_list = capi.call("GET", "/console/campaigns", cookies=cookies, query={"lang": "en"})
    assert "<td>Once</td>" in en_list.body
    # an action the status does not allow is refused on the page
    again = capi.call(
        "POST", "/console/campaigns/winter-sale/pause", cookies=cookies, form={"csrf": token}
    )
    assert again.status == 409 and "scheduled" in again.body

    # and each write is audited
    rows = capi.deps.audit.day(NOW.date().isoformat())
    assert sorted(r["action"] for r in rows) == [
        "campaign.create",
        "campaign.pause",
        "campaign.schedule",
    ]


def test_create_from_pasted_yaml(capi: Api) -> None:
    cookies = capi.session("marketer")
    # the YAML's templates are the templates folder's <id>/...: the month-end sale's
    text = yaml.safe_dump(
        winter_sale(id="month-end-sale", status="draft"), allow_unicode=True, sort_keys=False
    )
    answer = capi.call(
        "POST",
        "/console/campaigns/new-yaml",
        cookies=cookies,
        form={"csrf": csrf_of(cookies), "yaml": text},
    )
    assert answer.status == 303, answer.body
    broken = capi.call(
        "POST",
        "/console/campaigns/new-yaml",
        cookies=cookies,
        form={"csrf": csrf_of(cookies), "yaml": "id: [oops"},
        query={"lang": "en"},
    )
    assert broken.status == 422 and "yaml: not valid YAML" in broken.body


def test_pasted_yaml_scheduled_after_its_time_or_end_is_refused_naming_the_field(
    capi: Api,
) -> None:
    cookies = capi.session("marketer")
    late = {"type": "once", "at": "2026-11-29T10:00:00+09:00"}
    ended = {"type": "recurring", "rate": "rate(7 days)", "end": "2026-11-29T00:00:00+00:00"}
    for schedule, field in ((late, "schedule.at"), (ended, "schedule.end")):
        definition = winter_sale(id="month-end-sale", status="scheduled", schedule=schedule)
        text = yaml.safe_dump(definition, allow_unicode=True, sort_keys=False)
        answer = capi.call(
            "POST",
            "/console/campaigns/new-yaml",
            cookies=cookies,
            form={"csrf": csrf_of(cookies), "yaml": text},
            query={"lang": "en"},
        )
        assert answer.status == 422, answer.body
        assert f"month-end-sale: {field} ({schedule.get('at') or schedule['end']}) has passed" in (
            answer.body
        )
    assert capi.call("GET", "/api/campaigns/month-end-sale", as_="viewer").status == 404


def test_a_viewer_reads_but_neither_writes_nor_sees_a_customer(capi: Api) -> None:
    marketer = capi.session("marketer")
    capi.call("POST", "/console/campaigns/new", cookies=marketer, form=form(csrf=csrf_of(marketer)))
    viewer = capi.session("viewer")
    assert capi.call("GET", "/console/campaigns/winter-sale", cookies=viewer).status == 200
    page = capi.call("GET", "/console/campaigns/winter-sale", cookies=viewer).body
    assert 'action="/console/campaigns/winter-sale/schedule' not in page
    assert capi.call("GET", "/console/campaigns/new", cookies=viewer).status == 403
    posted = capi.call(
        "POST",
        "/console/campaigns/winter-sale/schedule",
        cookies=viewer,
        form={"csrf": csrf_of(viewer)},
    )
    assert posted.status == 403
    chosen = capi.call(
        "GET", "/console/campaigns/winter-sale/preview", cookies=viewer, query={"customer": "s02"}
    )
    assert chosen.status == 403
    dry = capi.call("GET", "/console/campaigns/winter-sale/dry-run", cookies=viewer)
    assert dry.status == 200 and "marketer 以上" in dry.body and "花子" not in dry.body


def channels_offered(body: str) -> dict[str, list[str]]:
    """Each channel select of the form and the values it offers (the empty "(none)" left out)."""
    selects = re.findall(r'<select name="(channel_[0-9])">(.*?)</select>', body, re.S)
    return {name: re.findall(r'<option value="([a-z]+)"', options) for name, options in selects}


def test_the_form_offers_only_the_channels_the_stack_sends_on(capi: Api) -> None:
    """The API function's DEPLOYED_CHANNELS (without push and LINE here): the form offered
    every channel, and a marketer learned on submit that LINE alone is refused, or had a
    LINE beside email silently never used."""
    capi.deps.deployed_channels = deployed_channels(push=False, line=False, webhook=False)
    cookies = capi.session("marketer")
    page = capi.call("GET", "/console/campaigns/new", cookies=cookies, query={"lang": "en"})
    assert page.status == 200
    offered = channels_offered(page.body)
    assert list(offered) == ["channel_1", "channel_2", "channel_3"]
    for values in offered.values():
        assert "push" not in values and "line" not in values
        assert {"email", "sms"} <= set(values)
    assert 'id="channels-not-deployed"' in page.body
    assert "Not deployed in this stack, so not offered: push, line<" in page.body
    ja = capi.call("GET", "/console/campaigns/new", cookies=cookies)
    assert "このスタックに未デプロイのため選べないチャネル: push, line" in ja.body
    # a stack that does not say (a stack from before the list): every channel, no note
    capi.deps.deployed_channels = None
    page = capi.call("GET", "/console/campaigns/new", cookies=cookies, query={"lang": "en"})
    assert {"push", "line"} <= set(channels_offered(page.body)["channel_1"])
    assert 'id="channels-not-deployed"' not in page.body


def test_a_channel_not_deployed_posted_anyway_is_refused_on_the_form(capi: Api) -> None:
    """A form posted with a channel it did not offer (LINE on a stack without it) is shown
    again with the field named, LINE beside email as well as LINE alone; nothing is stored."""
    capi.deps.deployed_channels = deployed_channels(push=False, line=False, webhook=False)
    cookies = capi.session("marketer")
    token = csrf_of(cookies)
    for channels in ({"channel_1": "email", "channel_2": "line"}, {"channel_1": "line"}):
        posted = capi.call(
            "POST",
            "/console/campaigns/new",
            cookies=cookies,
            form=form(csrf=token, **{"channel_2": "", **channels}),
            query={"lang": "en"},
        )
        assert posted.status == 422, posted.body
        field = next(name for name, value in channels.items() if value == "line")
        assert f"{field}: line is not deployed in this stack: choose one of email, sms" in (
            posted.body
        ), posted.body
        assert 'value="冬のセール"' in posted.body  # what was typed is kept
    unknown = capi.call(
        "POST",
        "/console/campaigns/new",
        cookies=cookies,
        form=form(csrf=token, channel_2="fax"),
        query={"lang": "en"},
    )
    assert unknown.status == 422 and "channel_2: unknown channel &#39;fax&#39;" in unknown.body
    assert capi.call("GET", "/api/campaigns/winter-sale", as_="viewer").status == 404


def test_the_local_stack_s_form_offers_its_push_and_line(
    capi: Api, demo_template: dict[str, Any]
) -> None:
    """``kizuna local run|serve`` synthesizes the stack with push and LINE on: its API
    function's DEPLOYED_CHANNELS has them, so the demo console offers them."""
    [text] = [
        r["Properties"]["Environment"]["Variables"][ENV_DEPLOYED_CHANNELS]
        for r in demo_template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
        and ENV_DEPLOYED_CHANNELS in r["Properties"].get("Environment", {}).get("Variables", {})
    ]
    capi.deps.deployed_channels = parse_channels(text)
    cookies = capi.session("marketer")
    page = capi.call("GET", "/console/campaigns/new", cookies=cookies, query={"lang": "en"})
    offered = channels_offered(page.body)["channel_2"]
    assert offered == ["email", "sms", "push", "line", "card", "dm"]
    assert 'id="channels-not-deployed"' not in page.body  # nor webhook, the form has none


def test_the_form_offers_no_webhook_which_it_cannot_name_the_endpoint_of(capi: Api) -> None:
    """A stack with webhooks configured: the form offered the webhook channel, and every
    campaign made with it was refused (``webhook: name the endpoint ...``), the form having
    no field for the endpoint. It is not offered, nor listed as not deployed; posted anyway,
    it is refused on its field, pointing at YAML."""
    capi.deps.deployed_channels = deployed_channels(push=True, line=True, webhook=True)
    cookies = capi.session("marketer")
    page = capi.call("GET", "/console/campaigns/new", cookies=cookies, query={"lang": "en"})
    assert channels_offered(page.body)["channel_1"] == [
        "email",
        "sms",
        "push",
        "line",
        "card",
        "dm",
    ]
    assert 'id="channels-not-deployed"' not in page.body
    posted = capi.call(
        "POST",
        "/console/campaigns/new",
        cookies=cookies,
        form=form(csrf=csrf_of(cookies), channel_2="webhook"),
        query={"lang": "en"},
    )
    assert posted.status == 422, posted.body
    assert (
        "channel_2: the webhook channel names its endpoint: create the campaign from YAML "
        "(webhook: &lt;endpoint&gt;)"
    ) in posted.body
