"""``make bench`` (``make bench QUICK=1`` for CI): every benchmark in one run, printed and
written to docs/PERFORMANCE.md (QUICK: to out/PERFORMANCE.quick.md, so CI leaves the
repository clean). Figures are measured here, never asserted.

``--only`` runs some sections; ``--reuse out/bench.json`` takes the others from an earlier
run's results (the markdown says which and when), e.g. new benches merged into the figures
of a long full run without repeating it."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import (  # noqa: E402
    campaign_bench,
    coldstart_bench,
    cost_model,
    engine_compare,
    hotpath_bench,
    import_bench,
    pipeline_bench,
    render_bench,
    scoring_bench,
    shipped_bench,
)
from bench.common import print_table  # noqa: E402
from kizuna.programs.compiler import estimated_transitions  # noqa: E402
from kizuna.programs.loader import load_programs  # noqa: E402


def transitions_table() -> dict[str, dict[str, int]]:
    programs, _ = load_programs(ROOT / "programs")
    out = {p.id: estimated_transitions(p) for p in programs}
    print_table(
        "Step Functions transitions per entry, from the compiled state machine",
        ["program", "shortest path", "longest path"],
        [[p, t["min"], t["max"]] for p, t in sorted(out.items())],
    )
    return out


def _md_head(columns: str) -> list[str]:
    """A Markdown table's header row (``columns``: ``"a | b | c"``) and the rule under it."""
    return [f"| {columns} |", "|" + " --- |" * len(columns.split(" | "))]


def _md_header(results: dict[str, Any]) -> list[str]:
    command = results.get("command") or f"make bench{' QUICK=1' if results['quick'] else ''}"
    lines = [
        "# Performance",
        "",
        f"Measured by `{command}` on "
        f"{results['date']} ({results['machine']}). Everything runs in-process on moto, so "
        "absolute times are moto's, not AWS's; API calls per unit are what AWS would bill.",
    ]
    if results.get("reused"):
        kept = ", ".join(f"{s} ({d})" for s, d in results["reused"].items())
        lines += [
            "",
            f"Sections carried over from an earlier run (`bench/run.py --reuse`): {kept}.",
        ]
    return [*lines, ""]


def _md_import(imp: dict[str, Any]) -> list[str]:
    lines = [
        "## Bulk import of order history",
        "",
        *_md_head(
            "path | orders | rows/s | DynamoDB calls/order | PutItem/order | "
            "BatchWriteItem/order | item writes/order"
        ),
    ]
    for name, r in imp.items():
        lines.append(
            f"| {name} | {r['orders']} | {r['rows_per_s']:.0f} | "
            f"{r['calls_per_order']:.3f} | {r['put_item_per_order']:.3f} | "
            f"{r['batch_write_per_order']:.3f} | {r['item_writes_per_order']:.2f} |"
        )
    return [
        *lines,
        "",
        "The import writes each customer once for all their orders (one conditional "
        "PutItem) and each order once (BatchWriteItem, 25 a call): about one write per order "
        "plus one per customer. `one_by_one` is the same orders sent one at a time.",
        "",
    ]


def _md_pipeline(pipe: dict[str, Any]) -> list[str]:
    lines = [
        f"## The pipeline: {pipe['customers']} customers x {pipe['days']} days",
        "",
        *_md_head("wall s | simulated days/s | events | events/s | journeys | messages"),
        f"| {pipe['wall_seconds']:.0f} | {pipe['simulated_days_per_second']:.2f} | "
        f"{pipe['events']} | {pipe['events_per_second']:.0f} | {pipe['journeys_started']} | "
        f"{pipe['messages_sent']} |",
        "",
        "AWS API calls made by the handlers (the local runtime's own polling excluded):",
        "",
        *_md_head("per | calls | by operation"),
    ]
    for label, key, role, denom in (
        ("inbound event (ingest)", "calls_per_inbound_event", "ingest", pipe["events"]),
        (
            "journey entry (evaluate)",
            "calls_per_journey_entry",
            "evaluate",
            pipe["journeys_started"],
        ),
        ("delivered message (send)", "calls_per_message", "send", pipe["messages_sent"]),
    ):
        ops = ", ".join(
            f"{k.split(':')[-1]} {v / max(denom, 1):.2f}"
            for k, v in sorted(pipe["calls"][role].items(), key=lambda kv: -kv[1])[:6]
        )
        lines.append(f"| {label} | {pipe[key]:.2f} | {ops} |")
    lines += ["", *_md_head("function | invocations | mean handler ms (on moto)")]
    for role, n in sorted(pipe["invocations"].items()):
        lines.append(f"| {role} | {n} | {pipe['mean_handler_ms'].get(role, 0):.1f} |")
    return [*lines, ""]


