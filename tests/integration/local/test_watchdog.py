"""The local runtime fails loudly, with every thread's stack, when nothing progresses.

A function stuck on something outside the runtime (here: a file that never appears) used to
hang a run until it was killed; the watchdog reports it after ``stall_timeout`` seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from kizuna_tools.local import LocalCloud
from kizuna_tools.local.watchdog import STALL_EXIT_CODE, Watchdog
from tests.integration.local.fixtures import state_machine

STUCK_HANDLER = """
import os
import time
from pathlib import Path


def handler(event, context):
    release = Path(os.environ["RELEASE"])
    while not release.exists():  # stuck on something the runtime does not drive
        time.sleep(0.02)
    return {"released": True}
"""


def stuck_project(root: Path) -> tuple[dict[str, Any], Path]:
    folder = root / "functions" / "stuck"
    folder.mkdir(parents=True)
    (folder / "handler.py").write_text(textwrap.dedent(STUCK_HANDLER))
    release = root / "release"
    template = {
        "Resources": {
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {"AssumeRolePolicyDocument": {"Statement": []}},
            },
            "Stuck": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Code": {"S3Bucket": "cdk-assets", "S3Key": "stuck.zip"},
                    "Handler": "handler.handler",
                    "Runtime": "python3.13",
                    "Timeout": 900,
                    "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                    "Environment": {"Variables": {"RELEASE": str(release)}},
                },
                "Metadata": {"kizuna:function": "stuck"},
                "DependsOn": ["Role"],
            },
            "Journey": state_machine(
                {
                    "StartAt": "Call",
                    "States": {
                        "Call": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::lambda:invoke",
                            "Parameters": {"FunctionName": "${Stuck}", "Payload": {}},
                            "End": True,
                        }
                    },
                }
            ),
        }
    }
    return template, release


def test_a_stuck_function_is_reported_with_its_stack_and_what_the_runtime_waits_for(
    tmp_path: Path,
) -> None:
    # Given a function that waits for something the runtime never does
    template, release = stuck_project(tmp_path)
    reports: list[str] = []

    def on_stall(report: str) -> None:
        reports.append(report)
        release.touch()  # let the test finish

    with LocalCloud.from_template(
        template, project_root=tmp_path, stall_timeout=1.0, on_stall=on_stall
    ) as cloud:
        # When the runtime invokes it
        started = time.monotonic()
        invocation = cloud.invoke("Stuck", {})
        waited = time.monotonic() - started

    # Then the watchdog reported the stall once, after the timeout, and the run went on
    assert invocation.ok and len(reports) == 1
    assert 1.0 <= waited < 30
    report = reports[0]
    assert "STALLED" in report and "stall timeout 1s" in report
    assert "driving: invoke kizuna-Stuck" in report
    assert "function running: kizuna-Stuck on thread" in report
    assert "virtual clock: 2026-01-01T00:00:00+00:00" in report
    # every thread's stack, the stuck handler's line among them
    assert "--- thread 'MainThread'" in report
    assert "functions/stuck/handler.py" in report and "time.sleep(0.02)" in report


def test_a_stuck_execution_is_reported_with_the_execution_threads(tmp_path: Path) -> None:
    # Given a state machine whose task calls the stuck function
    template, release = stuck_project(tmp_path)
    reports: list[str] = []

    def on_stall(report: str) -> None:
        reports.append(report)
        release.touch()

    with LocalCloud.from_template(
        template, project_root=tmp_path, stall_timeout=1.0, on_stall=on_stall
    ) as cloud:
        sfn = cloud.client("stepfunctions")
        arn = cloud.find("AWS::StepFunctions::StateMachine")[0].arn
        sfn.start_execution(stateMachineArn=arn, input=json.dumps({}))
        # When the runtime waits for the execution
        cloud.drain()
        counts = cloud.execution_counts()

    # Then the report names the wait, the execution thread and the function it runs
    assert len(reports) == 1 and sum(counts.values()) == 1
    report = reports[0]
    assert "driving: drain" in report and "wait for the executions" in report
    assert "execution threads: " in report and "function running: kizuna-Stuck" in report
    assert "functions/stuck/handler.py" in report


def test_an_idle_cloud_is_not_a_stall(tmp_path: Path) -> None:
    # Given a cloud the caller holds open without asking it to do anything
    template, _ = stuck_project(tmp_path)
    reports: list[str] = []
    with LocalCloud.from_template(
        template, project_root=tmp_path, stall_timeout=1.0, on_stall=reports.append
    ):
        time.sleep(2.5)  # idle well past the timeout; closing (driving) stays well within it
    # Then nothing is reported: only time spent driving the app counts
    assert reports == []


def test_progress_resets_the_watchdog() -> None:
    ticks = [0]
    reports: list[str] = []
    dog = Watchdog(1.0, lambda: ticks[0], lambda: "waiting for nothing", on_stall=reports.append)
    with dog.phase("busy"):
        dog._last_change -= 0.9  # almost a stall ...
        ticks[0] += 1  # ... but something completed
        assert dog.check() is None
        dog._last_change -= 1.5
        report = dog.check()
    assert report is not None and "waiting for nothing" in report and "driving: busy" in report


SCRIPT = """
import sys
from pathlib import Path
from kizuna_tools.local import LocalCloud
from tests.integration.local.test_watchdog import stuck_project

template, _ = stuck_project(Path(sys.argv[1]))
with LocalCloud.from_template(template, project_root=Path(sys.argv[1]), stall_timeout=1.0) as cloud:
    cloud.invoke("Stuck", {})
print("not reached")
"""


def test_by_default_a_stall_ends_the_process_non_zero_with_the_report(tmp_path: Path) -> None:
    # Given a run whose function is stuck, with the default on_stall
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Then the process ends with the stall status, every stack on stderr (faulthandler too)
    assert done.returncode == STALL_EXIT_CODE, done.stderr[-2000:]
    assert "not reached" not in done.stdout
    assert "STALLED" in done.stderr and "functions/stuck/handler.py" in done.stderr
    assert "Current thread" in done.stderr or "Thread 0x" in done.stderr  # faulthandler's dump
