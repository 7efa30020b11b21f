"""The journeys of the demo's program mix on the previous engine and on this one, measured in
the same run on the same machine (issue 15).

Each side is ``bench/pipeline_bench.py`` *of its own tree* at the same size and seed, run in
a fresh interpreter whose imports resolve to that tree: the previous engine is commit
``BASELINE_REF``, exported with ``git archive``; the new one is this working tree (or, with
``current_ref``, another exported commit: comparing a commit with itself checks the
harness). The two runs are sequential, never concurrent, so neither slows the other.

Per side, five figures, from the pipeline result and from a count of every journey
execution's states (the worker's :func:`_machine_totals`, read after the run):

* Step Functions transitions per delivered journey message: every state entered by the
  journey state machines (scoring and campaign machines left out), over the journey
  messages the ledger records as sent (campaign sends left out);
* AWS calls per delivered journey message on the send path: the send function's and the
  journey helper's calls;
* AWS calls per journey entry: the evaluate function's calls over the journeys started
  (``pipeline_bench``'s own definition);
* platform USD per 1M delivered journey messages on top of channel fees: today's
  ``cost_model.pipeline_costs`` on both results, its delivery side, with the transitions
  counted above and the journey messages as the units (see :func:`for_cost_model`);
* wall time of the pipeline run (``run_demo``: what ``make demo`` measures, less the HTML
  report), less the bench's own reading of execution histories after it.

Standalone: ``.venv/bin/python bench/engine_compare.py --customers 200 --days 7``. This
module imports only the standard library at the top: it is also the worker, run as
``python bench/engine_compare.py --worker SPEC.json`` in the tree it measures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BASELINE_REF = "ac77a01"  # the last commit before the cohort engine
SEED = 42  # the demo's (``kizuna local run`` and ``run_demo`` default)
# State machines that are not journeys (matched in the name, case-insensitively).
NOT_JOURNEYS = ("scoring", "campaign")

# figure key -> (label, goal text, kind): kind "max" for goals on the new side's figure,
# "speedup" for the wall time (old / new).
FIGURES: dict[str, tuple[str, str, str]] = {
    "transitions_per_message": (
        "Step Functions transitions per delivered journey message",
        "<= 0.5",
        "max",
    ),
    "send_calls_per_message": (
        "AWS calls per delivered message, send path (send + journey helper)",
        "<= 2.0",
        "max",
    ),
    "calls_per_entry": ("AWS calls per journey entry (evaluate)", "<= 1.5", "max"),
    "usd_per_million": (
        "platform USD per 1M delivered messages, on top of channel fees",
        "<= 20",
        "max",
    ),
    "wall_seconds": ("wall time of the pipeline run, s", ">= 3x faster", "speedup"),
}
GOALS: dict[str, float] = {
    "transitions_per_message": 0.5,
    "send_calls_per_message": 2.0,
    "calls_per_entry": 1.5,
    "usd_per_million": 20.0,
    "wall_seconds": 3.0,
}


# --- extraction (pure: the parent process, and the unit tests) ----------------------------------


def is_journey_machine(name: str) -> bool:
    lowered = name.lower()
    return not any(marker in lowered for marker in NOT_JOURNEYS)


def campaign_ids(pipe: Mapping[str, Any]) -> set[str]:
    """Campaigns of the run: applied ones in the summary, and the tree's ``campaigns/``."""
    extra = pipe.get("engine_compare", {})
    return {*pipe.get("summary", {}).get("campaigns", []), *extra.get("campaign_ids", [])}


def journey_messages_by_channel(pipe: Mapping[str, Any]) -> dict[str, int]:
    """Messages the ledger records as sent by journeys (campaign sends left out), by channel."""
    campaigns = campaign_ids(pipe)
    out: dict[str, int] = {}
    for program, per in pipe["summary"]["messages"].items():
        if program in campaigns:
            continue
        for channel, n in per.items():
            out[channel] = out.get(channel, 0) + int(n)
    return out


def journey_states_entered(pipe: Mapping[str, Any]) -> float:
    """States entered by every journey execution of the run (finished or still waiting),
    from the worker's count; without it (an older result), ``pipeline_bench``'s estimate:
    the mean of the finished executions times the journeys started."""
    machines = pipe.get("engine_compare", {}).get("machines")
    if machines is not None:
        return float(
            sum(m["states_entered"] for name, m in machines.items() if is_journey_machine(name))
        )
    journeys = {p: t for p, t in pipe["transitions"].items() if is_journey_machine(p)}
    executions = sum(t["executions"] for t in journeys.values())
    if not executions:
        return 0.0
    mean = sum(t["mean"] * t["executions"] for t in journeys.values()) / executions
    return float(mean) * float(pipe["journeys_started"])