def _md_transitions(results: dict[str, Any]) -> list[str]:
    lines = [
        "## Step Functions transitions per journey entry",
        "",
        *_md_head(
            "program | compiled: shortest | compiled: longest | measured mean | measured max | "
            "executions"
        ),
    ]
    measured = (results.get("pipeline") or {}).get("transitions", {})
    for program, est in sorted(results["transitions"].items()):
        m = measured.get(program, {})
        lines.append(
            f"| {program} | {est['min']} | {est['max']} | "
            f"{m.get('mean', 0):.1f} | {m.get('max', '-')} | {m.get('executions', 0)} |"
        )
    return [*lines, ""]


def _md_render(r: dict[str, float]) -> list[str]:
    lines = [
        "## Rendering",
        "",
        *_md_head("channel | renderer msg/s | naive baseline msg/s"),
    ]
    for channel in ("email", "sms", "push", "line"):
        lines.append(f"| {channel} | {r[channel]:,.0f} | {r[channel + '_naive']:,.0f} |")
    return [
        *lines,
        "",
        "The baseline builds a Jinja2 environment and reads the templates for every "
        "message; the renderer compiles each template once per container.",
        "",
    ]


def _md_scoring(sc: dict[str, Any]) -> list[str]:
    pandas_rate = sc["pandas_per_s"]
    return [
        f"## RFM scoring: {sc['customers']:,} customers, one core",
        "",
        *_md_head("implementation | seconds | customers/s"),
        f"| numpy (`kizuna.scoring.rfm`) | {sc['numpy_s']:.3f} | {sc['numpy_per_s']:,.0f} |",
        "| pandas (`pd.cut` + merge) | "
        + ("- | - |" if pandas_rate is None else f"{sc['pandas_s']:.3f} | {pandas_rate:,.0f} |"),
        "",
        f"Quantile boundaries from a 20,000-customer sample: {sc['boundaries_ms']:.1f} ms. "
        f"The two implementations agree on every score and segment: {sc['pandas_agrees']}. "
        f"A daily run a day later writes {sc['writes_per_run']:,} customers "
        f"({sc['write_fraction']:.1%}): only those whose scores or segment changed. The "
        "figures are the vectorized core; reading items and recomputing loyalty per customer "
        "is the job's real cost.",
        "",
    ]


def _md_hotpath(hp: dict[str, Any], results: dict[str, Any]) -> list[str]:
    ing, ev = hp["ingest"], hp["evaluate"]
    lines = [
        "## Hot paths, one core, in memory",
        "",
        f"The demo shop's events ({ing['events']:,}: {hp['customers']:,} customers x "
        f"{hp['days']} days) in SQS batches of 10 on `kizuna_tools.fakes.MemoryStore` "
        f"({ev['events']:,} of them, and the derived events, reach evaluate): compute only, "
        "no AWS latency. Store round trips per event are what a DynamoDB store would make; "
        "each is a network call of a few ms on AWS, which is what batching saves.",
        "",
        *_md_head(
            "path | optimised /s | naive baseline /s | "
            "store round trips per event (optimised / naive)"
        ),
        f"| ingest, events | {ing['per_s']:,.0f} | {ing['naive_per_s']:,.0f} | "
        f"{ing['round_trips_per_event']:.2f} / {ing['naive_round_trips_per_event']:.2f} |",
        f"| evaluate, events | {ev['per_s']:,.0f} | {ev['naive_per_s']:,.0f} | "
        f"{ev['round_trips_per_event']:.2f} / {ev['naive_round_trips_per_event']:.2f} |",
        f"| evaluate, one event at a time, programs loaded once | {ev['unbatched_per_s']:,.0f}"
        f" | - | {ev['unbatched_round_trips_per_event']:.2f} |",
    ]
    render = results.get("render")
    if render:
        for channel in ("email", "sms", "push", "line"):
            lines.append(
                f"| render {channel}, messages (from Rendering) | {render[channel]:,.0f} | "
                f"{render[channel + '_naive']:,.0f} | - |"
            )
    sc = results.get("scoring")
    if sc:
        pandas_rate = sc.get("pandas_per_s")
        lines.append(
            f"| RFM score, customers (from RFM scoring) | {sc['numpy_per_s']:,.0f} | "
            + ("-" if pandas_rate is None else f"{pandas_rate:,.0f} (pandas)")
            + " | - |"
        )
    lines += [""]
    lines += [f"- Naive {name}: {text}." for name, text in hp["baselines"].items()]
    lines += [
        "- In memory a store round trip costs almost nothing: here the batched ingest runs at "
        f"{ing['per_s'] / ing['naive_per_s']:.2f}x the one-at-a-time rate. On DynamoDB the "
        f"difference is the round trips: {ing['round_trips_per_event']:.2f} against "
        f"{ing['naive_round_trips_per_event']:.2f} per event.",
        "",
    ]
    return lines


