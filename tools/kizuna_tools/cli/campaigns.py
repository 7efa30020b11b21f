"""``kizuna campaigns validate|apply|list|show|estimate|send|pause|resume|cancel|close|report``.

Every command but ``validate`` talks to a stack: ``--stack NAME`` reads its CloudFormation
outputs, ``--outputs FILE`` reads them from a JSON file (``kizuna local serve`` writes one for
the local runtime), ``--endpoint-url`` points the clients at a local endpoint.
"""

from __future__ import annotations

import getpass
import json
import re
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kizuna_tools.cli.options import Aws, Config, option_groups, session

if TYPE_CHECKING:
    from kizuna.adapters.campaigns import CampaignStore
    from kizuna.adapters.dynamodb import DynamoStore
    from kizuna.adapters.scheduler import CampaignSchedules
    from kizuna.campaigns.model import Campaign
    from kizuna.ports import StoredCampaign
    from kizuna.runtime.config import KizunaConfig
    from kizuna.services.campaign_admin import CampaignAdmin, CampaignRules, DryRun

campaigns_app = typer.Typer(
    help="Campaigns: validate, apply (store and schedule), estimate, dry-run, send, pause, "
    "resume, cancel, close an occurrence, report.",
    no_args_is_help=True,
)
console = Console(stderr=True)
out = Console()

CampaignName = Annotated[str, typer.Argument(help="campaign id")]
StackOption = Annotated[str | None, typer.Option("--stack", help="deployed stack (its outputs)")]
OutputsOption = Annotated[
    Path | None,
    typer.Option("--outputs", help="the stack's outputs as JSON (kizuna local serve writes one)"),
]


def _dir(name: str) -> Path:
    from kizuna.programs.bundle import resolve_dir

    return resolve_dir(name)


def _config(path: Path | None) -> KizunaConfig:
    from kizuna_tools.project import project_config

    return project_config(path).config


def _segments(cfg: KizunaConfig) -> dict[str, Any]:
    """The named segments campaigns may target; a segment file that does not load is
    every problem printed and exit 1 (as ``kizuna segments list``), not a traceback."""
    from kizuna.events.custom import vocabulary
    from kizuna.segments import SegmentError, load_segments

    try:
        return dict(load_segments(_dir("segments"), vocabulary(cfg)))
    except SegmentError as exc:
        for problem in exc.problems:
            console.print(Text(problem, style="red"))  # the file's text: no markup
        raise typer.Exit(1) from exc


def _rules(config: Path | None = None) -> CampaignRules:
    """What campaigns are checked against: this project's configuration, templates,
    segments and programs."""
    from kizuna.services.campaign_admin import CampaignRules

    cfg = _config(config)
    return CampaignRules(
        cfg,
        _dir("templates"),
        _segments(cfg),
        frozenset(p.stem for p in _dir("programs").glob("*.y*ml")),
    )


def _load_all(
    paths: list[Path], config: Path | None = None
) -> tuple[list[tuple[Campaign, dict[str, str]]], list[str], dict[str, Path]]:
    """Campaigns (with their template files) from files and folders, validated against the
    project (:meth:`CampaignRules.load_file`: its configuration, with the attributes and
    counters it declares); with the problems and each campaign's file."""
    from kizuna.campaigns.loader import CampaignError

    files: list[Path] = []
    for path in paths:
        files += sorted(path.glob("*.y*ml")) if path.is_dir() else [path]
    rules = _rules(config)
    now = _now()
    campaigns, problems, where = [], [], {}
    for file in files:
        try:
            campaign, templates = rules.load_file(file, now)
        except CampaignError as exc:
            problems += [str(issue) for issue in exc.issues]
            continue
        campaigns.append((campaign, templates))
        where[campaign.id] = file
    return campaigns, problems, where