def for_cost_model(pipe: Mapping[str, Any]) -> dict[str, Any]:
    """``pipe`` as ``cost_model.pipeline_costs`` should see it for journey messages alone:

    * ``transitions``: the scoring machines as measured, and the journeys as one entry whose
      mean times ``journeys_started`` is the states entered counted (the cost model's own
      estimate, a finished execution's mean per journey entry, does not hold for an engine
      that runs fewer executions than entries);
    * ``summary.outbox``: the journey messages by channel (campaign sends, which the
      campaign function pays for, are no delivery-path units).
    """
    started = max(int(pipe["journeys_started"]), 1)
    transitions = {p: t for p, t in pipe["transitions"].items() if "Scoring" in p}
    transitions["journeys"] = {
        "executions": started,
        "mean": journey_states_entered(pipe) / started,
        "max": 0,
    }
    summary = {**pipe["summary"], "outbox": journey_messages_by_channel(pipe)}
    return {**pipe, "transitions": transitions, "summary": summary, "items": _items_priced(pipe)}


def _items_priced(pipe: Mapping[str, Any]) -> dict[str, Any]:
    """``pipe["items"]`` with the write units the worker measured (the same meter on both
    sides) in place of any the tree's own bench measured; as they are without them."""
    measured = pipe.get("engine_compare", {}).get("write_units")
    items = {role: {op: dict(c) for op, c in ops.items()} for role, ops in pipe["items"].items()}
    if measured is None:
        return items
    for ops in items.values():
        for op, c in ops.items():
            if op.startswith("dynamodb:"):
                c.pop("wru_table", None)
                c.pop("wru_index", None)
    for role, ops in measured.items():
        for op, units in ops.items():
            items.setdefault(role, {}).setdefault(op, {}).update(units)
    return items


def _calls(pipe: Mapping[str, Any], *roles: str) -> int:
    return sum(int(n) for role in roles for n in pipe["calls"].get(role, {}).values())


def write_unit_split(pipe: Mapping[str, Any], roles: tuple[str, ...]) -> dict[str, float | None]:
    """The write units the worker measured for ``roles``: the table's and the indexes'."""
    measured = pipe.get("engine_compare", {}).get("write_units")
    if measured is None:
        return {"write_units_table": None, "write_units_index": None}
    rows = [c for role in roles for c in measured.get(role, {}).values()]
    return {
        "write_units_table": float(sum(c.get("wru_table", 0) for c in rows)),
        "write_units_index": float(sum(c.get("wru_index", 0) for c in rows)),
    }


def measured_wall_seconds(pipe: Mapping[str, Any]) -> float:
    """The run's wall time less the bench's reading of execution histories after it."""
    extra = pipe.get("engine_compare", {})
    return float(pipe["wall_seconds"]) - float(extra.get("measure_seconds", 0.0))


def figures(pipe: Mapping[str, Any], prices: Any = None) -> dict[str, Any]:
    """The five figures of one side's pipeline result (and the units behind them).

    ``prices``: ``cost_model.Prices`` (default: ``bench/prices.yaml``)."""
    from bench import cost_model

    messages = sum(journey_messages_by_channel(pipe).values())
    started = int(pipe["journeys_started"])
    costs = cost_model.pipeline_costs(for_cost_model(pipe), prices or cost_model.load_prices())
    delivery = costs["per_million_messages"]
    return {
        "transitions_per_message": journey_states_entered(pipe) / messages if messages else 0.0,
        "send_calls_per_message": _calls(pipe, "send", "journey") / messages if messages else 0.0,
        "calls_per_entry": _calls(pipe, "evaluate") / started if started else 0.0,
        "usd_per_million": delivery["total"] - delivery.get("channel fees", 0.0),
        "wall_seconds": measured_wall_seconds(pipe),
        "units": {
            "journey_messages": messages,
            "journeys_started": started,
            "states_entered": journey_states_entered(pipe),
            "send_calls": _calls(pipe, "send"),
            "journey_helper_calls": _calls(pipe, "journey"),
            "evaluate_calls": _calls(pipe, "evaluate"),
            # measured write units of the delivery side (send, journey helper) by where
            # they land: the table's items, the indexes' entries (None: not measured)
            **write_unit_split(pipe, ("send", "journey")),
            "events": int(pipe["events"]),
            "campaign_messages": sum(
                n
                for program, per in pipe["summary"]["messages"].items()
                if program in campaign_ids(pipe)
                for n in per.values()
            ),
        },
        "usd_per_million_by_service": delivery,
    }


