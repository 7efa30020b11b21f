"""Cold start: importing each handler module, and the first invocation's set-up, in a fresh
interpreter; today's handlers beside those of the commit before the split, same run.

Each ``functions/<name>/handler.py`` is imported as Lambda imports it (module ``handler``,
the function folder and the layer package on ``sys.path``, cwd the function folder), in a
new ``python -X importtime`` process with the environment the CDK app sets; so is
``bench/baseline_handler.py`` — a naive handler importing Powertools Logger, Tracer,
Metrics, the parser, batch processing and boto3 at the top. Two figures per module:

* import: the cumulative ``-X importtime`` of the top-level import (and the wall time of
  the ``import`` statement);
* import + first service: the wall time of the import and of the function's factory
  (``kizuna.runtime.wiring``: settings parsed, boto3 clients created, programs and templates
  loaded) — the work the first invocation does before its event, and what a handler that
  imports less merely defers. The baseline's is its import and one boto3 client. Client
  creation is offline; the one network read, the signing secret, is stubbed.

The handlers of commit ``shipped_bench.BEFORE_COMMIT`` (``git archive``, its ``layers/`` on
``sys.path``) are measured in the same run, interleaved with today's and the baseline:
median over the runs. Interpreter start-up (site, encodings) is in no figure.
"""

from __future__ import annotations

import compileall
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import print_table
from bench.shipped_bench import BEFORE_COMMIT, exported_tree

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ROOT / "functions"
LAYER = ROOT / "layers"
BASELINE = "baseline (naive Powertools)"

# Plausible values of what the CDK app sets (kizuna.runtime.settings names).
ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_LAMBDA_FUNCTION_NAME": "Kizuna-bench",  # Powertools Tracer is on inside Lambda
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "POWERTOOLS_SERVICE_NAME": "kizuna-bench",
    "POWERTOOLS_METRICS_NAMESPACE": "Kizuna",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "CUSTOMERS_TABLE": "customers",
    "ACTIVITY_TABLE": "activity",
    "IDEMPOTENCY_TABLE": "idempotency",
    "PRODUCTS_TABLE": "products",
    "SNAPSHOTS_TABLE": "snapshots",
    "ANALYTICS_BUCKET": "analytics",
    "CAMPAIGNS_TABLE": "campaigns",
    "EVENT_BUS_NAME": "kizuna",
    "DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
    "JOURNEY_ARN_PREFIX": "arn:aws:states:us-east-1:123456789012:stateMachine:Kizuna-",
    "JOURNEY_SCHEDULE_GROUP": "Kizuna-journeys",
    "JOURNEY_SCHEDULER_ROLE_ARN": "arn:aws:iam::123456789012:role/Kizuna-journey-timers",
    "ERASURE_SWEEP_GROUP": "Kizuna-journeys",
    "ERASURE_SWEEP_ROLE_ARN": "arn:aws:iam::123456789012:role/Kizuna-erasure-sweeps",
    "INGEST_QUEUE_ARN": "arn:aws:sqs:us-east-1:123456789012:ingest",
    "DEAD_LETTER_QUEUE_ARN": "arn:aws:sqs:us-east-1:123456789012:dlq",
    "SIGNING_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:signing",
    "EMAIL_FROM": "shop@example.com",
    "SES_CONFIGURATION_SET": "kizuna",
    "UNSUBSCRIBE_URL": "https://example.lambda-url.us-east-1.on.aws/",
    "USER_POOL_ID": "us-east-1_bench",
    "USER_POOL_CLIENT_ID": "benchclient",
    "CAMPAIGN_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:c",
    "CAMPAIGN_SCHEDULE_GROUP": "kizuna-campaigns",
    "CAMPAIGN_SCHEDULER_ROLE_ARN": "arn:aws:iam::123456789012:role/scheduler",
    "SEND_FUNCTION_NAME": "kizuna-send",
    "LINE_CHANNEL_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:line",
}

# The factory each function's first invocation calls; the first name its wiring module has
# (names changed with the split: kizuna.wiring then, kizuna.runtime.wiring now).
WIRING_MODULES = ("kizuna.runtime.wiring", "kizuna.wiring")
FACTORIES: dict[str, tuple[str, ...]] = {
    "ingest": ("ingest_service",),
    "evaluate": ("evaluate_service",),
    "journey": ("journey_service",),
    "sweep": ("sweep_job", "sweep_parts"),
    "score": ("score_job", "score_parts"),
    "send": ("send_service",),
    "feedback": ("feedback_service",),
    "unsubscribe": ("unsubscribe_service",),
    "campaign": ("campaign_service",),
    "api": ("api_app",),
    "line_webhook": ("line_webhook_service",),
}
# these read the signing key from Secrets Manager: stubbed
NEEDS_SECRET = {"send", "unsubscribe", "campaign", "line_webhook"}

PROBE = """
import importlib, json, sys, time
spec = json.loads(sys.argv[1])
t0 = time.perf_counter()
handler = __import__(spec["module"])  # the C import path: -X importtime logs it
t1 = time.perf_counter()
if spec["factories"]:
    if spec["secret"]:
        from aws_lambda_powertools.utilities import parameters
        parameters.get_secret = lambda *a, **k: '{"current": "bench-signing-key"}'
    wiring = importlib.import_module(spec["wiring"])
    factory = next(getattr(wiring, f) for f in spec["factories"] if hasattr(wiring, f))
    factory()
else:
    import boto3
    boto3.client("dynamodb")
t2 = time.perf_counter()
kizuna = sys.modules.get("kizuna")
sys.stdout.write(json.dumps({"import": t1 - t0, "first": t2 - t0,
                             "kizuna": getattr(kizuna, "__file__", None)}))
"""


