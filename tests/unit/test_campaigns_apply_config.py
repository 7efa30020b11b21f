"""``kizuna campaigns apply --config FILE``: the campaign is checked and stored with the
configuration given, whose declared attributes its segments may name (a migrated project's
``kizuna-config.json``), not with the checkout's or the defaults."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from kizuna.campaigns.model import Campaign, CampaignStatus
from kizuna.runtime import clock
from kizuna.runtime.clock import FixedClock
from kizuna.services.campaign_admin import CampaignAdmin
from kizuna_tools.cli import app
from kizuna_tools.cli import campaigns as campaigns_cli
from kizuna_tools.cli.campaigns import Target, apply_files
from kizuna_tools.fakes import MemoryCampaigns, MemoryStore
from tests.factories import PausedMeanwhile

CAMPAIGN = """\
id: gold-sale
name: Gold sale
status: scheduled
audience:
  segments: [gold]
schedule: {type: once, at: "2099-01-15T01:00:00Z"}
channels: [email]
template: sale
"""


class Schedules:
    def __init__(self) -> None:
        self.put_calls: list[tuple[str, str]] = []

    def put(self, campaign: Campaign, status: CampaignStatus, now: datetime) -> None:
        self.put_calls.append((campaign.id, str(status)))

    def get(self, campaign_id: str) -> dict[str, Any] | None:
        return None


class InMemory(Target):
    """A stack whose campaigns table and schedules are in memory."""

    def __init__(self, outputs: dict[str, str] | None = None) -> None:
        super().__init__(None, None, None, "us-east-1", None, outputs or {})
        self.campaigns = MemoryCampaigns()
        self.schedules_seen = Schedules()

    def admin(self, config: Path | None = None) -> CampaignAdmin:
        return CampaignAdmin(self.rules(config), self.campaigns, MemoryStore(), self.schedules_seen)


def project(root: Path) -> Path:
    """A project (as `kizuna migrate pinpoint` writes one) whose segment names an attribute
    only its own configuration declares."""
    config = {
        "custom": {
            "attributes": [
                {"name": "membership_tier", "type": "string", "enum": ["Gold", "Bronze"]}
            ]
        }
    }
    (root / "kizuna-config.json").write_text(json.dumps(config), encoding="utf-8")
    (root / "segments").mkdir()
    (root / "segments" / "gold.yaml").write_text(
        "name: gold\nconditions:\n  attributes:\n    membership_tier: [Gold]\n", encoding="utf-8"
    )
    parts = root / "templates" / "gold-sale" / "sale" / "ja"
    parts.mkdir(parents=True)
    (parts / "email.subject.j2").write_text("冬のセール", encoding="utf-8")
    (parts / "email.html.j2").write_text("<p>{{ customer.first_name }}様</p>", encoding="utf-8")
    (parts / "email.txt.j2").write_text("{{ customer.first_name }}様", encoding="utf-8")
    (root / "programs").mkdir()
    (root / "campaigns").mkdir()
    (root / "campaigns" / "gold-sale.yaml").write_text(CAMPAIGN, encoding="utf-8")
    return root


def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, InMemory, Path, Path]:
    """A migrated project, worked on from its folder (no cdk.json of its own yet), and a stack
    in memory: (its root, the stack, its kizuna-config.json, its campaign's file)."""
    root = project(tmp_path)
    monkeypatch.chdir(root)
    monkeypatch.delenv("KIZUNA_CONFIG", raising=False)
    monkeypatch.delenv("KIZUNA_PROJECT_ROOT", raising=False)
    return root, InMemory(), root / "kizuna-config.json", root / "campaigns" / "gold-sale.yaml"


def test_apply_checks_and_stores_with_the_configuration_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a migrated project, worked on from its folder (no cdk.json of its own yet)
    root, target, _, _ = shop(tmp_path, monkeypatch)

    # When its campaign is applied with --config kizuna-config.json
    problems, applied = apply_files(
        target, [root / "campaigns" / "gold-sale.yaml"], "mari", root / "kizuna-config.json"
    )

    # Then it is stored and scheduled: its segment's attribute is the configuration's own
    assert (problems, applied) == ([], ["applied gold-sale (version 1, scheduled)"])
    stored = target.campaigns.get_definition("gold-sale")
    assert stored is not None and list(stored.campaign.audience.segments) == ["gold"]
    assert target.schedules_seen.put_calls == [("gold-sale", "scheduled")]


def test_apply_keeps_an_ended_campaign_and_refuses_what_its_status_forbids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a migrated project's campaign, applied, then cancelled by a marketer
    root, target, config, file = shop(tmp_path, monkeypatch)
    assert apply_files(target, [file], "mari", config)[0] == []
    target.admin(config).transition("gold-sale", "cancel", datetime(2098, 1, 1))
    target.schedules_seen.put_calls.clear()

    # When the folder is applied again as it is (a deploy pipeline's habit): left cancelled
    assert apply_files(target, [file], "ci", config) == (
        [],
        ["left gold-sale as it is (cancelled)"],
    )
    stored = target.campaigns.get_definition("gold-sale")
    assert stored is not None and (stored.status, stored.version) == ("cancelled", 1)
    assert target.schedules_seen.put_calls == []

    # When the file changes, with a second, new campaign beside it: nothing is applied
    file.write_text(CAMPAIGN.replace("Gold sale", "Gold sale (again)"), encoding="utf-8")
    late = CAMPAIGN.replace("gold-sale", "late-sale").replace("2099", "2020")
    (root / "campaigns" / "late-sale.yaml").write_text(late, encoding="utf-8")
    (root / "templates" / "late-sale").symlink_to(root / "templates" / "gold-sale")
    problems, applied = apply_files(target, [root / "campaigns"], "ci", config)
    assert applied == []
    assert [p.split(": ", 1)[1] for p in problems] == [
        "gold-sale is cancelled: it cannot be changed (a new campaign needs a new id)",
        "late-sale: schedule.at (2020-01-15T01:00:00+00:00) has passed: change the schedule",
    ]
    assert target.campaigns.get_definition("late-sale") is None
    assert target.schedules_seen.put_calls == []


def test_apply_leaves_a_scheduled_campaign_whose_time_passed_and_refuses_a_late_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the campaign applied (scheduled for 2099-01-15), and the clock after its time
    root, target, config, file = shop(tmp_path, monkeypatch)
    monkeypatch.setattr(clock, "_clock", FixedClock(datetime(2098, 12, 1, tzinfo=UTC)))
    assert apply_files(target, [file], "mari", config)[0] == []
    monkeypatch.setattr(clock, "_clock", FixedClock(datetime(2099, 1, 16, tzinfo=UTC)))
    target.schedules_seen.put_calls.clear()

    # When the folder is applied again as it is: it was scheduled in time, it is left so
    assert apply_files(target, [root / "campaigns"], "ci", config) == (
        [],
        ["left gold-sale as it is (scheduled; schedule.at has passed)"],
    )
    stored = target.campaigns.get_definition("gold-sale")
    assert stored is not None and (stored.status, stored.version) == ("scheduled", 1)
    assert target.schedules_seen.put_calls == []

    # When a recurring campaign whose end has passed is added, written scheduled
    weekly = (
        CAMPAIGN.replace("gold-sale", "weekly-sale")
        .replace('{type: once, at: "2099-01-15T01:00:00Z"}', "")
        .replace(
            "schedule: \n",
            'schedule:\n  type: recurring\n  rate: rate(7 days)\n  end: "2099-01-01T00:00:00Z"\n',
        )
    )
    (root / "campaigns" / "weekly-sale.yaml").write_text(weekly, encoding="utf-8")
    (root / "templates" / "weekly-sale").symlink_to(root / "templates" / "gold-sale")
    monkeypatch.setattr(campaigns_cli, "Target", lambda *_: target)
    result = CliRunner().invoke(
        app, ["campaigns", "apply", "campaigns", "--config", str(config)], env={"COLUMNS": "400"}
    )

    # Then apply fails naming the field, and writes nothing (not even the unchanged one)
    assert result.exit_code == 1, result.output
    assert (
        "weekly-sale: schedule.end (2099-01-01T00:00:00+00:00) has passed: change the schedule"
        in result.output
    )
    assert "left gold-sale" not in result.output
    assert target.campaigns.get_definition("weekly-sale") is None
    assert target.schedules_seen.put_calls == []


def test_apply_refuses_to_move_the_time_of_a_one_off_campaign_that_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the campaign applied (scheduled for 2099-01-15T01:00Z), and fired at that time
    _, target, config, file = shop(tmp_path, monkeypatch)
    monkeypatch.setattr(clock, "_clock", FixedClock(datetime(2098, 12, 1, tzinfo=UTC)))
    assert apply_files(target, [file], "mari", config)[0] == []
    fired = datetime(2099, 1, 15, 1, 0, tzinfo=UTC)
    assert target.campaigns.start_occurrence("gold-sale", "20990115T0100Z", fired, fired)
    monkeypatch.setattr(clock, "_clock", FixedClock(datetime(2099, 1, 15, 2, 0, tzinfo=UTC)))
    target.schedules_seen.put_calls.clear()

    # When its file is applied with the time moved ahead: refused, nothing written or put
    file.write_text(CAMPAIGN.replace("2099-01-15T01:00:00Z", "2099-02-01T01:00:00Z"), "utf-8")
    problems, applied = apply_files(target, [file], "ci", config)
    assert applied == []
    assert [p.split(": ", 1)[1] for p in problems] == [
        "gold-sale: schedule.at cannot be changed: the campaign already ran (occurrence "
        "20990115T0100Z); a one-off campaign runs once (to send again, create a new campaign "
        "with a new id)"
    ]
    stored = target.campaigns.get_definition("gold-sale")
    assert stored is not None and stored.version == 1
    assert target.schedules_seen.put_calls == []

    # Then re-applied unchanged, it is left as it is
    file.write_text(CAMPAIGN, "utf-8")
    assert apply_files(target, [file], "ci", config) == (
        [],
        ["left gold-sale as it is (scheduled; schedule.at has passed)"],
    )


def test_apply_leaves_a_paused_campaign_paused_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the campaign applied (status: scheduled), then paused by a marketer
    root, target, config, file = shop(tmp_path, monkeypatch)
    monkeypatch.setattr(clock, "_clock", FixedClock(datetime(2098, 12, 1, tzinfo=UTC)))
    assert apply_files(target, [file], "mari", config)[0] == []
    assert target.campaigns.set_status("gold-sale", "paused", datetime(2098, 12, 1, tzinfo=UTC))
    target.schedules_seen.put_calls.clear()

    # When a deploy pipeline applies the folder as it is: left paused, nothing put
    assert apply_files(target, [root / "campaigns"], "ci", config) == (
        [],
        ["left gold-sale as it is (paused)"],
    )
    assert target.schedules_seen.put_calls == []

    # When the file is changed: written, still paused, and apply says so
    file.write_text(CAMPAIGN.replace("Gold sale", "Gold sale (2)"), "utf-8")
    assert apply_files(target, [file], "ci", config) == (
        [],
        [
            "applied gold-sale (version 2, paused: it was paused, so it stays paused; resume "
            "it in the console, the API or `kizuna campaigns resume gold-sale`)"
        ],
    )
    stored = target.campaigns.get_definition("gold-sale")
    assert stored is not None and (stored.status, stored.campaign.name) == (
        "paused",
        "Gold sale (2)",
    )
    assert target.schedules_seen.put_calls == [("gold-sale", "paused")]


def test_apply_over_a_pause_refuses_a_time_that_passed_before_writing_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the campaign applied, paused by a marketer before its time, and its time passed
    _, target, config, file = shop(tmp_path, monkeypatch)
    monkeypatch.setattr(clock, "_clock", FixedClock(datetime(2098, 12, 1, tzinfo=UTC)))
    assert apply_files(target, [file], "mari", config)[0] == []
    assert target.campaigns.set_status("gold-sale", "paused", datetime(2098, 12, 1, tzinfo=UTC))
    monkeypatch.setattr(clock, "_clock", FixedClock(datetime(2099, 2, 1, tzinfo=UTC)))
    # When a changed file still saying scheduled is applied: refused up front (a resume
    # would be refused too), nothing written
    file.write_text(CAMPAIGN.replace("Gold sale", "Gold sale (2)"), "utf-8")
    problems, applied = apply_files(target, [file], "ci", config)
    assert applied == []
    assert [p.split(": ", 1)[1] for p in problems] == [
        "gold-sale: schedule.at (2099-01-15T01:00:00+00:00) has passed: change the schedule"
    ]
    stored = target.campaigns.get_definition("gold-sale")
    assert stored is not None and (stored.version, stored.campaign.name) == (1, "Gold sale")


def test_apply_says_paused_when_a_pause_came_while_it_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, target, config, file = shop(tmp_path, monkeypatch)
    at = datetime(2098, 12, 1, tzinfo=UTC)
    monkeypatch.setattr(clock, "_clock", FixedClock(at))
    assert apply_files(target, [file], "mari", config)[0] == []
    campaigns = target.campaigns

    admin = target.admin
    monkeypatch.setattr(
        target,
        "admin",
        lambda config=None: _with_store(admin(config), PausedMeanwhile(campaigns, "gold-sale", at)),
    )
    file.write_text(CAMPAIGN.replace("Gold sale", "Gold sale (2)"), "utf-8")
    problems, applied = apply_files(target, [file], "ci", config)
    assert problems == []
    assert applied[0].startswith("applied gold-sale (version 2, paused: it was paused")
    stored = campaigns.get_definition("gold-sale")
    assert stored is not None and stored.status == "paused"


def _with_store(admin: CampaignAdmin, store: Any) -> CampaignAdmin:
    admin.store = store
    return admin


class StartsMeanwhile:
    """The campaigns table as the campaign's occurrence starts (Prepare, on the version it
    read) just before apply's first ``put_definition``, after apply found none."""

    def __init__(self, campaigns: MemoryCampaigns, at: datetime) -> None:
        self._campaigns, self._at = campaigns, at
        self.started = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._campaigns, name)

    def put_definition(self, *args: Any, **kwargs: Any) -> int:
        if not self.started:
            stored = self._campaigns.get_definition("gold-sale")
            assert stored is not None
            self.started = self._campaigns.start_occurrence(
                "gold-sale", "20990115T0100Z", self._at, self._at, None, stored.version
            )
        result: int = self._campaigns.put_definition(*args, **kwargs)
        return result


