"""Alarms and dashboard: each alarm watches the right metric with the right threshold and
notifies the alarm topic; every DLQ, function and journey is covered."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from kizuna.events.inbound import Channel
from kizuna_infra import KizunaStack

pytestmark = pytest.mark.infra


def alarms(resources: dict[str, Any]) -> list[dict[str, Any]]:
    return [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]


def topic_id(resources: dict[str, Any]) -> str:
    (tid,) = [k for k, r in resources.items() if r["Type"] == "AWS::SNS::Topic"]
    return tid


def by_metric(resources: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [a for a in alarms(resources) if a.get("MetricName") == name]


def test_every_alarm_notifies_the_encrypted_ssl_only_topic(
    template: Template, resources: dict[str, Any]
) -> None:
    tid = topic_id(resources)
    assert resources[tid]["Properties"]["KmsMasterKeyId"]
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )
    for alarm in alarms(resources):
        assert alarm["AlarmActions"] == [{"Ref": tid}], alarm["AlarmDescription"]
        assert alarm["TreatMissingData"] == "notBreaching"


def test_every_dead_letter_queue_alarms_on_one_visible_message(
    resources: dict[str, Any],
) -> None:
    dlqs = {k for k, r in resources.items() if r["Type"] == "AWS::SQS::Queue" and "DeadLetter" in k}
    depth = by_metric(resources, "ApproximateNumberOfMessagesVisible")
    watched = {a["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in depth}
    assert watched == dlqs and len(dlqs) >= 4
    for a in depth:
        assert (a["Threshold"], a["ComparisonOperator"], a["EvaluationPeriods"]) == (
            0,
            "GreaterThanThreshold",
            1,
        )
        assert a["Statistic"] == "Maximum" and a["Period"] == 60


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_alarms_on_errors_and_throttles(
    resources: dict[str, Any], metric: str
) -> None:
    functions = {k for k, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    found = by_metric(resources, metric)
    assert {a["Dimensions"][0]["Value"]["Ref"] for a in found} == functions
    for a in found:
        assert (a["Namespace"], a["Statistic"], a["Period"]) == ("AWS/Lambda", "Sum", 300)
        assert (a["Threshold"], a["ComparisonOperator"], a["EvaluationPeriods"]) == (
            0,
            "GreaterThanThreshold",
            1,
        )


def test_every_journey_alarms_on_failed_executions(resources: dict[str, Any]) -> None:
    machines = {k for k, r in resources.items() if r["Type"] == "AWS::StepFunctions::StateMachine"}
    found = by_metric(resources, "ExecutionsFailed")
    assert {a["Dimensions"][0]["Value"]["Ref"] for a in found} == machines
    assert all(a["Threshold"] == 0 and a["EvaluationPeriods"] == 1 for a in found)


@pytest.mark.parametrize(
    ("metric", "threshold"),
    [("Reputation.BounceRate", 0.05), ("Reputation.ComplaintRate", 0.001)],
)
def test_ses_reputation_alarms_at_the_review_thresholds(
    resources: dict[str, Any], metric: str, threshold: float
) -> None:
    (alarm,) = by_metric(resources, metric)
    assert (alarm["Namespace"], alarm["Statistic"], alarm["Period"]) == ("AWS/SES", "Average", 3600)
    assert (alarm["Threshold"], alarm["ComparisonOperator"], alarm["EvaluationPeriods"]) == (
        threshold,
        "GreaterThanThreshold",
        1,
    )


def test_failed_sends_alarm_per_channel(resources: dict[str, Any]) -> None:
    # every channel a send can fail on (a webhook's failures too, docs/channels/WEBHOOK.md),
    # and "none": a message that failed before a channel was chosen
    found = by_metric(resources, "SendFailed")
    assert sorted(a["Dimensions"][0]["Value"] for a in found) == sorted(
        [*(c.value for c in Channel), "none"]
    )
    assert "webhook" in {a["Dimensions"][0]["Value"] for a in found}
    for a in found:
        assert a["Namespace"] == "Kizuna" and a["Dimensions"][0]["Name"] == "channel"
        assert (a["Threshold"], a["ComparisonOperator"]) == (0, "GreaterThanThreshold")


def test_stale_sending_entries_alarm(resources: dict[str, Any]) -> None:
    # one alarm over the reconciliation sweep's StaleSending counts, every outcome
    (alarm,) = [a for a in alarms(resources) if "Metrics" in a and "sending" in str(a).lower()]
    used = [m for m in alarm["Metrics"] if "MetricStat" in m]
    assert sorted(m["MetricStat"]["Metric"]["Dimensions"][0]["Value"] for m in used) == [
        "not_dispatched",
        "outcome_unknown",
        "sent",
    ]
    for m in used:
        metric = m["MetricStat"]["Metric"]
        assert (metric["Namespace"], metric["MetricName"]) == ("Kizuna", "StaleSending")
        assert m["MetricStat"]["Period"] == 1800 and m["ReturnData"] is False
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")


def test_one_dashboard(template: Template, stack: KizunaStack) -> None:
    template.resource_count_is("AWS::CloudWatch::Dashboard", 1)
    assert len(stack.kizuna.monitoring.alarms) == len(
        template.find_resources("AWS::CloudWatch::Alarm")
    )


def test_a_providers_auth_failure_or_virus_report_alarms(resources: dict[str, Any]) -> None:
    # SES passes them as complaints; Kizuna suppresses no one for them and counts them
    found = by_metric(resources, "EmailProviderReport")
    assert sorted(a["Dimensions"][0]["Value"] for a in found) == ["auth-failure", "virus"]
    for a in found:
        assert a["Namespace"] == "Kizuna" and a["Dimensions"][0]["Name"] == "reason"
        assert (a["Statistic"], a["Period"]) == ("Sum", 300)
        assert (a["Threshold"], a["ComparisonOperator"], a["EvaluationPeriods"]) == (
            0,
            "GreaterThanThreshold",
            1,
        )


def _alarmed_metrics(resources: dict[str, Any]) -> set[tuple[str, frozenset[str]]]:
    """(metric name, dimension names) of every alarm on a metric in Kizuna's namespace, a
    math expression's metrics included."""
    found = set()
    for alarm in alarms(resources):
        metrics = [alarm] if "MetricName" in alarm else []
        metrics += [
            m["MetricStat"]["Metric"] for m in alarm.get("Metrics", []) if "MetricStat" in m
        ]
        for m in metrics:
            if m["Namespace"] == "Kizuna":
                names = frozenset(d["Name"] for d in m.get("Dimensions", []))
                found.add((m["MetricName"], names))
    return found