def ratios(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, float | None]:
    """new / old for each figure (None where old is 0)."""
    out: dict[str, float | None] = {}
    for key in FIGURES:
        out[key] = float(new[key]) / float(old[key]) if float(old[key]) else None
    return out


def goals_met(new: Mapping[str, Any], ratio: Mapping[str, float | None]) -> dict[str, bool]:
    """Each goal of issue 15 against the new side (the wall time: old / new >= 3)."""
    out: dict[str, bool] = {}
    for key, (_, _, kind) in FIGURES.items():
        if kind == "speedup":
            r = ratio.get(key)
            out[key] = bool(r) and 1 / float(r or 1) >= GOALS[key]
        else:
            out[key] = float(new[key]) <= GOALS[key]
    return out


def compared(old_pipe: Mapping[str, Any], new_pipe: Mapping[str, Any]) -> dict[str, Any]:
    """Figures of both sides, ratios (new / old) and goals met (no I/O but the prices)."""
    old, new = figures(old_pipe), figures(new_pipe)
    ratio = ratios(old, new)
    return {"old": old, "new": new, "ratio": ratio, "goals_met": goals_met(new, ratio)}


def _num(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 10 else f"{value:,.1f}"


def table_rows(result: Mapping[str, Any]) -> list[list[str]]:
    """[figure, previous, new, new/previous, goal, met] rows."""
    rows = []
    for key, (label, goal, kind) in FIGURES.items():
        r = result["ratio"][key]
        ratio = "-" if r is None else f"{r:.3f}"
        if kind == "speedup" and r:
            ratio += f" ({1 / r:.2f}x faster)"
        rows.append(
            [
                label,
                _num(result["old"][key]),
                _num(result["new"][key]),
                ratio,
                goal,
                "yes" if result["goals_met"][key] else "no",
            ]
        )
    return rows


def per_message(units: Mapping[str, Any], key: str) -> str:
    """Write units a journey message (the delivery side's, all messages' writes)."""
    value, messages = units.get(key), units.get("journey_messages") or 0
    return "-" if value is None or not messages else f"{value / messages:.2f}"


def print_result(result: Mapping[str, Any]) -> None:
    from bench.common import print_table

    old_u, new_u = result["old"]["units"], result["new"]["units"]
    print_table(
        f"Journeys: previous engine ({result['baseline']['label']}) vs "
        f"{result['current']['label']}, {result['customers']} customers x {result['days']} "
        f"days, seed {result['seed']}",
        ["figure", "previous", "new", "new/previous", "goal", "met"],
        table_rows(result),
    )
    print_table(
        "Units",
        [
            "side",
            "events",
            "journeys",
            "journey messages",
            "campaign messages",
            "states",
            "WRU table / msg",
            "WRU indexes / msg",
        ],
        [
            [
                side,
                u["events"],
                u["journeys_started"],
                u["journey_messages"],
                u["campaign_messages"],
                f"{u['states_entered']:.0f}",
                per_message(u, "write_units_table"),
                per_message(u, "write_units_index"),
            ]
            for side, u in (("previous", old_u), ("new", new_u))
        ],
    )


# --- running one side (the parent) ----------------------------------------------------------------


def export_tree(ref: str) -> Path | None:
    """``git archive ref`` extracted into a temporary directory (removed at exit), or None,
    said, when the clone lacks it (``shipped_bench.exported_tree``)."""
    from bench import shipped_bench

    return shipped_bench.exported_tree(ref)


def resolve(ref: str) -> str | None:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short=10", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def precompile(tree: Path) -> None:
    """Byte-compile ``tree``'s Python before it is timed: a freshly exported tree would
    otherwise pay for compiling where the working tree has its ``__pycache__``."""
    folders = [str(tree / d) for d in ("layers", "infra", "tools", "functions", "bench")]
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *[f for f in folders if Path(f).is_dir()]],
        capture_output=True,
        check=False,
    )