def _md_coldstart(cs: dict[str, Any]) -> list[str]:
    base = cs["modules"][coldstart_bench.BASELINE]
    before = cs.get("before") or {}
    commit = cs.get("before_commit")

    def x(value: float | None, ref: float | None) -> str:
        return "-" if not value or not ref else f"{value / ref:.2f}x"

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    lines = [
        "## Cold start: handler module import, and the first invocation's set-up",
        "",
        f"Each `functions/<name>/handler.py` imported as Lambda imports it (module `handler`, "
        "the function folder and the layer on `sys.path`, the CDK app's environment) in a "
        f"fresh `python -X importtime` process; median of {cs['runs']} runs, all modules "
        "interleaved in the same run. *Import* is the cumulative `-X importtime` of the "
        "top-level `handler` import. *+ first service* is the wall time of the import and of "
        "the function's factory in `kizuna.runtime.wiring` (settings parsed, boto3 loaded and "
        "its clients created offline, programs and templates read; the signing secret read "
        "stubbed): what a handler that imports less only defers to its first invocation, "
        "and what AWS bills as INIT plus the first request. The baseline, "
        "`bench/baseline_handler.py`, imports Powertools Logger, Tracer, Metrics, the parser, "
        "batch processing and boto3 at the top, as the Powertools README does; its *+ first "
        "service* adds one boto3 client. "
        + (
            f"*Before* is commit `{commit}` (the last before the runtime/tooling split), "
            "exported with `git archive` and measured in the same run."
            if commit
            else "The before columns were not measured (commit missing)."
        ),
        "",
        *_md_head(
            "module | import ms | vs baseline | + first service ms | vs baseline + client | "
            "before: import ms | before: + first ms | import after/before | "
            "+ first after/before"
        ),
    ]
    for name, m in cs["modules"].items():
        b = before.get(name, {})
        is_base = name == coldstart_bench.BASELINE
        lines.append(
            f"| {name} | {ms(m['importtime_ms'])} | "
            f"{'-' if is_base else x(m['importtime_ms'], base['importtime_ms'])} | "
            f"{ms(m.get('first_ms'))} | "
            f"{'-' if is_base else x(m.get('first_ms'), base.get('first_ms'))} | "
            f"{ms(b.get('importtime_ms'))} | {ms(b.get('first_ms'))} | "
            f"{x(m['importtime_ms'], b.get('importtime_ms'))} | "
            f"{x(m.get('first_ms'), b.get('first_ms'))} |"
        )
    return [
        *lines,
        "",
        "Measured on this machine's x86_64 CPU with the repository's .venv (Python "
        f"{platform.python_version()}); on Lambda (arm64, python3.13, the layer under /opt) "
        "the absolute figures will differ.",
        "",
    ]


