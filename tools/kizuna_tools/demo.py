"""``kizuna local run``: a synthetic shop replayed through the real app on the local runtime.

The synthesized CDK template is provisioned on moto in-process; the shop's events go onto
the bus hour by hour on a virtual clock, and everything downstream — ingest, derived
events, evaluate, journeys with their waits, sends on four channels, scheduled sweeps — is
the real code reacting. The summary is read back from the tables, the ledger and the
channels' outboxes.
"""

from __future__ import annotations

import json
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kizuna_tools.simulation import Shop

if TYPE_CHECKING:
    from kizuna.runtime.config import KizunaConfig
    from kizuna_tools.local.cloud import LocalCloud
    from kizuna_tools.local.engagement import EngagementModel
    from kizuna_tools.local.faults import FaultPlan


def checkout_config() -> dict[str, Any]:
    """This checkout's configuration (``cdk.json``'s ``kizuna:config``): the sample tea shop's,
    with rank thresholds a few months of the shop can reach."""
    from kizuna.programs.bundle import REPO_ROOT
    from kizuna_tools.project import CONTEXT_KEY

    config: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text(encoding="utf-8"))[
        "context"
    ][CONTEXT_KEY]
    return config


# The checkout's configuration and its local stack's context (tests; commands resolve theirs
# with kizuna_tools.project.project_config and local_context).
DEMO_CONFIG: dict[str, Any] = checkout_config()

# The simulated shop puts a batch of events on the bus (an hour's, or a day's in tests) before
# the times they carry: its producer clock runs up to a day ahead of the virtual clock. Only
# the simulation gets that allowance; a deployment and `kizuna local serve` keep the
# configuration's (five minutes by default, docs/EVENTS.md).
SHOP_CLOCK_SKEW: dict[str, Any] = {"max_future_skew_seconds": 86_400}


def simulation_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as the simulated shop runs with it: the shop's clock skew allowed, unless
    the configuration sets its own ``event_time``."""
    return {"event_time": SHOP_CLOCK_SKEW, **config}


# How the simulated recipients respond (kizuna_tools.local.engagement): email, push and LINE
# rates, then multipliers by RFM segment and by the send's hour in Tokyo. Opens and clicks in the
# demo's report are this model's, not anybody's behaviour (the report says so).
DEMO_SEGMENT_FACTORS: dict[str, float] = {
    "Champions": 1.5,
    "Loyal": 1.3,
    "Potential loyalist": 1.1,
    "Need attention": 0.9,
    "About to sleep": 0.8,
    "Can't lose": 0.8,
    "At risk": 0.7,
    "Hibernating": 0.5,
    "Lost": 0.3,
}
DEMO_HOUR_FACTORS: dict[int, float] = {
    **dict.fromkeys(range(0, 7), 0.5),
    **dict.fromkeys((12, 13), 1.2),
    **dict.fromkeys(range(19, 23), 1.3),
}
SIMULATED_BEHAVIOUR = (
    "Local runtime: deliveries, opens, clicks, bounces, complaints, push opens and LINE clicks "
    "are simulated "
    "behaviour (the engagement model of kizuna local run), not measured on real recipients."
)


def demo_engagement(seed: int) -> EngagementModel:
    """The demo's engagement model (kizuna_tools.local.engagement), seeded with the shop."""
    from kizuna_tools.local.engagement import ChannelRates, EngagementModel

    return EngagementModel(
        channels={
            "email": ChannelRates(open=0.35, click=0.2, bounce=0.01, complaint=0.001),
            "push": ChannelRates(open=0.08),  # opens only: a push has no link or bounce
            "line": ChannelRates(click=0.1),  # clicks of its tracked links only: no opens
        },
        segment_factors=DEMO_SEGMENT_FACTORS,
        hour_factors=DEMO_HOUR_FACTORS,
        time_zone="Asia/Tokyo",
        seed=seed,
    )