@dataclass
class Target:
    """The stack a command works on, and the adapters over it."""

    stack: str | None
    outputs_file: Path | None
    endpoint_url: str | None
    region: str | None
    profile: str | None
    given_outputs: dict[str, str] | None = None  # e.g. a LocalCloud's, in-process

    @classmethod
    def local(cls, outputs: dict[str, str], region: str = "us-east-1") -> Target:
        """The local runtime's stack, in this process (the demo, tests)."""
        return cls(None, None, None, region, None, dict(outputs))

    @cached_property
    def aws(self) -> Any:
        aws = session(self.region, self.profile)
        if not aws.region_name:
            raise typer.BadParameter("give --region (before the command) or set AWS_REGION")
        return aws

    def client(self, service: str) -> Any:
        return self.aws.client(service, endpoint_url=self.endpoint_url)

    @cached_property
    def outputs(self) -> dict[str, str]:
        if self.given_outputs is not None:
            return self.given_outputs
        if self.outputs_file is not None:
            data = json.loads(self.outputs_file.read_text(encoding="utf-8"))
            return {str(k): str(v) for k, v in data.items()}
        if self.stack:
            from kizuna_tools.dlq import stack_outputs

            return stack_outputs(self.client("cloudformation"), self.stack)
        raise typer.BadParameter("give --stack NAME (or --outputs FILE for the local runtime)")

    def output(self, key: str) -> str:
        value = self.outputs.get(key)
        if not value:
            raise typer.BadParameter(f"the stack has no output {key}: deploy this version first")
        return value

    @cached_property
    def store(self) -> CampaignStore:
        from kizuna.adapters.campaigns import CampaignStore

        dynamodb = self.aws.resource("dynamodb", endpoint_url=self.endpoint_url)
        return CampaignStore(dynamodb, self.output("CampaignsTableName"))

    @cached_property
    def customers(self) -> DynamoStore:
        from kizuna.adapters.dynamodb import DynamoStore

        dynamodb = self.aws.resource("dynamodb", endpoint_url=self.endpoint_url)
        return DynamoStore(
            dynamodb, self.output("CustomersTableName"), self.output("ActivityTableName")
        )

    @cached_property
    def schedules(self) -> CampaignSchedules:
        from kizuna.adapters.scheduler import CampaignSchedules

        return CampaignSchedules(
            self.client("scheduler"),
            self.output("CampaignScheduleGroupName"),
            self.output("CampaignStateMachineArn"),
            self.output("CampaignSchedulerRoleArn"),
            self.outputs.get("CampaignScheduleDlqArn"),
        )

    def admin(self, config: Path | None = None) -> CampaignAdmin:
        from kizuna.services.campaign_admin import CampaignAdmin

        return CampaignAdmin(self.rules(config), self.store, self.customers, self.schedules)

    def rules(self, config: Path | None = None) -> CampaignRules:
        """The project's rules (:func:`_rules`) with the channels this stack sends on."""
        return replace(_rules(config), deployed_channels=self.deployed_channels)

    @property
    def deployed_channels(self) -> frozenset[str] | None:
        """The channels the stack sends on (its output DeployedChannels; None: a stack from
        before that output)."""
        from kizuna.delivery.deployed import parse_channels

        try:
            return parse_channels(self.outputs.get("DeployedChannels", ""))
        except ValueError as exc:
            raise typer.BadParameter(f"the stack's output DeployedChannels: {exc}") from exc

    def stored(self, campaign_id: str) -> StoredCampaign:
        found = self.store.get_definition(campaign_id)
        if found is None:
            raise typer.BadParameter(f"no campaign {campaign_id!r} applied to this stack")
        return found


@campaigns_app.callback()
@option_groups
def target(
    ctx: typer.Context, stack: StackOption = None, outputs: OutputsOption = None, *, aws: Aws
) -> None:
    """Which stack (give these before the command's name)."""
    ctx.obj = Target(stack, outputs, aws.endpoint_url, aws.region, aws.profile)


def _now() -> datetime:
    """The platform's clock: wall time, or the local runtime's virtual time in-process."""
    from kizuna.runtime.clock import utcnow

    return utcnow()