def _md_shipped(sh: dict[str, Any]) -> list[str]:
    commit = sh.get("before_commit")
    before = sh.get("before") or {}

    def mb(value: int | None) -> str:
        return "-" if value is None else f"{value / 1e6:.1f}"

    def x(value: float | None, ref: float | None) -> str:
        return "-" if not value or not ref else f"{value / ref:.2f}x"

    lines = [
        "## Shipped per function",
        "",
        "What each function's deployment holds: *code* is its `functions/<name>` folder, the "
        "data folders bundled next to the handler (programs, templates, segments) and the "
        "`kizuna` layer; *deps* what `pip install --platform manylinux2014_aarch64 "
        "--only-binary=:all:` puts in its dependency layer(s) (the `PipInstallBundler` "
        "command). *After* is this tree; "
        + (
            f"*before* is commit `{commit}`, exported with `git archive` in the same run."
            if commit
            else "the before columns were not measured (commit missing)."
        ),
        "",
        *_md_head(
            "function | lines before | lines after | code MB before | code MB after | "
            "deps MB before | deps MB after | total MB before | total MB after | "
            "total after/before"
        ),
    ]
    for name, a in sh["after"].items():
        b = before.get(name, {})
        lines.append(
            f"| {name} | {b.get('code_lines', '-')} | {a['code_lines']} | "
            f"{mb(b.get('code_bytes'))} | {mb(a['code_bytes'])} | "
            f"{mb(b.get('dependency_bytes'))} | {mb(a['dependency_bytes'])} | "
            f"{mb(b.get('total_bytes'))} | {mb(a['total_bytes'])} | "
            f"{x(a['total_bytes'], b.get('total_bytes'))} |"
        )
    return [*lines, ""]


