"""What the measured pipeline would cost on AWS, per 1M inbound events and per 1M delivered
messages, by service — beside the channels' own prices (the floor) and SaaS list prices.

Pure functions: measured counts and prices in, dollars out (no I/O but :func:`load_prices`).
The inputs are what ``bench/pipeline_bench.py`` measures on the local runtime:

* AWS API calls by function and operation, with the items each DynamoDB call touched and
  the entries of each PutEvents;
* Lambda invocations and mean handler milliseconds per function, and each function's
  memory size and architecture from the synthesized CDK template;
* messages EventBridge put on each SQS queue; Step Functions states entered per execution.

Assumptions (stated again in docs/PERFORMANCE.md):

* DynamoDB writes: the write units the run measured (``bench.write_units``: each item's
  size before and after, in 1 KB units, twice in a transaction, and every global secondary
  index entry the write puts, rewrites or deletes) where a result carries them; else (older
  results, the previous engine's tree) a write of an item is 1 WRU (a BatchWriteItem of N
  items is N WRUs, a transactional write 2 per item) and indexes are left out.
* DynamoDB reads: items are at most 1 KB; a point read is 1 RRU strongly consistent,
  0.5 eventually consistent; a Query or Scan reads 4 items per 4 KB unit (0.5 RRU per
  eventually consistent unit), at least half a unit per call.
* Lambda duration is the mean handler time measured on moto (moto's in-process latency,
  not DynamoDB's: likely an over-estimate) with no cold starts; requests are invocations.
* SQS: one SendMessage per message EventBridge delivers, and one ReceiveMessage and one
  DeleteMessageBatch per invocation of a queue-fed function; idle long-polling excluded.
* EventBridge: one custom event per inbound event put by the producer, plus each derived
  entry put by the functions (64 KB chunks: every entry is far smaller). Rule matching and
  delivery to SQS targets are not billed on custom buses.
* Step Functions Standard: one billed transition per state entered.
* Not priced: CloudWatch Logs and metrics, X-Ray (off), Secrets Manager and SSM reads
  (cached per container), storage, data transfer, the event archive, free tiers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PRICES_FILE = Path(__file__).with_name("prices.yaml")

# Functions that run whether or not a message results (their cost is per inbound event),
# and the journey functions (their cost is per delivered message).
PROCESSING = ("ingest", "evaluate", "sweep", "score", "feedback", "unsubscribe")
DELIVERY = ("journey", "send")
# Functions fed by an SQS queue (the event source mapping receives and deletes per batch).
QUEUE_FED = ("ingest", "evaluate", "feedback")
# Outbox channel -> price key in prices.yaml (SMS: the demo shop's customers are in Japan).
# Direct mail: postage per printed piece (``dm_postage``, in JPY like LINE).
CHANNEL_PRICE = {
    "email": "email_ses",
    "sms": "sms_japan",
    "push": "push",
    "line": "line_japan",
    "webhook": "webhook",  # data transfer out only: the endpoint is the shop's own
    "dm": "dm_postage",
}

WRITES = ("PutItem", "UpdateItem", "DeleteItem")
POINT_READS = ("GetItem", "BatchGetItem")
MILLION = 1_000_000


# -- prices ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SaasPrice:
    name: str
    plan: str
    price_per_month: float | None
    contacts: int | None
    url: str

    def per_contact_month(self) -> float | None:
        if self.price_per_month is None or not self.contacts:
            return None
        return self.price_per_month / self.contacts

    def per_million_messages(self, messages_per_contact_month: float) -> float | None:
        """List price per contact a month spread over that many messages a contact."""
        per_contact = self.per_contact_month()
        if per_contact is None:
            return None
        return per_contact / messages_per_contact_month * MILLION


@dataclass(frozen=True)
class Prices:
    lambda_request: float
    lambda_gb_second: Mapping[str, float]  # architecture -> USD per GB-s
    dynamodb_wru: float
    dynamodb_rru: float
    eventbridge_event: float
    stepfunctions_transition: float
    sqs_request: float
    channels: Mapping[str, float]  # price key -> USD per message
    scheduler_invocation: float = 0.0  # EventBridge Scheduler (journey timers)
    saas: tuple[SaasPrice, ...] = ()
    messages_per_contact_month: float = 10.0
    read: str = ""


def _price(entry: Mapping[str, Any], per: float = 1.0) -> float:
    return float(entry["price"]) / per


def prices_from(data: Mapping[str, Any]) -> Prices:
    """Prices per single unit from the structure of prices.yaml."""
    aws = data["aws"]
    jpy = float(data["jpy_per_usd"])
    channels: dict[str, float] = {}
    for key, entry in data["channels"].items():
        channels[key] = (
            float(entry["price_jpy"]) / jpy if "price_jpy" in entry else float(entry["price"])
        )
    saas = data.get("saas", {})
    vendors = tuple(
        SaasPrice(
            name=name,
            plan=str(entry.get("plan", "")),
            price_per_month=None
            if entry.get("price_per_month") is None
            else float(entry["price_per_month"]),
            contacts=None if entry.get("contacts") is None else int(entry["contacts"]),
            url=str(entry.get("url", "")),
        )
        for name, entry in saas.items()
        if isinstance(entry, Mapping)
    )
    return Prices(
        lambda_request=_price(aws["lambda_requests_per_million"], MILLION),
        lambda_gb_second={
            "arm64": _price(aws["lambda_gb_second_arm64"]),
            "x86_64": _price(aws["lambda_gb_second_x86_64"]),
        },
        dynamodb_wru=_price(aws["dynamodb_on_demand_write_request_unit_per_million"], MILLION),
        dynamodb_rru=_price(aws["dynamodb_on_demand_read_request_unit_per_million"], MILLION),
        scheduler_invocation=_price(aws["scheduler_invocations_per_million"], MILLION),
        eventbridge_event=_price(aws["eventbridge_custom_events_per_million"], MILLION),
        stepfunctions_transition=_price(
            aws["stepfunctions_standard_transitions_per_thousand"], 1000
        ),
        sqs_request=_price(aws["sqs_standard_requests_per_million"], MILLION),
        channels=channels,
        saas=vendors,
        messages_per_contact_month=float(saas.get("messages_per_contact_month", 10)),
        read=str(data.get("read", "")),
    )


def load_prices(path: Path = PRICES_FILE) -> Prices:
    return prices_from(yaml.safe_load(path.read_text()))


# -- usage ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class OpCount:
    """One operation's calls, the items they touched, and how many were read consistently;
    for a write, the write units measured (the table's and its indexes',
    :mod:`bench.write_units`) when the run measured them."""

    calls: float
    items: float
    strong_items: float = 0.0
    write_units: float | None = None


@dataclass(frozen=True)
class FunctionUse:
    invocations: float
    mean_ms: float
    memory_mb: int
    architecture: str = "arm64"


@dataclass
class Usage:
    """Everything one side of the pipeline used in a measured run."""

    functions: dict[str, FunctionUse] = field(default_factory=dict)
    dynamodb: dict[str, OpCount] = field(default_factory=dict)  # operation -> counts
    eventbridge_events: float = 0.0
    sqs_requests: float = 0.0
    transitions: float = 0.0
    scheduler_invocations: float = 0.0  # journey timers (one invocation each)
    channel_messages: dict[str, float] = field(default_factory=dict)  # price key -> messages


def dynamodb_units(operation: str, count: OpCount) -> tuple[float, float]:
    """(WRU, RRU) of an operation's calls: a write's measured units (table and indexes)
    when there are, else one an item of at most 1 KB (two in a transaction), no index."""
    if count.write_units is not None and _is_write(operation):
        return count.write_units, 0.0
    if operation in WRITES or operation == "BatchWriteItem":
        return count.items, 0.0
    if operation == "TransactWriteItems":
        return 2 * count.items, 0.0
    if operation == "TransactGetItems":
        return 0.0, 2 * count.items
    if operation in POINT_READS:
        return 0.0, count.strong_items + 0.5 * (count.items - count.strong_items)
    if operation in ("Query", "Scan"):
        units = count.strong_items / 4 + (count.items - count.strong_items) / 8
        return 0.0, max(units, 0.5 * count.calls)
    return 0.0, 0.0  # DescribeTable and the like: not billed


def _is_write(operation: str) -> bool:
    return operation in WRITES or operation in ("BatchWriteItem", "TransactWriteItems")


def lambda_cost(use: FunctionUse, prices: Prices) -> tuple[float, float]:
    """(requests, compute) in USD: GB-s = invocations x seconds x MB / 1024."""
    gb_seconds = use.invocations * use.mean_ms / 1000 * use.memory_mb / 1024
    return use.invocations * prices.lambda_request, gb_seconds * prices.lambda_gb_second[
        use.architecture
    ]


def cost_by_service(usage: Usage, prices: Prices) -> dict[str, float]:
    """USD by service for everything in ``usage``."""
    requests = compute = 0.0
    for use in usage.functions.values():
        r, c = lambda_cost(use, prices)
        requests += r
        compute += c
    wru = rru = 0.0
    for operation, count in usage.dynamodb.items():
        w, r = dynamodb_units(operation, count)
        wru += w
        rru += r
    return {
        "Lambda requests": requests,
        "Lambda compute": compute,
        "DynamoDB writes": wru * prices.dynamodb_wru,
        "DynamoDB reads": rru * prices.dynamodb_rru,
        "EventBridge": usage.eventbridge_events * prices.eventbridge_event,
        "SQS": usage.sqs_requests * prices.sqs_request,
        "Step Functions": usage.transitions * prices.stepfunctions_transition,
        "EventBridge Scheduler": usage.scheduler_invocations * prices.scheduler_invocation,
        "channel fees": sum(n * prices.channels[key] for key, n in usage.channel_messages.items()),
    }


def per_million(costs: Mapping[str, float], units: float) -> dict[str, float]:
    """Costs of a run spread over its units, times a million; with a ``total``."""
    out = {k: v / units * MILLION if units else 0.0 for k, v in costs.items()}
    out["total"] = sum(out.values())
    return out


# -- from a pipeline_bench result --------------------------------------------------------------
def _op_counts(items: Mapping[str, Mapping[str, float]]) -> dict[str, OpCount]:
    """``{"dynamodb:GetItem": {"calls", "items", "strong"}}`` -> DynamoDB OpCounts."""
    out: dict[str, OpCount] = {}
    for key, c in items.items():
        service, operation = key.split(":", 1)
        if service == "dynamodb":
            measured = "wru_table" in c or "wru_index" in c
            out[operation] = OpCount(
                float(c.get("calls", 0)),
                float(c.get("items", 0)),
                float(c.get("strong", 0)),
                float(c.get("wru_table", 0)) + float(c.get("wru_index", 0)) if measured else None,
            )
    return out


def _merge(a: Mapping[str, OpCount], b: Mapping[str, OpCount]) -> dict[str, OpCount]:
    out = dict(a)
    for op, c in b.items():
        prev = out.get(op, OpCount(0, 0, 0))
        units: float | None = None
        if prev.write_units is not None or c.write_units is not None:
            units = dynamodb_units(op, prev)[0] + dynamodb_units(op, c)[0]
        out[op] = OpCount(
            prev.calls + c.calls,
            prev.items + c.items,
            prev.strong_items + c.strong_items,
            units,
        )
    return out


def journey_transitions(pipe: Mapping[str, Any]) -> tuple[float, float]:
    """(transitions per journey entry, scoring transitions in the run).

    Per entry: every state the journey machines entered (the mean per finished execution
    times their executions: executions still waiting are assumed to finish like the
    finished ones), over the journeys started — one execution carries a cohort of entries,
    so executions and entries differ. Campaign machines are neither (see
    :func:`delivery_transitions`).
    """
    table = pipe["transitions"]
    journeys = [p for p in table if "Scoring" not in p and "Campaign" not in p]
    entered = sum(table[p]["mean"] * table[p]["executions"] for p in journeys)
    scoring = sum(t["mean"] * t["executions"] for p, t in table.items() if "Scoring" in p)
    started = float(pipe.get("journeys_started") or 0)
    return (entered / started if started else 0.0), scoring


def delivery_transitions(pipe: Mapping[str, Any]) -> float:
    """Every state the machines that deliver (journeys and campaigns) entered in the run."""
    table = pipe["transitions"]
    return float(sum(t["mean"] * t["executions"] for p, t in table.items() if "Scoring" not in p))


def usages(pipe: Mapping[str, Any]) -> tuple[Usage, Usage]:
    """(processing, delivery) usage of a pipeline_bench result (it must carry ``items``,
    ``functions`` and ``queue_messages``: the fields the cost model needs)."""
    items: Mapping[str, Mapping[str, Mapping[str, float]]] = pipe["items"]
    sizes: Mapping[str, Mapping[str, Any]] = pipe["functions"]

    def usage(roles: tuple[str, ...]) -> Usage:
        u = Usage()
        for role in roles:
            n = float(pipe["invocations"].get(role, 0))
            if n:
                size = sizes.get(role, {})
                u.functions[role] = FunctionUse(
                    invocations=n,
                    mean_ms=float(pipe["mean_handler_ms"].get(role, 0.0)),
                    memory_mb=int(size.get("memory_mb", 128)),
                    architecture=str(size.get("architecture", "arm64")),
                )
            ops = items.get(role, {})
            u.dynamodb = _merge(u.dynamodb, _op_counts(ops))
            u.eventbridge_events += float(ops.get("events:PutEvents", {}).get("items", 0))
            if role in QUEUE_FED:
                u.sqs_requests += float(pipe["queue_messages"].get(role, 0)) + 2 * n
        return u

    processing = usage(PROCESSING)
    processing.eventbridge_events += float(pipe["events"])  # the producer's inbound events
    _, scoring = journey_transitions(pipe)
    processing.transitions = scoring
    delivery = usage(DELIVERY)
    delivery.transitions = delivery_transitions(pipe)
    # journey timers, whoever set them (evaluate a cohort's, a step a child's): each runs once
    delivery.scheduler_invocations = float(
        sum(
            int(pipe.get("calls", {}).get(role, {}).get("scheduler:CreateSchedule", 0))
            for role in ("evaluate", *DELIVERY)
        )
    )
    delivery.channel_messages = {
        CHANNEL_PRICE[ch]: float(n) for ch, n in pipe["summary"]["outbox"].items() if n
    }
    return processing, delivery


def floor_per_million(prices: Prices) -> dict[str, float]:
    """Each channel's own price per 1M messages."""
    return {key: price * MILLION for key, price in prices.channels.items()}