def _print_problems(problems: list[str]) -> None:
    """Each problem as written (no rich markup in it), on one line (to grep)."""
    for problem in problems:
        out.print(Text.assemble(("✗ ", "red"), problem), soft_wrap=True, highlight=False)


@campaigns_app.command("validate")
def validate(
    paths: Annotated[list[Path] | None, typer.Argument(help="files or folders")] = None,
    config: Config = None,
) -> None:
    """Validate campaigns (default: campaigns/): fields, segments, templates, ids, against the
    project's configuration (its declared attributes and counters)."""
    campaigns, problems, _ = _load_all(paths or [_dir("campaigns")], config)
    for campaign, _templates in campaigns:
        out.print(f"[green]✓[/green] {campaign.id}")
    _print_problems(problems)
    if problems:
        raise typer.Exit(code=1)


@campaigns_app.command("apply")
def apply(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="campaign files or folders")],
    by: Annotated[str | None, typer.Option(help="who applies it (the audit field)")] = None,
    config: Config = None,
) -> None:
    """Validate, store the definition and its templates, and create or update its schedule
    (enabled only when the status is `scheduled`)."""
    problems, applied = apply_files(ctx.obj, paths, by or getpass.getuser(), config)
    for line in applied:
        out.print(line)
    if problems:
        _print_problems(problems)
        raise typer.Exit(code=1)


def apply_files(
    t: Target, paths: list[Path], by: str, config: Path | None = None
) -> tuple[list[str], list[str]]:
    """Validate every campaign first, then store each (definition, templates, static list)
    and bring its schedule in line. Returns (problems, what was applied): nothing is applied
    when anything is wrong, and a campaign the status rules refuse once its turn comes
    (changed since it was checked: an occurrence started, say) is a problem, the others
    applied."""
    from kizuna.services.campaign_admin import StatusConflict

    campaigns, problems, where = _load_all(paths, config)
    if problems:
        return problems, []
    applied = []
    admin = t.admin(config)
    for campaign, _ in campaigns:  # on a channel the stack sends on
        problems += [
            f"{where[campaign.id]}: {issue.message}"
            for issue in admin.rules.channel_issues(campaign)
        ]
    if problems:
        return problems, []
    now = _now()
    # re-applied unchanged, ended or paused (or scheduled, its time since passed): left as
    # they are
    kept: dict[str, str] = {}
    for campaign, templates in campaigns:  # the status rules, before anything is written
        current = admin.store.get_definition(campaign.id)
        left = admin.left_as_is(campaign, templates, now, current)
        if left:
            kept[campaign.id] = left
            continue
        problem = admin.apply_problem(campaign, templates, now, current)
        if problem:
            problems.append(f"{where[campaign.id]}: {problem}")
    if problems:
        return problems, []
    for campaign, templates in campaigns:
        if campaign.id in kept:
            applied.append(f"left {campaign.id} as it is ({kept[campaign.id]})")
            continue
        if campaign.audience.customer_list:
            from kizuna.campaigns.engine import list_key

            source = where[campaign.id].parent / campaign.audience.customer_list
            t.client("s3").put_object(
                Bucket=t.output("AnalyticsBucketName"),
                Key=list_key(campaign.id),
                Body=source.read_bytes(),
            )
        try:
            version = admin.save(campaign, templates, by, now)
        except StatusConflict as exc:  # changed since checked: an occurrence started, say
            problems.append(f"{where[campaign.id]}: {exc}")
            continue
        # as written: kept paused by a pause made before apply read it, or while it wrote
        stored = admin.store.get_definition(campaign.id)
        if stored is not None and stored.status == "paused" and campaign.status == "scheduled":
            applied.append(
                f"applied {campaign.id} (version {version}, paused: it was paused, so it stays "
                f"paused; resume it in the console, the API or `kizuna campaigns resume "
                f"{campaign.id}`)"
            )
        else:
            applied.append(f"applied {campaign.id} (version {version}, {campaign.status})")
    return problems, applied


