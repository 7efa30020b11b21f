"""A change of a campaign's experiment (``variants``, ``winner``, ``holdout_percent``,
``goal``) racing its occurrence's start, on moto (the real campaign store): the write is
refused while an occurrence is unfinished, one that starts between the write's read and its
write included, and an occurrence whose definition is written between Prepare's read and
its start runs the definition written. Either order, the test pool and the rest are sent,
and the winner chosen, by one definition."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from kizuna.adapters.campaigns import CampaignStore
from kizuna.campaigns.loader import parse_campaign
from kizuna.campaigns.model import Campaign
from kizuna.programs.bundle import REPO_ROOT
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.segments import load_segments
from kizuna.services.campaign import CampaignService
from kizuna.services.campaign_admin import CampaignAdmin, CampaignRules, StatusConflict
from kizuna.services.contracts import CampaignRequest
from kizuna_tools.fakes import MemoryCampaignEvents, MemoryManifest, MemoryStore
from kizuna_tools.metering import ApiCallCounter
from tests.factories import campaign_definition
from tests.moto_setup import create_table, fake_aws_env

pytestmark = pytest.mark.integration

REGION = "ap-northeast-1"
NOW = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
FIRES = NOW + timedelta(days=1)  # the one-off's time: its occurrence 20261201T0100Z
TEMPLATES = {
    "news/ja/email.subject.j2": "セールのお知らせ",
    "news/ja/email.html.j2": "<p>セール</p>",
    "news/ja/email.txt.j2": "セール",
}
AB = [{"name": "a", "weight": 50}, {"name": "b", "weight": 50}]
AC = [{"name": "a", "weight": 50}, {"name": "c", "weight": 50}]


def sale(variants: list[dict[str, Any]], at: datetime = FIRES) -> Campaign:
    return parse_campaign(
        campaign_definition(
            status="scheduled",
            schedule={"type": "once", "at": at.isoformat()},
            variants=variants,
            winner={"test_percent": 20, "metric": "open", "wait_hours": 4},
        )
    )


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[CampaignStore]:
    fake_aws_env(monkeypatch, REGION)
    with mock_aws():
        create_table(boto3.client("dynamodb", region_name=REGION), "campaigns", "campaign_id", "sk")
        s = CampaignStore(boto3.resource("dynamodb", region_name=REGION), "campaigns")
        s.put_definition(sale(AB), TEMPLATES, "mari", NOW)
        yield s


def admin(campaigns: Any) -> CampaignAdmin:
    rules = CampaignRules(
        KizunaConfig(), REPO_ROOT / "templates", load_segments(REPO_ROOT / "segments")
    )
    return CampaignAdmin(rules, campaigns, MemoryStore())


def prepare(campaigns: Any) -> dict[str, Any]:
    """The campaign function's Prepare, as the schedule's execution calls it."""
    service = CampaignService(
        campaigns,
        MemoryStore(),
        MemoryManifest(),
        {},
        MemoryCampaignEvents(),
        KizunaConfig(),
        FixedClock(FIRES),
        scan_segments=1,
    )
    request = {"action": "prepare", "campaign_id": "sale", "scheduled_time": FIRES.isoformat()}
    return service.handle(CampaignRequest.model_validate(request))


class Meanwhile:
    """The campaign store, as something else happens just before its first ``method`` call
    (after what the caller read before it)."""

    def __init__(self, store: CampaignStore, method: str, then: Callable[[], Any]) -> None:
        self._store, self._method, self._then = store, method, then
        self.happened: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._store, name)
        if name != self._method or self.happened:
            return call

        def first(*args: Any, **kwargs: Any) -> Any:
            self.happened.append(self._then())
            return call(*args, **kwargs)

        return first


@pytest.mark.parametrize("expected_version", [None, 1], ids=["apply", "api"])
def test_an_occurrence_started_after_the_write_read_refuses_the_write(
    store: CampaignStore, expected_version: int | None
) -> None:
    # given: a marketer's write of other variants has read the definition and found no
    # occurrence; the schedule fires and the occurrence starts before the write
    meanwhile = Meanwhile(store, "put_definition", lambda: prepare(store))
    # when: the write goes on / then: it is refused, with the occurrence named
    with pytest.raises(StatusConflict, match="while occurrence 20261201T0100Z is unfinished"):
        admin(meanwhile).save(sale(AC), TEMPLATES, "ken", NOW, expected_version=expected_version)
    assert meanwhile.happened[0]["run"] is True
    # and the occurrence runs the definition its test pool is sent: a and b, version 1
    stored, occ = store.get_state("sale", "20261201T0100Z")
    assert stored is not None and occ is not None
    assert [v.name for v in stored.campaign.variants] == ["a", "b"]
    assert (stored.version, occ["definition_version"]) == (1, 1)
    assert stored.occurrences_started == 1


@pytest.mark.parametrize("expected_version", [None, 1], ids=["apply", "api"])
def test_a_one_off_moved_while_its_occurrence_started_is_refused(
    store: CampaignStore, expected_version: int | None
) -> None:
    # given: a marketer's write of a later time for the one-off has read the definition
    # and found it not run; the schedule fires and the occurrence starts before the write
    meanwhile = Meanwhile(store, "put_definition", lambda: prepare(store))
    later = sale(AB, at=FIRES + timedelta(days=2))
    # when: the write goes on / then: it is refused (a new schedule would send it again)
    with pytest.raises(StatusConflict, match="the campaign already ran"):
        admin(meanwhile).save(later, TEMPLATES, "ken", NOW, expected_version=expected_version)
    assert meanwhile.happened[0]["run"] is True
    stored = store.get_definition("sale")
    assert stored is not None and stored.version == 1
    assert stored.campaign.schedule == sale(AB).schedule


def test_a_definition_written_after_prepare_read_it_is_the_one_the_occurrence_runs(
    store: CampaignStore,
) -> None:
    # given: Prepare has read the definition (a and b); a marketer's write of other
    # variants, finding no occurrence, lands before the occurrence starts
    write = admin(store)
    meanwhile = Meanwhile(
        store,
        "start_occurrence",
        lambda: write.save(sale(AC), TEMPLATES, "ken", NOW, expected_version=1),
    )
    # when: Prepare starts the occurrence
    prepared = prepare(meanwhile)
    # then: the write stood (version 2), and the occurrence runs it, not the one Prepare read
    assert meanwhile.happened == [2] and prepared["run"] is True
    stored, occ = store.get_state("sale", "20261201T0100Z")
    assert stored is not None and occ is not None
    assert [v.name for v in stored.campaign.variants] == ["a", "c"]
    assert (stored.version, occ["definition_version"]) == (2, 2)
    assert stored.occurrences_started == 1
    # and from now on the experiment stays as it started
    with pytest.raises(StatusConflict, match="while occurrence 20261201T0100Z is unfinished"):
        write.save(sale(AB), TEMPLATES, "ken", NOW, expected_version=2)


def test_prepare_makes_the_same_two_calls_and_a_retry_starts_nothing_again(
    store: CampaignStore,
) -> None:
    # given: the schedule fires
    counter = ApiCallCounter().attach(store._table.meta.client.meta.events)
    # when: Prepare starts the occurrence / then: one read, one write (a transaction)
    assert prepare(store)["run"] is True
    assert counter.calls == {("dynamodb", "GetItem"): 1, ("dynamodb", "TransactWriteItems"): 1}
    # and a retry of the execution runs it without starting (or counting) it again
    assert prepare(store)["run"] is True
    stored = store.get_definition("sale")
    assert stored is not None and stored.occurrences_started == 1
    # and a change of a template alone (the experiment as it was) is still written mid-run
    fixed = {**TEMPLATES, "news/ja/email.txt.j2": "セールです"}
    assert admin(store).save(sale(AB), fixed, "ken", NOW, expected_version=1) == 2