def saas_per_million(prices: Prices) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for vendor in prices.saas:
        out[vendor.name] = {
            "plan": vendor.plan,
            "per_contact_month": vendor.per_contact_month(),
            "per_million_messages": vendor.per_million_messages(prices.messages_per_contact_month),
            "url": vendor.url,
        }
    return out


def pipeline_costs(pipe: Mapping[str, Any], prices: Prices) -> dict[str, Any]:
    """Per 1M inbound events, per 1M order events and per 1M delivered messages, by service.

    * processing (ingest, evaluate, sweeps, scoring, feedback) is spread over the inbound
      events, and, for the "order events" figure, over the order events alone (everything
      the other events cost charged to the orders: an upper bound per order);
    * delivery (journey helper, send, the journeys' transitions, channel fees) over the
      delivered messages; ``all_in`` per message adds the processing of every event too.
    """
    processing, delivery = usages(pipe)
    p_cost = cost_by_service(processing, prices)
    d_cost = cost_by_service(delivery, prices)
    messages = float(sum(pipe["summary"]["outbox"].values()))
    orders = float(pipe.get("event_types", {}).get("order.placed", 0))
    all_in = {k: p_cost[k] + d_cost[k] for k in p_cost}
    fees = d_cost["channel fees"]
    return {
        "per_million_inbound_events": per_million(p_cost, float(pipe["events"])),
        "per_million_order_events": per_million(p_cost, orders) if orders else None,
        "per_million_messages": per_million(d_cost, messages),
        "per_million_messages_all_in": per_million(all_in, messages),
        "mix_floor_per_million_messages": fees / messages * MILLION if messages else 0.0,
        "floor_per_million": floor_per_million(prices),
        "saas_per_million_messages": saas_per_million(prices),
        "messages_per_contact_month": prices.messages_per_contact_month,
        "units": {
            "inbound_events": pipe["events"],
            "order_events": orders,
            "journeys_started": pipe["journeys_started"],
            "messages": messages,
            "transitions_per_entry": journey_transitions(pipe)[0],
        },
        "prices_read": prices.read,
    }