@campaigns_app.command("list")
def list_campaigns(ctx: typer.Context) -> None:
    """Every campaign applied to the stack."""
    t: Target = ctx.obj
    table = Table(title="campaigns")
    for column in ("id", "status", "schedule", "channels", "version", "updated"):
        table.add_column(column)
    for s in t.store.list_definitions():
        c = s.campaign
        table.add_row(
            c.id,
            s.status,
            c.schedule.type,
            ", ".join(map(str, c.channels)),
            str(s.version),
            f"{s.updated_at} by {s.updated_by}",
        )
    out.print(table)


@campaigns_app.command("show")
def show(ctx: typer.Context, campaign_id: CampaignName) -> None:
    """A campaign's definition, schedule and occurrences."""
    t: Target = ctx.obj
    s = t.stored(campaign_id)
    out.print_json(s.campaign.model_dump_json())
    out.print(f"status: {s.status}  version: {s.version}  templates: {len(s.templates)} files")
    schedule = t.schedules.get(campaign_id)
    if schedule:
        out.print(f"schedule: {schedule['ScheduleExpression']} {schedule['State']}")
    _occurrences_table(t.store.list_occurrences(campaign_id))


def _occurrences_table(occurrences: list[dict[str, Any]]) -> None:
    from kizuna.adapters.campaigns import COUNTERS

    table = Table(title="occurrences")
    for column in ("occurrence", "status", *COUNTERS, "winner"):
        table.add_column(column, justify="right" if column in COUNTERS else "left")
    for occ in occurrences:
        table.add_row(
            occ["occurrence"],
            str(occ.get("status", "")),
            *(str(occ.get(c, 0)) for c in COUNTERS),
            str(occ.get("winner") or ""),
        )
    out.print(table)


def _set_status(ctx: typer.Context, campaign_id: str, action: str) -> None:
    from kizuna.services.campaign_admin import NotFound, StatusConflict

    t: Target = ctx.obj
    try:
        old, new = t.admin().transition(campaign_id, action, _now())
    except (NotFound, StatusConflict) as exc:
        raise typer.BadParameter(str(exc), param_hint="CAMPAIGN") from exc
    out.print(f"{campaign_id}: {old} -> {new}")


@campaigns_app.command("pause")
def pause(ctx: typer.Context, campaign_id: CampaignName) -> None:
    """Pause: the next batch of a running occurrence waits (no schedule fires) until resumed."""
    _set_status(ctx, campaign_id, "pause")


@campaigns_app.command("resume")
def resume(ctx: typer.Context, campaign_id: CampaignName) -> None:
    """Resume a paused campaign: waiting batches go on, the schedule is enabled again."""
    _set_status(ctx, campaign_id, "resume")


@campaigns_app.command("cancel")
def cancel(ctx: typer.Context, campaign_id: CampaignName) -> None:
    """Cancel: the next batch sends nothing, and the schedule is disabled."""
    _set_status(ctx, campaign_id, "cancel")


@campaigns_app.command("estimate")
def estimate(ctx: typer.Context, campaign_id: CampaignName, config: Config = None) -> None:
    """The audience now, and the channel each member would get (caps and quiet hours as now)."""
    t: Target = ctx.obj
    result = t.admin(config).dry_run(t.stored(campaign_id), _now(), samples=False)
    _print_dry_run(campaign_id, result, samples=False)