def test_apply_refuses_a_new_holdout_when_the_occurrence_started_while_it_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the campaign applied; apply of a new holdout reads it and finds no occurrence,
    # then the schedule fires and the occurrence starts before apply writes
    _, target, config, file = shop(tmp_path, monkeypatch)
    at = datetime(2098, 12, 1, tzinfo=UTC)
    monkeypatch.setattr(clock, "_clock", FixedClock(at))
    assert apply_files(target, [file], "mari", config)[0] == []
    campaigns = target.campaigns
    meanwhile = StartsMeanwhile(campaigns, at)
    admin = target.admin
    monkeypatch.setattr(target, "admin", lambda config=None: _with_store(admin(config), meanwhile))
    file.write_text(CAMPAIGN + "holdout_percent: 20\n", "utf-8")
    # When it goes on / Then the file is refused with the occurrence named; nothing written
    problems, applied = apply_files(target, [file], "ci", config)
    assert meanwhile.started and applied == []
    assert [p.split(": ", 1)[1] for p in problems] == [
        "gold-sale: variants, winner, holdout_percent and goal cannot be changed while "
        "occurrence 20990115T0100Z is unfinished (its test pool, winner and holdout are "
        "measured by them); change them after it completes (a stopped one: kizuna campaigns "
        "close)"
    ]
    stored = campaigns.get_definition("gold-sale")
    assert stored is not None and (stored.version, stored.campaign.holdout_percent) == (1, 0)