@dataclass
class DemoSummary:
    customers: int = 0
    events: int = 0
    journeys_started: int = 0
    holdouts: int = 0
    entries_skipped: dict[str, int] = field(default_factory=dict)
    conversions: dict[str, dict[str, int]] = field(default_factory=dict)
    messages: dict[str, dict[str, int]] = field(default_factory=dict)
    suppressed: dict[str, int] = field(default_factory=dict)
    deferred: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    outbox: dict[str, int] = field(default_factory=dict)
    dlq: dict[str, int] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=dict)
    segments: dict[str, int] = field(default_factory=dict)
    lifecycle: dict[str, int] = field(default_factory=dict)
    executions: dict[str, int] = field(default_factory=dict)
    api_calls: int = 0
    unsupported: list[str] = field(default_factory=list)
    days: int = 0
    wall_seconds: float = 0.0
    report: str | None = None  # the HTML report's path, when one was written
    campaigns: list[str] = field(default_factory=list)  # applied at the start
    # each campaign occurrence: status and counts by outcome, winner
    occurrences: dict[str, dict[str, Any]] = field(default_factory=dict)
    # faults injected (``--faults``): spec, total, by kind, by target; None without
    faults: dict[str, Any] | None = None
    # SES events the simulated recipients produced, by type; None with the model off
    engagement: dict[str, int] | None = None
    # direct mail's print files (s3://bucket/key of each CSV) and their rows
    print_files: dict[str, int] = field(default_factory=dict)
    # LINE message objects sent, by type (text, flex, image...), and one Flex alt text
    line_messages: dict[str, int] = field(default_factory=dict)
    line_flex_sample: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _table(cloud: Any, contains: str) -> str:
    found = cloud.find("AWS::DynamoDB::Table", contains)
    if not found:
        raise LookupError(f"no table like {contains!r} in the template")
    return str(found[0].logical_id)


def collect(cloud: Any, summary: DemoSummary, config: Mapping[str, Any]) -> DemoSummary:
    """Read what happened back from the tables, the ledger, the queues and the outboxes."""
    from kizuna.adapters.dynamodb import customer_from_item
    from kizuna.programs.view import lifecycle
    from kizuna.runtime.config import KizunaConfig

    cfg = KizunaConfig.model_validate(config)
    now = cloud.clock.now()
    ranks: Counter[str] = Counter()
    segments: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    customers = cloud.scan(_table(cloud, "Customers"))
    for item in customers:
        c = customer_from_item(item)
        ranks[c.rank or "none"] += 1
        segments[c.rfm_segment or "unscored"] += 1
        stages[lifecycle(c, now, cfg)] += 1
    messages: dict[str, Counter[str]] = defaultdict(Counter)
    suppressed: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    conversions: dict[str, Counter[str]] = defaultdict(Counter)
    started = holdouts = deferred = 0
    for item in cloud.scan(_table(cloud, "Activity")):
        kind = item.get("kind")
        if kind == "MSG":
            status = item.get("status")
            if status == "sent":
                messages[str(item["program"])][str(item["channel"])] += 1
            elif status == "suppressed":
                suppressed[str(item.get("reason"))] += 1
            elif status == "deferred":
                deferred += 1
            elif status == "failed":
                failed[str(item.get("reason"))[:80]] += 1
        elif kind == "ENTRY":
            decision = item.get("decision")
            started += decision == "entered"
            holdouts += decision == "holdout"
            if decision == "skipped":
                skipped[str(item.get("reason"))] += 1
        elif kind == "CONV":
            arm = "holdout" if item.get("reason") == "holdout" else "treated"
            conversions[str(item["program"])][arm] += 1
    summary.customers = len(customers)
    summary.journeys_started = started
    summary.holdouts = holdouts
    summary.entries_skipped = dict(skipped.most_common())
    summary.conversions = {p: dict(c) for p, c in sorted(conversions.items())}
    summary.messages = {p: dict(c) for p, c in sorted(messages.items())}
    summary.suppressed = dict(suppressed.most_common())
    summary.deferred = deferred
    summary.failed = dict(failed.most_common())
    summary.outbox = {
        ch: len(cloud.outbox(ch)) for ch in ("email", "sms", "push", "line", "webhook")
    }
    summary.occurrences = campaign_occurrences(cloud)
    summary.dlq = {name: len(msgs) for name, msgs in cloud.dlq_messages().items() if msgs}
    summary.ranks = dict(ranks.most_common())
    summary.segments = dict(segments.most_common())
    summary.lifecycle = dict(stages.most_common())
    executions: Counter[str] = Counter()
    for (_, status), n in cloud.execution_counts().items():
        executions[status] += n
    summary.executions = dict(executions)
    summary.api_calls = sum(cloud.api_calls.values())
    summary.faults = cloud.faults.summary() if cloud.faults is not None else None
    summary.engagement = cloud.summary()["engagement"]
    summary.unsupported = [f"{u[0]} {u[1]}" for u in cloud.unsupported]
    summary.print_files = print_files(cloud)
    summary.line_messages, summary.line_flex_sample = line_message_types(cloud.outbox("line"))
    return summary