@campaigns_app.command("send")
def send(
    ctx: typer.Context,
    campaign_id: CampaignName,
    dry_run_only: Annotated[
        bool, typer.Option("--dry-run", help="decide and render, call no provider")
    ] = False,
    config: Config = None,
) -> None:
    """Send an occurrence now (the campaign must be scheduled), or with --dry-run report what
    would be sent: audience by channel, suppressions by reason, a rendered sample per locale
    and channel."""
    t: Target = ctx.obj
    stored = t.stored(campaign_id)
    if dry_run_only:
        result = t.admin(config).dry_run(stored, _now())
        _print_dry_run(campaign_id, result, samples=True)
        return
    if stored.status != "scheduled":
        raise typer.BadParameter(f"{campaign_id} is {stored.status}: only a scheduled campaign")
    now = _now()
    from kizuna.campaigns.model import occurrence_id

    existing = t.store.get_occurrence(campaign_id, occurrence_id(now))
    if existing is not None:  # this minute's occurrence runs once: a new execution would stop
        raise typer.BadParameter(
            f"occurrence {occurrence_id(now)} of {campaign_id} is {existing.get('status')} "
            "(an occurrence is one minute of a schedule and runs once): send again in a "
            "minute",
            param_hint="CAMPAIGN",
        )
    execution = t.client("stepfunctions").start_execution(
        stateMachineArn=t.output("CampaignStateMachineArn"),
        name=f"{campaign_id[:40]}-{occurrence_id(now)}-now",
        input=json.dumps({"campaign_id": campaign_id, "scheduled_time": now.isoformat()}),
    )
    out.print(f"started {execution['executionArn']}")


OCCURRENCE_ID = re.compile(r"[0-9]{8}T[0-9]{4}Z")  # kizuna.campaigns.model.occurrence_id
CAMPAIGN_ID = re.compile(r"[a-z][a-z0-9-]{1,39}")  # kizuna.campaigns.model.CampaignId


def _campaign_arg(value: str) -> str:
    if not CAMPAIGN_ID.fullmatch(value):
        raise typer.BadParameter(f"{value!r} is not a campaign id")
    return value


CLOSE_REASON_MAX = 200


def _occurrence_arg(value: str) -> str:
    if not OCCURRENCE_ID.fullmatch(value):
        raise typer.BadParameter(
            f"{value!r} is not an occurrence: its scheduled minute in UTC, as `show` lists it "
            "(e.g. 20260112T0100Z)"
        )
    return value


def _reason_arg(value: str) -> str:
    if not value.strip() or len(value) > CLOSE_REASON_MAX or not value.isprintable():
        raise typer.BadParameter(f"1-{CLOSE_REASON_MAX} printable characters on one line")
    return value


@campaigns_app.command("close")
def close(
    ctx: typer.Context,
    campaign_id: Annotated[str, typer.Argument(help="campaign id", callback=_campaign_arg)],
    occurrence: Annotated[
        str,
        typer.Argument(
            help="the occurrence, as `show` lists it (e.g. 20260112T0100Z)",
            callback=_occurrence_arg,
        ),
    ],
    reason: Annotated[
        str,
        typer.Option(
            "--reason",
            help="why (kept as its stop reason; one the circuit breaker stopped keeps its own)",
            callback=_reason_arg,
        ),
    ],
    unnoted: Annotated[
        bool,
        typer.Option(
            "--unnoted",
            help="close an occurrence started before executions were noted (check first "
            "that no execution runs it)",
        ),
    ] = False,
) -> None:
    """Close an occurrence whose execution ended without completing it (failed, timed out
    or aborted, and not redriven): stopped, with your reason; campaign.completed published;
    its frozen audience deleted. Members not yet sent stay unsent. Refused until its
    execution has ended 15 minutes ago (batches in flight)."""
    from kizuna.adapters.campaigns import CampaignEvents
    from kizuna.adapters.s3 import S3Objects
    from kizuna.adapters.stepfunctions import Executions
    from kizuna.runtime.settings import KIZUNA_EVENT_SOURCE
    from kizuna.services.campaign import CloseRefused, OccurrenceEnd

    t: Target = ctx.obj
    end = OccurrenceEnd(
        t.store,
        CampaignEvents(t.client("events"), t.output("EventBusName"), KIZUNA_EVENT_SOURCE),
        S3Objects(t.client("s3"), t.output("AnalyticsBucketName")),
    )
    try:
        closed = end.close(
            campaign_id,
            occurrence,
            reason,
            _now(),
            Executions(t.client("stepfunctions")),
            unnoted=unnoted,
        )
    except CloseRefused as exc:
        raise typer.BadParameter(str(exc), param_hint="OCCURRENCE") from exc
    counts = ", ".join(f"{k} {closed.get(k, 0)}" for k in ("audience", "sent", "suppressed"))
    out.print(f"{campaign_id} {occurrence}: {closed['was']} -> {closed['status']} ({counts})")
    out.print(f"manifest objects deleted: {closed['manifest_objects_deleted']}")