def run_side(tree: Path, customers: int, days: int, seed: int, log: Path) -> dict[str, Any]:
    """``tree``'s pipeline bench in a fresh interpreter (this file as the worker): its
    result, with the worker's counts under ``engine_compare``. The worker's output (the
    functions' JSON logs among it) goes to ``log``."""
    precompile(tree)
    with tempfile.TemporaryDirectory(prefix="kizuna-engine-") as tmp:
        spec = Path(tmp) / "spec.json"
        out = Path(tmp) / "result.json"
        spec.write_text(
            json.dumps(
                {
                    "tree": str(tree),
                    "customers": customers,
                    "days": days,
                    "seed": seed,
                    "out": str(out),
                }
            )
        )
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env["KIZUNA_PROJECT_ROOT"] = str(tree)
        env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        env.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
        log.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with log.open("w") as sink:
            done = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--worker", str(spec)],
                cwd=tree,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if done.returncode != 0 or not out.exists():
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the pipeline bench of {tree} failed (log: {log}):\n{tail}")
        result: dict[str, Any] = json.loads(out.read_text())
        result["engine_compare"]["process_seconds"] = time.perf_counter() - started
        return result


def compare(
    customers: int,
    days: int,
    seed: int = SEED,
    baseline_ref: str = BASELINE_REF,
    current_ref: str | None = None,
    log_dir: Path = ROOT / "out",
) -> dict[str, Any]:
    """The previous engine (``baseline_ref``) and the new one (``current_ref``, default
    this working tree) through the same pipeline bench, one after the other: figures,
    ratios (new / old), goals met; printed. ``{"skipped": reason}`` when the baseline
    commit is not in this clone (a shallow clone)."""
    baseline_tree = export_tree(baseline_ref)
    if baseline_tree is None:
        return {"skipped": f"commit {baseline_ref} is not in this clone"}
    current_tree = ROOT if current_ref is None else export_tree(current_ref)
    if current_tree is None:
        return {"skipped": f"commit {current_ref} is not in this clone"}
    sides: dict[str, dict[str, Any]] = {}
    for side, tree, ref in (
        ("baseline", baseline_tree, baseline_ref),
        ("current", current_tree, current_ref),
    ):
        label = f"commit {resolve(ref) or ref}" if ref else "this working tree"
        print(f"\nengine compare: {side} = {label}, {customers} x {days} ...", flush=True)
        log = log_dir / f"engine-compare-{side}.log"
        pipe = run_side(tree, customers, days, seed, log)
        extra = pipe["engine_compare"]
        print(
            f"  {extra['process_seconds']:.0f} s (run {pipe['wall_seconds']:.0f} s, "
            f"histories {extra['measure_seconds']:.0f} s); "
            f"kizuna from {extra['modules']['kizuna']}",
            flush=True,
        )
        sides[side] = {"label": label, "ref": ref, "log": str(log), "pipeline": pipe}
    result: dict[str, Any] = {
        "customers": customers,
        "days": days,
        "seed": seed,
        **compared(sides["baseline"]["pipeline"], sides["current"]["pipeline"]),
        "baseline": {k: v for k, v in sides["baseline"].items() if k != "pipeline"},
        "current": {k: v for k, v in sides["current"].items() if k != "pipeline"},
        "machines": {side: sides[side]["pipeline"]["engine_compare"]["machines"] for side in sides},
    }
    print_result(result)
    return result


# --- the worker (a fresh interpreter in the measured tree) ---------------------------------------


def _isolate(tree: Path) -> None:
    """Imports from ``tree`` alone: its source folders first on ``sys.path``, and the
    editable install's finder (a meta path finder answering ``kizuna*`` from the working
    tree for any module the tree lacks) and its namespace path hook removed."""
    for name in [m for m in sys.modules if m.split(".")[0] in ("kizuna", "bench")]:
        del sys.modules[name]
    sys.meta_path[:] = [
        f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")
    ]
    sys.path_hooks[:] = [
        h for h in sys.path_hooks if not getattr(h, "__module__", "").startswith("__editable__")
    ]
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [
        p
        for p in sys.path
        if p not in ("", here) and not p.startswith("__editable__") and p != str(ROOT)
    ]
    sys.path_importer_cache.clear()
    sys.path[:0] = [str(tree / d) for d in ("layers", "infra", "tools")] + [str(tree)]