def _md_cost(c: dict[str, Any]) -> list[str]:
    u = c["units"]
    cols = [
        c["per_million_inbound_events"],
        c["per_million_order_events"] or {},
        c["per_million_messages"],
        c["per_million_messages_all_in"],
    ]
    lines = [
        "## Cost model",
        "",
        f"USD at public us-east-1 list prices (`bench/prices.yaml`: each price with its page "
        f"and the date read, {c['prices_read']}), applied by `bench/cost_model.py` to the "
        f"counts measured in the pipeline run above ({u['inbound_events']} inbound events, "
        f"{u['order_events']:.0f} of them orders; {u['journeys_started']} journey entries; "
        f"{u['messages']:.0f} delivered messages).",
        "",
        *_md_head(
            "service | per 1M inbound events | per 1M order events (upper bound) | "
            "per 1M messages, delivery path | per 1M messages, all-in"
        ),
    ]
    for svc in c["per_million_inbound_events"]:
        cells = " | ".join(_usd(col.get(svc)) for col in cols)
        label = f"**{svc}**" if svc == "total" else svc
        lines.append(f"| {label} | {cells} |")
    all_in = c["per_million_messages_all_in"]
    overhead = all_in["total"] - all_in.get("channel fees", 0.0)
    platform = {k: v for k, v in all_in.items() if k not in ("total", "channel fees")}
    top = max(platform, key=lambda k: platform[k])
    top_share = platform[top] / overhead if overhead else 0.0
    lines += [
        "",
        "- *Inbound events*: ingest, evaluate, sweeps, daily scoring and feedback, with the "
        "producer's PutEvents, spread over every inbound event of the demo shop's mix. *Order "
        "events*: the same cost charged to the order events alone — an upper bound per order.",
        "- *Delivery path*: the journey helper and send functions, the journeys' Step "
        f"Functions transitions ({u['transitions_per_entry']:.1f} per entry, measured) and "
        "the channels' fees for this run's mix, per delivered message. *All-in*: the whole "
        "bill of the run (processing too) per delivered message — what a SaaS price covers. "
        f"It depends on how many messages the events lead to: here {u['messages']:.0f} "
        f"messages for {u['inbound_events']} events.",
        f"- The largest platform cost per message is {top} ({top_share:.0%} of the all-in "
        "cost without channel fees).",
        "",
        "Per 1M messages on one channel: the channel's own price (the floor) and Kizuna "
        f"all-in (the floor plus this run's platform cost, {_usd(overhead)} per 1M messages):",
        "",
        *_md_head("channel | floor per 1M | Kizuna all-in per 1M | all-in / floor"),
    ]
    for key, floor in c["floor_per_million"].items():
        ratio = (floor + overhead) / floor if floor else 0.0
        lines.append(f"| {key} | {_usd(floor)} | {_usd(floor + overhead)} | {ratio:,.2f}x |")
    lines += [
        "",
        "SaaS list prices, per contact a month, converted at "
        f"{c['messages_per_contact_month']:.0f} messages a contact a month (the price of the "
        "plan divided by its contacts, divided by those messages; the same assumption for "
        "every vendor):",
        "",
        *_md_head("vendor | plan | list USD per contact a month | per 1M messages | source"),
    ]
    for name, v in c["saas_per_million_messages"].items():
        per_contact = "-" if v["per_contact_month"] is None else f"{v['per_contact_month']:.4f}"
        lines.append(
            f"| {name} | {v['plan']} | {per_contact} | {_usd(v['per_million_messages'])} | "
            f"{v['url']} |"
        )
    lines += [
        "",
        "These plans include email sending; SMS is paid on top of them, as it is here. "
        "Braze publishes no list price. Against the SaaS figures, compare the all-in email "
        "cost above (SES included).",
        "",
        "Assumptions, plainly:",
        "",
        "- DynamoDB writes are the write units measured on every write (`bench/write_units.py`):"
        " each item's size before and after in moto's tables, in 1 KB units (twice in a "
        "transaction), and every global secondary index entry the write puts, rewrites or "
        "deletes (an entry: the keys and projected attributes plus 100 bytes), as AWS bills "
        "them; on the activity table that is the ledger's `gsi1` (projection ALL) and the "
        "sparse `sending` index. Reads: items are at most 1 KB; a point read is 1 RRU "
        "strongly consistent, 0.5 eventually; a Query or Scan reads 4 items per unit, at least "
        "half a unit per call. Items per call were counted from the requests and responses, "
        "by function.",
        "- Lambda duration is the mean handler time measured on moto (moto's in-process "
        "latency, likely more than DynamoDB's), times the memory in the synthesized template "
        "(arm64 price); no cold starts (AWS bills the INIT phase too since 2025-08-01: see "
        "the cold start section for its size). Requests are invocations.",
        "- SQS: one request per message EventBridge puts on a queue, plus a ReceiveMessage "
        "and a DeleteMessageBatch per invocation of a queue-fed function; the event source "
        "mappings' idle long polls (a fixed few cents a month per queue) are left out.",
        "- EventBridge: every inbound event is one custom event, and so is every derived "
        "entry; delivery to SQS and Lambda targets is not billed on custom buses.",
        "- Step Functions Standard: one billed transition per state entered; executions still "
        "waiting at the end of the run are assumed to finish like the finished ones.",
        "- Channel fees: SES per email, SMS at the Japan rate per part (the demo's shop is in "
        "Japan; one part per message assumed), push per notification, LINE at the Standard "
        "plan's marginal 3 JPY per message at 150 JPY/USD.",
        "- Not priced: CloudWatch Logs and metrics, Secrets Manager and SSM (cached per "
        "container), DynamoDB storage and streams, the event archive, data transfer, free "
        "tiers, the LINE and SMS fixed monthly fees.",
        "",
    ]
    return lines


