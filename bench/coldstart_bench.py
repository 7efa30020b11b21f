"""Cold start: how long importing each handler module takes in a fresh interpreter.

Each ``functions/<name>/handler.py`` is imported as Lambda imports it (module ``handler``,
the function folder and the layer package on ``sys.path``), in a new ``python -X importtime``
process with the environment the CDK app sets; so is ``bench/baseline_handler.py`` — a
naive handler importing Powertools Logger, Tracer, Metrics, the parser and batch processing
at the top — in the same run, interleaved with the handlers. Reported per module: the
median over the runs of the cumulative microseconds of the top-level ``handler`` import
(``-X importtime``), and of the wall time of the ``import`` statement. Interpreter start-up
(site, encodings) is in neither; the handlers' first-invocation work (clients, programs)
is not an import and not measured here.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import print_table

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ROOT / "functions"
LAYER = ROOT / "layers"
BASELINE = "baseline (naive Powertools)"

# Plausible values of what the CDK app sets (kizuna.runtime.settings names); nothing reads them at
# import, but a handler that did would find them.
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
    "EVENT_BUS_NAME": "kizuna",
    "DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
    "JOURNEY_ARN_PREFIX": "arn:aws:states:us-east-1:123456789012:stateMachine:Kizuna-",
    "SIGNING_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:signing",
    "EMAIL_FROM": "shop@example.com",
    "SES_CONFIGURATION_SET": "kizuna",
    "UNSUBSCRIBE_URL": "https://example.lambda-url.us-east-1.on.aws/",
}

PROBE = (
    "import time, sys; t = time.perf_counter(); import handler; "
    "sys.stdout.write(repr(time.perf_counter() - t))"
)


def modules() -> dict[str, Path]:
    """Module name -> the folder holding its ``handler.py``."""
    found = {p.parent.name: p.parent for p in sorted(FUNCTIONS.glob("*/handler.py"))}
    return found


def import_once(folder: Path, module_file: str = "handler.py") -> tuple[float, float]:
    """(-X importtime cumulative ms of ``handler``, wall ms of the import) in a new process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    env.update(ENVIRONMENT)
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(LAYER), str(ROOT)])
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    probe = PROBE
    if module_file != "handler.py":
        probe = PROBE.replace("import handler", f"import {Path(module_file).stem} as handler")
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", probe],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    name = Path(module_file).stem
    cumulative = None
    for line in done.stderr.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == name:  # top level: no indentation
            cumulative = int(parts[1]) / 1000
    if cumulative is None:
        raise RuntimeError(f"no importtime line for {name} in {folder}")
    return cumulative, float(done.stdout) * 1000


def run(runs: int = 5) -> dict[str, Any]:
    targets: dict[str, tuple[Path, str]] = {n: (d, "handler.py") for n, d in modules().items()}
    targets[BASELINE] = (ROOT / "bench", "baseline_handler.py")
    for folder, file in targets.values():  # compile once: every measured run finds .pyc
        import_once(folder, file)
    samples: dict[str, list[tuple[float, float]]] = {n: [] for n in targets}
    for _ in range(runs):
        for name, (folder, file) in targets.items():
            samples[name].append(import_once(folder, file))
    out: dict[str, Any] = {"runs": runs, "modules": {}}
    for name, values in samples.items():
        out["modules"][name] = {
            "importtime_ms": statistics.median(v[0] for v in values),
            "wall_ms": statistics.median(v[1] for v in values),
        }
    base = out["modules"][BASELINE]["importtime_ms"]
    print_table(
        f"Cold start: handler module import in a fresh interpreter (median of {runs})",
        ["module", "-X importtime ms", "wall ms", "vs baseline"],
        [
            [
                name,
                f"{m['importtime_ms']:.0f}",
                f"{m['wall_ms']:.0f}",
                "-" if name == BASELINE else f"{m['importtime_ms'] / base:.2f}x",
            ]
            for name, m in out["modules"].items()
        ],
    )
    return out


if __name__ == "__main__":
    run()