# -- a campaign run (bench/campaign_bench.py) ---------------------------------------------------
@dataclass(frozen=True)
class S3RequestPrices:
    """S3 Standard request prices, USD per request (us-east-1; not in prices.yaml yet).

    https://aws.amazon.com/s3/pricing/ as published ($0.005 per 1,000 PUT, COPY, POST or
    LIST requests; $0.0004 per 1,000 GET and other requests), written down 2026-11-24."""

    put_copy_post_list: float = 0.005 / 1000
    get_and_other: float = 0.0004 / 1000


S3_PRICES = S3RequestPrices()
S3_PUT_TIER = ("PutObject", "CopyObject", "PostObject", "ListObjects", "ListObjectsV2")


def campaign_costs(
    run: Mapping[str, Any], prices: Prices, s3: S3RequestPrices = S3_PRICES
) -> dict[str, Any]:
    """Platform USD per 1M delivered messages, by service, of a measured send path: the
    campaign function's run (or the journey path measured beside it), channel fees excluded.

    ``run`` holds, for the functions of the path: ``invocations``, ``handler_seconds``,
    ``memory_mb`` and ``architecture`` by function; ``calls`` by ``service:Operation``;
    ``items`` (``dynamodb:Op`` and ``events:PutEvents`` -> calls, items, strong);
    ``transitions`` (``states_entered``); ``delivered``; optionally ``trigger_events`` (events
    put on the bus to start the path, fed to ``queue_fed`` functions through SQS).
    """
    usage = Usage()
    architecture: Mapping[str, str] = run.get("architecture", {})
    for fn, n in run["invocations"].items():
        if n:
            usage.functions[fn] = FunctionUse(
                invocations=float(n),
                mean_ms=1000 * float(run["handler_seconds"].get(fn, 0.0)) / float(n),
                memory_mb=int(run["memory_mb"].get(fn, 128)),
                architecture=str(architecture.get(fn, "arm64")),
            )
    items: Mapping[str, Mapping[str, float]] = run.get("items", {})
    usage.dynamodb = _op_counts(items)
    triggers = float(run.get("trigger_events", 0))
    usage.eventbridge_events = float(items.get("events:PutEvents", {}).get("items", 0)) + triggers
    for fn in QUEUE_FED:
        n = float(run["invocations"].get(fn, 0))
        if n:
            usage.sqs_requests += triggers + 2 * n
    usage.transitions = float(run["transitions"]["states_entered"])
    costs = cost_by_service(usage, prices)
    costs.pop("channel fees")
    put_tier = get_tier = 0.0
    for key, n in run["calls"].items():
        service, operation = key.split(":", 1)
        if service == "s3":
            if operation in S3_PUT_TIER:
                put_tier += float(n)
            else:
                get_tier += float(n)
    costs["S3 requests"] = put_tier * s3.put_copy_post_list + get_tier * s3.get_and_other
    delivered = float(run["delivered"])
    return {
        "per_million_messages": per_million(costs, delivered),
        "units": {
            "delivered": delivered,
            "transitions": usage.transitions,
            "s3_put_list_requests": put_tier,
            "s3_get_requests": get_tier,
            "eventbridge_events": usage.eventbridge_events,
            "lambda_gb_seconds": sum(
                u.invocations * u.mean_ms / 1000 * u.memory_mb / 1024
                for u in usage.functions.values()
            ),
        },
    }