def _md_campaign(cp: dict[str, Any]) -> list[str]:
    c, j, f = cp["campaign"], cp["journey"], cp["figures"]

    def num(value: float) -> str:
        return f"{value:.4f}" if value < 10 else f"{value:,.2f}"

    lines = [
        f"## A campaign of {cp['recipients']:,} recipients, beside the journey path",
        "",
        f"`bench/campaign_bench.py`: {cp['recipients']:,} repeat buyers (Tokyo, email "
        "consented) seeded in the customers table, a one-off email campaign applied with "
        "`kizuna campaigns apply` and fired by its schedule on virtual time, through the "
        "campaign state machine and the campaign function. Beside it, in the same run, "
        f"{cp['journey_sample']} of the same recipients enter `{campaign_bench.JOURNEY_PROGRAM}` "
        "(a `customer.segment_changed` each): evaluate, one journey execution and one send "
        "per customer. Wall time: campaign "
        f"{c['wall_seconds']:.0f} s ({c['delivered']:,} emails), journey path "
        f"{j['wall_seconds']:.0f} s ({j['delivered']:,} emails); set-up "
        f"{cp['setup_seconds']:.0f} s.",
        "",
        *_md_head("per delivered message | campaign | journey path | campaign / journey | goal"),
    ]
    labels = {
        "calls_per_message": "AWS API calls (provider call included)",
        "transitions_per_message": "Step Functions states entered",
        "usd_per_million": "platform USD per 1M emails, on top of SES",
    }
    for key, label in labels.items():
        x = f[key]
        r = "-" if x["ratio"] is None else f"{x['ratio']:.3f}"
        lines.append(
            f"| {label} | {num(x['campaign'])} | {num(x['journey'])} | {r} | <= {x['goal']} |"
        )
    lines += ["", *_md_head("path | calls per delivered message, by operation")]
    for name, side in (("campaign", c), ("journey path", j)):
        ops = campaign_bench.per_message(side["calls"], int(side["delivered"]))
        lines.append(f"| {name} | {', '.join(f'{k} {v:.3f}' for k, v in ops.items())} |")
    lines += [
        "",
        *_md_head("service (USD per 1M emails) | campaign | journey path"),
    ]
    for svc, value in c["cost"]["per_million_messages"].items():
        other = j["cost"]["per_million_messages"].get(svc)
        label = f"**{svc}**" if svc == "total" else svc
        lines.append(f"| {label} | {_usd(value)} | {_usd(other)} |")
    t = c["transitions"]
    return [
        *lines,
        "",
        f"- States entered: the campaign execution's history ({t['states_entered_parent']}) "
        f"and its Distributed Map children's ({t['states_entered_children']}, over "
        f"{t['map_runs']} map runs; moto keeps the children's events apart, the bench records "
        "them as they are added); the journey path's, its executions' histories.",
        "- Calls: every AWS call the campaign function made (prepare, freeze, plan, send "
        "batches, complete; SendEmail included); for the journey path, evaluate's, the "
        "journey helper's and send's. Cost: `cost_model.campaign_costs` (Lambda at the "
        "template's memory and the mean handler time measured on moto; DynamoDB write units "
        "measured with their indexes, read units of the items of each call; S3 requests; "
        "EventBridge "
        "entries, the journey path's trigger events included; SQS for evaluate's queue; "
        "transitions); SES's own fee excluded.",
        "",
    ]


def _md_engine(en: dict[str, Any]) -> list[str]:
    title = "## Journeys: previous engine vs cohort engine (same run)"
    if en.get("skipped"):
        return [title, "", f"Not measured: {en['skipped']}.", ""]
    base, cur = en["baseline"], en["current"]
    lines = [
        title,
        "",
        f"`bench/engine_compare.py`: the demo's program mix ({en['customers']:,} customers x "
        f"{en['days']} days, seed {en['seed']}) through each engine's own "
        "`bench/pipeline_bench.py`, one after the other in this run, each in a fresh "
        f"interpreter importing its own tree: the previous engine is {base['label']} "
        f"(exported with `git archive`), the cohort engine {cur['label']}.",
        "",
        *_md_head("figure | previous engine | cohort engine | cohort / previous | goal | met"),
    ]
    for row in engine_compare.table_rows(en):
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        *_md_head(
            "engine | events | journeys | journey messages | states entered | "
            "write units / message, table | write units / message, indexes"
        ),
    ]
    for name, side in (("previous", en["old"]), ("cohort", en["new"])):
        u = side["units"]
        lines.append(
            f"| {name} | {u['events']} | {u['journeys_started']} | {u['journey_messages']} | "
            f"{u['states_entered']:.0f} | {engine_compare.per_message(u, 'write_units_table')} "
            f"| {engine_compare.per_message(u, 'write_units_index')} |"
        )
    return [
        *lines,
        "",
        "- Transitions: every state entered by the journey state machines (scoring and "
        "campaign machines left out), executions still waiting at the end included, over the "
        "journey messages the ledger records as sent (campaign sends left out).",
        "- Send path: the send function's and the journey helper's AWS calls (provider calls "
        "included) per delivered journey message. Per journey entry: the evaluate function's "
        "calls per journey started, as in the pipeline section.",
        "- Platform USD: `cost_model.pipeline_costs` on both results, its delivery side "
        "(journey helper, send, the journeys' transitions as counted) per 1M journey messages, "
        "channel fees taken out; DynamoDB write units measured on both sides by this tree's "
        "meter (`bench/write_units.py`: item sizes and index entries).",
        "- Wall time: `run_demo` (the synthesized template provisioned, the shop replayed, the "
        "summary read; what `make demo` does but the HTML report), less the bench's reading "
        "of execution histories. Goal: the previous engine's time / the cohort engine's >= 3.",
        "",
    ]