def line_message_types(sent: list[dict[str, Any]]) -> tuple[dict[str, int], str | None]:
    """The LINE message objects sent, by type (a multicast counts once per recipient), and
    the alt text of one Flex message (what a phone's notification shows)."""
    types: Counter[str] = Counter()
    sample: str | None = None
    for request in sent:
        to = request.get("to")
        recipients = len(to) if isinstance(to, list) else 1
        for message in request.get("messages") or ():
            types[str(message.get("type"))] += recipients
            if message.get("type") == "flex" and sample is None:
                sample = str(message.get("altText"))
    return dict(types.most_common()), sample


def print_files(cloud: Any) -> dict[str, int]:
    """Direct mail's print files in the local print-file bucket, by their manifests: the
    CSV's ``s3://`` location -> its rows."""
    found = cloud.find("AWS::S3::Bucket", "PrintFiles")
    if not found:
        return {}
    bucket, s3 = found[0].name, cloud.client("s3")
    files: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="dm/"):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".manifest.json"):
                doc = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
                files[f"s3://{bucket}/{doc['file']}"] = int(doc["rows"])
    return dict(sorted(files.items()))


def run_demo(
    customers: int,
    days: int,
    seed: int = 42,
    progress: Callable[[int, int], None] | None = None,
    project_root: Path | None = None,
    report_dir: Path | None = None,
    config: Mapping[str, Any] | None = None,
    faults: FaultPlan | None = None,
    stall_timeout: float | None = None,
    engagement: bool = True,
) -> DemoSummary:
    """The synthetic shop on the local stack, with ``config`` (default: the project's
    configuration, as every command finds it). ``faults`` injects failures into the app's
    calls; ``stall_timeout`` (seconds, default the runtime's) ends the run with a report when
    nothing progresses that long; ``engagement`` turns the simulated recipients
    (:func:`demo_engagement`) on."""
    with demo_session(
        customers,
        days,
        seed,
        progress=progress,
        project_root=project_root,
        report_dir=report_dir,
        config=config,
        faults=faults,
        stall_timeout=stall_timeout,
        engagement=engagement,
    ) as (_, summary):
        return summary