def test_apply_refuses_a_campaign_on_no_channel_the_stack_sends_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a LINE campaign, with its LINE part, and a stack without a LINE token
    root, _, config, file = shop(tmp_path, monkeypatch)
    file.write_text(CAMPAIGN.replace("channels: [email]", "channels: [line]"), encoding="utf-8")
    line = root / "templates" / "gold-sale" / "sale" / "ja" / "line.txt.j2"
    line.write_text("{{ customer.first_name }}様", encoding="utf-8")
    target = InMemory({"DeployedChannels": "card,dm,email,sms"})

    # When it is applied: refused, nothing stored or scheduled
    assert apply_files(target, [file], "mari", config) == (
        [
            f"{file}: none of its channels (line) is deployed in this stack (it sends on card, "
            "dm, email, sms): every message would be suppressed, no_channel"
        ],
        [],
    )
    assert target.campaigns.get_definition("gold-sale") is None
    assert target.schedules_seen.put_calls == []

    # A stack with LINE, or one from before the output (not known): applied
    with_line = InMemory({"DeployedChannels": "card,dm,email,line,sms"})
    assert apply_files(with_line, [file], "mari", config)[0] == []
    assert apply_files(InMemory(), [file], "mari", config)[0] == []
    with pytest.raises(typer.BadParameter, match="DeployedChannels"):
        apply_files(InMemory({"DeployedChannels": "email,fax"}), [file], "mari", config)