def _kept_notes(path: Path) -> list[str]:
    """Hand-written ``## Notes…`` sections of the existing file, kept when regenerating."""
    if not path.exists():
        return []
    kept: list[str] = []
    keep = False
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            keep = line.startswith("## Notes")
        if keep:
            kept.append(line)
    return [*kept, ""] if kept else []


def write_markdown(results: dict[str, Any], path: Path) -> None:
    lines = _md_header(results)
    if results.get("import"):
        lines += _md_import(results["import"])
    if results.get("pipeline"):
        lines += _md_pipeline(results["pipeline"])
    if results.get("cost"):
        lines += _md_cost(results["cost"])
    if results.get("campaign"):
        lines += _md_campaign(results["campaign"])
    if results.get("engine"):
        lines += _md_engine(results["engine"])
    if results.get("transitions"):
        lines += _md_transitions(results)
    if results.get("hotpath"):
        lines += _md_hotpath(results["hotpath"], results)
    if results.get("render"):
        lines += _md_render(results["render"])
    if results.get("scoring"):
        lines += _md_scoring(results["scoring"])
    if results.get("coldstart"):
        lines += _md_coldstart(results["coldstart"])
    if results.get("shipped"):
        lines += _md_shipped(results["shipped"])
    lines += _kept_notes(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines).rstrip("\n") + "\n")


SECTIONS = (
    "import",
    "render",
    "transitions",
    "scoring",
    "pipeline",
    "coldstart",
    "shipped",
    "hotpath",
    "campaign",
    "engine",
)
DOCS = ROOT / "docs" / "PERFORMANCE.md"
QUICK_OUT = ROOT / "out" / "PERFORMANCE.quick.md"


def cost_section(pipe: dict[str, Any] | None) -> dict[str, Any] | None:
    """The cost model on the pipeline's counts (None if they predate the cost model)."""
    if not pipe or "items" not in pipe or "functions" not in pipe:
        print("\ncost model: the pipeline results lack item counts; run the pipeline section")
        return None
    costs = cost_model.pipeline_costs(pipe, cost_model.load_prices())
    print_costs(costs)
    return costs


def print_costs(c: dict[str, Any]) -> None:
    columns = [
        ("per 1M inbound events", c["per_million_inbound_events"]),
        ("per 1M order events*", c["per_million_order_events"] or {}),
        ("per 1M messages (delivery)", c["per_million_messages"]),
        ("per 1M messages (all-in)", c["per_million_messages_all_in"]),
    ]
    services = list(c["per_million_inbound_events"])
    print_table(
        f"Cost model, USD at us-east-1 list prices read {c['prices_read']} (bench/prices.yaml)",
        ["service", *[name for name, _ in columns]],
        [[svc, *[_usd(col.get(svc)) for _, col in columns]] for svc in services],
    )
    print(
        "* everything the inbound events cost charged to the order events alone "
        f"({c['units']['order_events']:.0f} of {c['units']['inbound_events']} events)"
    )
    overhead = c["per_million_messages_all_in"]["total"] - c["per_million_messages_all_in"].get(
        "channel fees", 0.0
    )
    print_table(
        "Per 1M messages: the channel's own price (floor) and Kizuna's all-in cost",
        ["channel", "floor", "Kizuna all-in", "Kizuna over the floor"],
        [
            [key, _usd(floor), _usd(floor + overhead), _usd(overhead)]
            for key, floor in c["floor_per_million"].items()
        ],
    )
    print_table(
        f"SaaS list prices at {c['messages_per_contact_month']:.0f} messages a contact a month",
        ["vendor", "plan", "USD/contact/month", "per 1M messages"],
        [
            [
                name,
                v["plan"],
                "-" if v["per_contact_month"] is None else f"{v['per_contact_month']:.4f}",
                _usd(v["per_million_messages"]),
            ]
            for name, v in c["saas_per_million_messages"].items()
        ],
    )


def _usd(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:,.2f}" if value >= 10 else f"${value:,.3f}"