def test_every_kizuna_metric_alarmed_on_is_emitted_with_the_alarms_dimensions(
    resources: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # CloudWatch keys a metric by its whole dimension set: an alarm on SendFailed{channel}
    # never sees SendFailed{channel, service}. Emit each as a deployed function does (every
    # function has POWERTOOLS_SERVICE_NAME) and read the EMF lines.
    import json

    from kizuna.runtime.observability import count_send_failure, count_stale_sending
    from kizuna.services.feedback import count_provider_report

    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "kizuna-send")
    capsys.readouterr()
    count_send_failure("email")
    count_stale_sending("outcome_unknown", 1)
    count_provider_report("virus")
    emitted = set()
    for line in capsys.readouterr().out.splitlines():
        for directive in json.loads(line)["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                for dimension_set in directive["Dimensions"]:
                    emitted.add((metric["Name"], frozenset(dimension_set)))
    alarmed = _alarmed_metrics(resources)
    assert {name for name, _ in alarmed} == {"SendFailed", "StaleSending", "EmailProviderReport"}
    assert alarmed <= emitted, sorted(alarmed - emitted)


def _documented_alarms() -> list[str]:
    """The alarm names in the first column of docs/DEPLOY.md's alarm table (section 5)."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "DEPLOY.md").read_text("utf-8")
    assert "- **Alarms**" in text, "docs/DEPLOY.md has no alarm table"
    section = text.split("- **Alarms**", 1)[1].split("\n- **", 1)[0]
    names = []
    for row in section.splitlines():
        cells = row.strip().split("|")
        if len(cells) > 3 and not set(cells[1].strip()) <= set("-"):
            names += re.findall(r"`([^`]+)`", cells[1])
    return names


def _documents(pattern: str, alarm_id: str) -> bool:
    if pattern.startswith("…"):
        return alarm_id.endswith(pattern[1:])
    if pattern.endswith(">"):
        return alarm_id.startswith(pattern.split("<", 1)[0])
    return alarm_id == pattern


def test_every_alarm_has_a_documented_meaning_and_action(stack: KizunaStack) -> None:
    # an operator paged by an alarm finds it in docs/DEPLOY.md's table: what it means, what
    # to do
    documented = _documented_alarms()
    assert documented
    ids = [a.node.id for a in stack.kizuna.monitoring.alarms]
    missing = [i for i in ids if not any(_documents(p, i) for p in documented)]
    assert not missing, missing
    unused = [p for p in documented if not any(_documents(p, i) for i in ids)]
    assert not unused, unused