@dataclass(frozen=True)
class Target:
    """One module to import: its folder, file, the layer folder and its factories."""

    folder: Path
    module: str = "handler"
    layer: Path = LAYER
    factories: tuple[str, ...] = ()
    secret: bool = False


@dataclass(frozen=True)
class Sample:
    importtime_ms: float
    wall_ms: float
    first_ms: float


def targets_of(tree: Path, label: str = "") -> dict[str, Target]:
    """Every handler of ``tree`` (``functions/*/handler.py``, layer ``tree/layers``)."""
    return {
        f"{label}{p.parent.name}": Target(
            folder=p.parent,
            layer=tree / "layers",
            factories=FACTORIES[p.parent.name],
            secret=p.parent.name in NEEDS_SECRET,
        )
        for p in sorted((tree / "functions").glob("*/handler.py"))
    }


def wiring_module(layer: Path) -> str:
    """The wiring module of the ``kizuna`` package under ``layer`` (looked up by file: the
    editable install of today's package would answer an import of a missing one)."""
    for name in WIRING_MODULES:
        if (layer / f"{name.replace('.', '/')}.py").is_file():
            return name
    raise FileNotFoundError(f"no wiring module under {layer}")


def probe(target: Target) -> tuple[Sample, str | None]:
    """Import ``target`` (and build its service) in a new process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    env.update(ENVIRONMENT)
    env["PYTHONPATH"] = os.pathsep.join([str(target.folder), str(target.layer)])
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    spec = {
        "module": target.module,
        "factories": list(target.factories),
        "wiring": wiring_module(target.layer),
        "secret": target.secret,
    }
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", PROBE, json.dumps(spec)],
        cwd=target.folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"probe of {target.folder} failed:\n{done.stderr[-2000:]}")
    cumulative = importtime_of(done.stderr, target.module)
    result = json.loads(done.stdout)
    sample = Sample(cumulative, result["import"] * 1000, result["first"] * 1000)
    return sample, result["kizuna"]


def importtime_of(stderr: str, module: str) -> float:
    """Cumulative ms of the top-level ``module`` import in ``-X importtime`` output."""
    cumulative = None
    for line in stderr.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == module:  # top level: no indentation
            cumulative = int(parts[1]) / 1000
    if cumulative is None:
        raise RuntimeError(f"no importtime line for {module}")
    return cumulative


def compile_sources(targets: Iterable[Target]) -> None:
    """Byte-compile every handler folder and layer package (what a first import would do)."""
    folders = {t.folder for t in targets} | {t.layer for t in targets if t.factories}
    for folder in sorted(folders):
        compileall.compile_dir(folder, quiet=1, workers=1)


def summary(samples: list[Sample]) -> dict[str, float]:
    return {
        "importtime_ms": statistics.median(s.importtime_ms for s in samples),
        "wall_ms": statistics.median(s.wall_ms for s in samples),
        "first_ms": statistics.median(s.first_ms for s in samples),
    }


def run(runs: int = 5, before_commit: str | None = BEFORE_COMMIT) -> dict[str, Any]:
    targets = targets_of(ROOT)
    targets[BASELINE] = Target(folder=ROOT / "bench", module="baseline_handler")
    before_tree = exported_tree(before_commit) if before_commit else None
    before = targets_of(before_tree, "before:") if before_tree else {}
    everything = {**targets, **before}
    compile_sources(everything.values())  # every measured import finds .pyc, as Lambda's would
    samples: dict[str, list[Sample]] = {n: [] for n in everything}
    for _ in range(runs):
        for name, target in everything.items():
            sample, kizuna = probe(target)
            if target.factories and not (kizuna or "").startswith(str(target.layer)):
                raise RuntimeError(f"{name} imported kizuna from {kizuna}, not {target.layer}")
            samples[name].append(sample)
    out: dict[str, Any] = {
        "runs": runs,
        "before_commit": before_commit if before_tree else None,
        "modules": {n: summary(samples[n]) for n in targets},
        "before": {n.removeprefix("before:"): summary(samples[n]) for n in before},
    }
    print_coldstart(out)
    return out


def _x(value: float, base: float | None) -> str:
    return "-" if not base else f"{value / base:.2f}x"


def print_coldstart(out: dict[str, Any]) -> None:
    base = out["modules"][BASELINE]
    before = out["before"]
    print_table(
        f"Cold start: handler import, and import + first service construction, in a fresh "
        f"interpreter (median of {out['runs']}, ms); before = {out['before_commit'] or 'SKIPPED'}",
        [
            "module",
            "import",
            "vs baseline",
            "+first service",
            "vs baseline+client",
            "before import",
            "before +first",
            "import a/b",
            "+first a/b",
        ],
        [
            [
                name,
                f"{m['importtime_ms']:.0f}",
                "-" if name == BASELINE else _x(m["importtime_ms"], base["importtime_ms"]),
                f"{m['first_ms']:.0f}",
                "-" if name == BASELINE else _x(m["first_ms"], base["first_ms"]),
                f"{before[name]['importtime_ms']:.0f}" if name in before else "-",
                f"{before[name]['first_ms']:.0f}" if name in before else "-",
                _x(m["importtime_ms"], before.get(name, {}).get("importtime_ms")),
                _x(m["first_ms"], before.get(name, {}).get("first_ms")),
            ]
            for name, m in out["modules"].items()
        ],
    )
    print(
        "import = -X importtime cumulative of the handler module; +first service = wall time "
        "of the import and the function's factory (baseline: its import and one boto3 client)"
    )


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    run()