def _command(argv: list[str]) -> str | None:
    """How this run was asked for, for the markdown (None: plain ``make bench``)."""
    if not argv or argv == ["--quick"]:
        return None
    return " ".join(["bench/run.py", *argv])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (CI)")
    parser.add_argument("--customers", type=int, default=None)
    parser.add_argument("--days", type=int, default=None)
    parser.add_argument(
        "--campaign-recipients",
        type=int,
        default=None,
        help="campaign section: recipients (default 100,000; QUICK: 1,000)",
    )
    parser.add_argument(
        "--engine-current-ref",
        default=None,
        help="engine section: the cohort side as a commit (default: this working tree)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help=f"markdown (default {DOCS}; QUICK: {QUICK_OUT})"
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated, of {', '.join(SECTIONS)}; 'none' with --reuse: measure "
        "nothing, rewrite the markdown (and the cost model) from the reused results",
    )
    parser.add_argument(
        "--reuse", type=Path, default=None, help="results JSON for the sections not run"
    )
    args = parser.parse_args()
    only = {x.strip() for x in args.only.split(",") if x.strip() and x.strip() != "none"}
    unknown = only - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    out_md = args.out or (QUICK_OUT if args.quick else DOCS)
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    started = time.perf_counter()
    results: dict[str, Any] = {
        "quick": args.quick,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "reused": {},
        "command": _command(sys.argv[1:]),
    }
    earlier: dict[str, Any] = json.loads(args.reuse.read_text()) if args.reuse else {}
    if not only:  # re-render an earlier run as it was measured
        if not earlier:
            parser.error("--only none needs --reuse")
        results = {**earlier, "cost": cost_section(earlier.get("pipeline"))}
        write_markdown(results, out_md)
        print(f"\nwritten: {out_md} (from {args.reuse}, nothing measured)")
        return
    for section in SECTIONS:
        if section not in only and section in earlier:
            results[section] = earlier[section]
            # a section the earlier file carried over itself keeps the date it was measured
            measured = (earlier.get("reused") or {}).get(section) or earlier.get("date", "?")
            results["reused"][section] = measured
    if "import" in only:
        results["import"] = import_bench.run(
            5_000 if args.quick else 100_000, 500 if args.quick else 5_000
        )
    if "render" in only:
        results["render"] = render_bench.run(300 if args.quick else 5_000)
    if "transitions" in only:
        results["transitions"] = transitions_table()
    if "scoring" in only:
        results["scoring"] = scoring_bench.run(100_000 if args.quick else 1_000_000)
    if "pipeline" in only:
        # 10,000 x 90 (issue 3's target) takes hours on moto: ask for it with
        # --customers 10000 --days 90; the default is the demo's size
        customers = args.customers or (300 if args.quick else 1_000)
        days = args.days or (10 if args.quick else 30)
        results["pipeline"] = pipeline_bench.run(customers, days)
    if "coldstart" in only:
        results["coldstart"] = coldstart_bench.run(3 if args.quick else 5)
    if "shipped" in only:
        results["shipped"] = shipped_bench.run()
    if "hotpath" in only:
        results["hotpath"] = hotpath_bench.run(
            *((300, 10, 50) if args.quick else (3_000, 30, 300)),
            render=results.get("render"),
            scoring=results.get("scoring"),
        )
    if "campaign" in only:
        results["campaign"] = campaign_bench.run(
            args.campaign_recipients or (1_000 if args.quick else 100_000)
        )
    if "engine" in only:
        # the previous engine (engine_compare.BASELINE_REF) beside this tree, at the
        # pipeline's size; QUICK: 100 x 3 (about 35 s for both), enough to run both engines
        results["engine"] = engine_compare.compare(
            args.customers or (100 if args.quick else 1_000),
            args.days or (3 if args.quick else 30),
            current_ref=args.engine_current_ref,
        )
    results["cost"] = cost_section(results.get("pipeline"))
    write_markdown(results, out_md)
    print(f"\nwritten: {out_md}")
    (ROOT / "out").mkdir(exist_ok=True)
    json_out = ROOT / "out" / ("bench.quick.json" if args.quick else "bench.json")
    json_out.write_text(json.dumps(results, indent=2, default=str))
    print(f"bench finished in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