@contextmanager
def demo_session(
    customers: int,
    days: int,
    seed: int = 42,
    progress: Callable[[int, int], None] | None = None,
    project_root: Path | None = None,
    report_dir: Path | None = None,
    config: Mapping[str, Any] | None = None,
    faults: FaultPlan | None = None,
    stall_timeout: float | None = None,
    engagement: bool = True,
) -> Iterator[tuple[LocalCloud, DemoSummary]]:
    """:func:`run_demo`, with the cloud still open after the simulated days (``kizuna local
    run --serve`` serves it); it closes when the block ends."""
    from kizuna_tools.local.app import default_project_root, kizuna_template
    from kizuna_tools.local.cloud import LocalCloud
    from kizuna_tools.local.watchdog import DEFAULT_STALL_TIMEOUT
    from kizuna_tools.project import project_config

    config = simulation_config(project_config().raw if config is None else config)

    # functions without metrics in an invocation: Powertools warns each time
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    started = time.perf_counter()
    shop = Shop(customers=customers, days=days, seed=seed, config=config)
    template = kizuna_template(local_context(config))
    summary = DemoSummary(days=days)
    root = project_root or default_project_root()
    with LocalCloud.from_template(
        template,
        project_root=root,
        start=shop.start,
        environment_overrides=QUIET,
        ttl_sweep_interval=timedelta(days=1),
        faults=faults,
        stall_timeout=stall_timeout if stall_timeout is not None else DEFAULT_STALL_TIMEOUT,
        engagement=demo_engagement(seed) if engagement else None,
    ) as cloud:
        prepare_channels(cloud)
        load_catalog(cloud)
        summary.campaigns = apply_campaigns(cloud, root)
        for day, entries in shop.days_of_events():
            by_hour: dict[int, list[dict[str, Any]]] = defaultdict(list)
            for entry in entries:
                at = datetime.fromisoformat(json.loads(entry["Detail"])["occurred_at"])
                hour = int((at - shop.start).total_seconds() // 3600)
                by_hour[max(hour, day * 24)].append(entry)
            for hour in sorted(by_hour):
                cloud.advance_to(shop.start + timedelta(hours=hour), wake="batch")
                cloud.put_events(by_hour[hour])
                summary.events += len(by_hour[hour])
                cloud.drain()
            cloud.advance_to(shop.start + timedelta(days=day + 1), wake="batch")
            if progress:
                progress(day + 1, days)
        collect(cloud, summary, config)
        if report_dir is not None:
            summary.report = str(
                write_demo_report(cloud, report_dir, root, config, simulated=engagement)
            )
        summary.wall_seconds = round(time.perf_counter() - started, 1)
        yield cloud, summary


EMAIL_FROM = "shop@example.com"
LINE_TOKEN_PARAMETER = "/kizuna/local/line-channel-token"  # noqa: S105 - a name
LINE_SECRET_PARAMETER = "/kizuna/local/line-channel-secret"  # noqa: S105 - a name
LINE_CHANNEL_SECRET = "local-line-channel-secret"  # noqa: S105 - the local runtime's
PUSH_APP_ID = "kizunalocalpushapp"
# All four channels on: push through a (faked) End User Messaging app, LINE with a token.
LOCAL_CHANNELS: dict[str, Any] = {
    "kizuna:emailFrom": EMAIL_FROM,
    "kizuna:pushApplicationId": PUSH_APP_ID,
    "kizuna:lineTokenParameter": LINE_TOKEN_PARAMETER,
    "kizuna:lineChannelSecretParameter": LINE_SECRET_PARAMETER,
}


def local_context(config: Mapping[str, Any], content_dir: Path | None = None) -> dict[str, Any]:
    """The CDK context of the local stack (``kizuna local run|serve``): ``config``, the four
    channels, and the folder of the shop's programs, templates and segments if not the
    checkout's."""
    context: dict[str, Any] = {"kizuna:config": dict(config), **LOCAL_CHANNELS}
    if content_dir is not None:
        context["kizuna:contentDir"] = str(Path(content_dir).resolve())
    return context


# the simulated shop's local stack (tests and benchmarks that replay the shop)
DEMO_CONTEXT: dict[str, Any] = local_context(simulation_config(DEMO_CONFIG))
# Handlers log at WARNING in the demo (the summary says what happened).
QUIET = {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}


def report_data(cloud: Any, project_root: Path, cfg: KizunaConfig | None = None) -> Any:
    """The reports' data, read back from the local cloud as from a deployed stack (its
    programs read with the configuration's vocabulary, ``cfg``)."""
    import boto3

    from kizuna.adapters.campaigns import CampaignStore
    from kizuna.adapters.dynamodb import DynamoStore, SnapshotStore
    from kizuna.adapters.s3 import S3Objects
    from kizuna.events.custom import vocabulary
    from kizuna.programs.loader import load_programs
    from kizuna_tools.local.template import REGION
    from kizuna_tools.reports.sources import load

    dynamodb = boto3.resource("dynamodb", region_name=REGION)
    activity = DynamoStore(
        dynamodb,
        cloud.physical_name(_table(cloud, "Customers")),
        cloud.physical_name(_table(cloud, "Activity")),
    )
    snapshots = SnapshotStore(dynamodb, cloud.physical_name(_table(cloud, "Snapshots")))
    bucket = cloud.find("AWS::S3::Bucket", "Analytics")[0].name
    export = S3Objects(boto3.client("s3", region_name=REGION), bucket)
    programs, _ = load_programs(project_root / "programs", vocab=vocabulary(cfg))
    windows = {p.id: p.goal.within_days for p in programs if p.goal}
    campaigns = CampaignStore(dynamodb, cloud.outputs["CampaignsTableName"])
    return load(activity, snapshots, export, windows, campaigns, programs)


def campaign_occurrences(cloud: Any) -> dict[str, dict[str, Any]]:
    """Every campaign occurrence so far: its status, counts and winner."""
    import boto3

    from kizuna.adapters.campaigns import COUNTERS, CampaignStore
    from kizuna_tools.local.template import REGION

    store = CampaignStore(
        boto3.resource("dynamodb", region_name=REGION), cloud.outputs["CampaignsTableName"]
    )
    found = {}
    for stored in store.list_definitions():
        for occ in store.list_occurrences(stored.campaign.id):
            found[f"{stored.campaign.id} {occ['occurrence']}"] = {
                "status": occ.get("status"),
                **{c: int(occ.get(c, 0)) for c in COUNTERS},
                "winner": occ.get("winner"),
            }
    return found


def apply_campaigns(cloud: Any, project_root: Path) -> list[str]:
    """``kizuna campaigns apply campaigns/`` on the local stack: stored and scheduled."""
    from kizuna_tools.cli.campaigns import Target, apply_files

    problems, applied = apply_files(
        Target.local(cloud.outputs), [project_root / "campaigns"], "demo"
    )
    if problems:
        raise ValueError("; ".join(problems))
    return applied


def write_demo_report(
    cloud: Any,
    directory: Path,
    project_root: Path,
    config: Mapping[str, Any],
    simulated: bool = True,
) -> Path:
    """The HTML report (and CSVs) of the simulated run, also published to the local
    analytics bucket (``reports/``) as ``kizuna report html --publish`` does, for the
    console and ``GET /api/reports/latest``. ``simulated``: engagement came from the
    engagement model, and the report's subtitle says so."""
    import boto3

    from kizuna.adapters.s3 import S3Objects
    from kizuna.runtime.config import KizunaConfig
    from kizuna_tools.local.template import REGION
    from kizuna_tools.reports.document import build_reports, write_report

    cfg = KizunaConfig.model_validate(config)
    reports = build_reports(report_data(cloud, project_root, cfg), cfg)
    bucket = cloud.find("AWS::S3::Bucket", "Analytics")[0].name
    published = S3Objects(boto3.client("s3", region_name=REGION), bucket)
    return write_report(
        reports,
        cfg,
        directory,
        "Kizuna demo: the synthetic shop",
        publish_to=published,
        subtitle=SIMULATED_BEHAVIOUR if simulated else None,
    )


def load_catalog(cloud: Any) -> int:
    """The shop's product feed into the products table (``kizuna import products``)."""
    import boto3

    from kizuna.adapters.dynamodb import ProductStore
    from kizuna_tools.local.template import REGION
    from kizuna_tools.products import ProductRecord
    from kizuna_tools.simulation import catalog

    table = cloud.physical_name(_table(cloud, "Products"))
    store = ProductStore(boto3.resource("dynamodb", region_name=REGION), table)
    return store.upsert_catalog(ProductRecord.model_validate(p) for p in catalog())


def prepare_channels(cloud: Any) -> None:
    """What an operator sets up once: a verified SES sender, the push app, the LINE token."""
    from kizuna_tools.local.backends import register_pinpoint_app

    cloud.client("sesv2").create_email_identity(EmailIdentity=EMAIL_FROM)
    register_pinpoint_app(PUSH_APP_ID, "kizuna-local")
    cloud.client("ssm").put_parameter(
        Name=LINE_TOKEN_PARAMETER,
        Type="SecureString",
        Value="local-line-channel-access-token",
        Overwrite=True,
    )
    cloud.client("ssm").put_parameter(
        Name=LINE_SECRET_PARAMETER, Type="SecureString", Value=LINE_CHANNEL_SECRET, Overwrite=True
    )