def _print_dry_run(campaign_id: str, result: DryRun, *, samples: bool) -> None:
    table = Table(title=f"{campaign_id}: audience {result.audience}")
    table.add_column("decision")
    table.add_column("customers", justify="right")
    for status, n in result.by_status.most_common():
        table.add_row(status, str(n))
    for channel, n in result.by_channel.most_common():
        table.add_row(f"send on {channel}", str(n))
    for reason, n in result.by_reason.most_common():
        table.add_row(reason, str(n))
    out.print(table)
    if not samples:
        return
    for (locale, channel), parts in sorted(result.samples.items()):
        out.rule(f"{locale} / {channel}")
        for part, text in parts.items():
            out.print(f"[bold]{part}[/bold]", markup=True)
            out.print(text, markup=False, highlight=False)


@campaigns_app.command("report")
def report(ctx: typer.Context, campaign_id: CampaignName) -> None:
    """Per occurrence: audience, sent by channel, suppressed and deferred by reason, holdout,
    per variant opens, clicks, conversions, revenue (net of refunds) and lift against the
    holdout; the winner, and each look a sequential winner test took with the decision."""
    from kizuna_tools.reports.build import ORDER_KINDS, Ledger
    from kizuna_tools.reports.campaigns import campaign_reports

    t: Target = ctx.obj
    stored = t.stored(campaign_id)
    items = list(t.customers.scan_activity(("MSG", *ORDER_KINDS)))
    orders = Ledger.from_items(i for i in items if i.get("kind") in ORDER_KINDS).orders
    occurrences = [{**o, "campaign_id": campaign_id} for o in t.store.list_occurrences(campaign_id)]
    goal = stored.campaign.goal
    for r in campaign_reports(
        (i for i in items if i.get("campaign") == campaign_id),
        orders,
        occurrences,
        {campaign_id: goal.within_days if goal else 7},
        {campaign_id: dict(goal.conditions) if goal else {}},
    ):
        out.rule(f"{r.campaign} {r.occurrence} ({r.status})")
        out.print(
            f"audience {r.audience}, holdout {r.holdout}, sent {r.sent} "
            f"({', '.join(f'{c} {n}' for c, n in r.sent_by_channel.items()) or 'none'})"
        )
        for what, counts in (
            ("suppressed", r.suppressed_by_reason),
            ("deferred", r.deferred_by_reason),
            ("failed", r.failed_by_reason),
        ):
            if counts:
                out.print(f"{what}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        table = Table()
        for column in ("variant", "recipients", "opens", "clicks", "conversions", "revenue"):
            table.add_column(column, justify="right")
        table.add_column("assigned (converted)", justify="right")
        table.add_column("lift vs holdout, all assigned (95% CI)")
        for v in r.variants:
            lift = v.lift
            shown = "-"
            if lift is not None and lift.absolute_lift is not None and lift.ci is not None:
                shown = (
                    f"{lift.absolute_lift * 100:+.1f} pts "
                    f"[{lift.ci.low * 100:+.1f}, {lift.ci.high * 100:+.1f}]"
                )
            table.add_row(
                v.arm,
                str(v.recipients),
                str(v.opens),
                str(v.clicks),
                str(v.conversions),
                f"{v.revenue:,.0f}",
                f"{v.assigned} ({v.assigned_conversions})",
                shown,
            )
        out.print(table)
        for line in r.look_lines():
            out.print(line, markup=False, highlight=False, soft_wrap=True)
        if r.winner_line:
            out.print(r.winner_line, markup=False, highlight=False, soft_wrap=True)