def _machine_totals(cloud: Any) -> dict[str, dict[str, Any]]:
    """Per state machine: executions by status and every state entered, over all of them."""
    sfn = cloud.client("stepfunctions")
    out: dict[str, dict[str, Any]] = {}
    for machine in sfn.list_state_machines()["stateMachines"]:
        statuses: dict[str, int] = {}
        entered = 0
        for page in sfn.get_paginator("list_executions").paginate(
            stateMachineArn=machine["stateMachineArn"]
        ):
            for execution in page["executions"]:
                statuses[execution["status"]] = statuses.get(execution["status"], 0) + 1
                history = sfn.get_paginator("get_execution_history").paginate(
                    executionArn=execution["executionArn"]
                )
                entered += sum(
                    1
                    for events in history
                    for event in events["events"]
                    if event["type"].endswith("StateEntered")
                )
        out[machine["name"]] = {"executions": statuses, "states_entered": entered}
    return out


def _tree_ids(folder: Path) -> list[str]:
    import yaml

    ids = []
    for path in sorted(folder.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        if isinstance(data, dict) and data.get("id"):
            ids.append(str(data["id"]))
    return ids


@contextlib.contextmanager
def _unmetered(*_: Any) -> Iterator[None]:
    yield


def _write_units_module() -> Any:
    """``bench/write_units.py`` of this file's tree, whichever tree the worker measures
    (loaded by path, under a name ``_isolate`` leaves alone)."""
    import importlib.util

    name = "_engine_compare_write_units"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).resolve().with_name("write_units.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def worker(spec: Mapping[str, Any]) -> None:
    """Run ``spec["tree"]``'s pipeline bench; write its result, and what this adds under
    ``engine_compare``, to ``spec["out"]``."""
    import functools
    import importlib

    tree = Path(spec["tree"]).resolve()
    _isolate(tree)
    pb = importlib.import_module("bench.pipeline_bench")
    modules = {}
    for name in ("kizuna", "kizuna_tools", "kizuna_infra", "bench.pipeline_bench"):
        module = importlib.import_module(name)
        modules[name] = str(Path(module.__file__ or "?").resolve())
        if not modules[name].startswith(str(tree) + os.sep):
            raise RuntimeError(f"{name} imported from {modules[name]}, not from {tree}")
    print(f"engine compare worker: modules {modules}", flush=True)
    extra: dict[str, Any] = {
        "tree": str(tree),
        "modules": modules,
        "seed": spec["seed"],
        "measure_seconds": 0.0,
        "campaign_ids": _tree_ids(tree / "campaigns"),
        "program_ids": _tree_ids(tree / "programs"),
    }
    original = pb.transitions

    def transitions(cloud: Any) -> Any:
        t0 = time.perf_counter()
        try:
            extra["machines"] = _machine_totals(cloud)
            return original(cloud)
        finally:
            extra["measure_seconds"] = time.perf_counter() - t0

    # module attributes the bench looks up when it runs (``setattr``: a module of the tree)
    setattr(pb, "transitions", transitions)  # noqa: B010
    setattr(pb, "run_demo", functools.partial(pb.run_demo, seed=int(spec["seed"])))  # noqa: B010
    # both sides' writes priced by this file's meter (the previous tree's bench has none)
    meter = _write_units_module()
    account = importlib.import_module("kizuna_tools.local").ACCOUNT_ID
    current_function = importlib.import_module("kizuna_tools.local.functions").current_function
    units: dict[str, dict[str, dict[str, float]]] = {}
    lock = threading.Lock()

    def priced(operation: str, spent: Any) -> None:
        owner = current_function()
        role = pb.role_of(owner) if owner else "runtime"
        with lock:
            row = units.setdefault(role, {}).setdefault(
                f"dynamodb:{operation}", {"wru_table": 0.0, "wru_index": 0.0}
            )
            row["wru_table"] += spent.table
            row["wru_index"] += spent.index

    if hasattr(pb, "metered_write_units"):  # the tree's own meter: once is enough
        setattr(pb, "metered_write_units", _unmetered)  # noqa: B010
    with meter.metered_write_units(priced, account):
        result = pb.run(int(spec["customers"]), int(spec["days"]))
    extra["write_units"] = units
    result["engine_compare"] = extra
    Path(spec["out"]).write_text(json.dumps(result, default=str))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--baseline-ref", default=BASELINE_REF, help="the previous engine")
    parser.add_argument(
        "--current-ref", default=None, help="the new side as a commit (default: this tree)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker.read_text()))
        return
    sys.path.insert(0, str(ROOT))
    result = compare(args.customers, args.days, args.seed, args.baseline_ref, args.current_ref)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
