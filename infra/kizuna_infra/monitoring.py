"""Alarms and one dashboard: what an operator needs to see when something breaks.

Every alarm notifies one SNS topic (encrypted, SSL only): subscribe an email address,
a chat webhook or an incident tool to it. Built last, from what the app contains: every
dead-letter queue, function and journey state machine of the scope is covered, so a
construct added later is monitored without a line here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from kizuna.delivery.feedback import PROVIDER_REPORTS
from kizuna.events.inbound import Channel
from kizuna.runtime.observability import (
    CHANNEL_DIMENSION,
    NO_CHANNEL,
    OUTCOME_DIMENSION,
    PROVIDER_REPORT_METRIC,
    REASON_DIMENSION,
    SEND_FAILED_METRIC,
    STALE_OUTCOMES,
    STALE_SENDING_METRIC,
)
from kizuna_infra import names

# SES reviews an account at a 5% bounce rate and may pause sending at 10%; complaints at
# 0.1% and 0.5%. Alarm at the review thresholds, before SES acts.
SES_BOUNCE_RATE_THRESHOLD = 0.05
SES_COMPLAINT_RATE_THRESHOLD = 0.001
# every channel a send may fail on (webhook and direct mail included), and ``none``: a
# message failed before a channel was chosen (an unreadable customer item)
CHANNELS = (*(c.value for c in Channel), NO_CHANNEL)
PERIOD = Duration.minutes(5)
SES_PERIOD = Duration.hours(1)
STALE_PERIOD = Duration.minutes(30)  # the reconciliation sweep's rate
DLQ_SUFFIX = "DeadLetterQueue"
_C = TypeVar("_C", bound=Construct)


def _short(construct: Construct) -> str:
    """A readable, unique alarm id from the construct path (``Ingest/DeadLetterQueue``)."""
    return construct.node.path.replace("/", "")


def _lambda_sum(metric_name: str) -> Callable[[lambda_.Function], cw.Metric]:
    """A function's Lambda metric ``metric_name`` (``Errors``, ``Throttles``), summed."""
    return lambda fn: fn.metric(metric_name, period=PERIOD, statistic="Sum")


class Monitoring(Construct):
    """Alarms (DLQ depth, errors, throttles, failed journeys, SES reputation, mailbox
    providers' auth-failure and virus reports, failed sends per channel) on one SNS topic,
    and one CloudWatch dashboard."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dead_letter_queues: Sequence[sqs.Queue],
        functions: Sequence[lambda_.Function],
        state_machines: Sequence[sfn.StateMachine],
        dashboard_name: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        # CloudWatch cannot publish to a topic under the AWS managed SNS key: a customer
        # managed key that lets CloudWatch use it.
        self.key = kms.Key(
            self,
            "AlarmTopicKey",
            description="Kizuna alarm topic",
            enable_key_rotation=True,
        )
        self.key.grant(
            iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*"
        )
        self.topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name="Kizuna alarms",
            master_key=self.key,
            enforce_ssl=True,
        )
        self.action = cw_actions.SnsAction(self.topic)
        self.alarms: list[cw.Alarm] = []

        dead_letters = self._alarm_each(
            dead_letter_queues,
            "Depth",
            lambda q: q.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic="Maximum"
            ),
            "Dead letters in {path}: `kizuna dlq show`",
        )
        errors, throttles = (
            self._alarm_each(functions, metric_name, _lambda_sum(metric_name), description)
            for metric_name, description in (
                ("Errors", "{path} raised errors"),
                ("Throttles", "{path} was throttled"),
            )
        )
        failed_journeys = self._alarm_each(
            state_machines,
            "Failed",
            lambda machine: machine.metric_failed(period=PERIOD, statistic="Sum"),
            "Journey executions failed in {path}",
        )

        bounce, complaint = (
            cw.Metric(namespace="AWS/SES", metric_name=name, statistic="Average", period=SES_PERIOD)
            for name in ("Reputation.BounceRate", "Reputation.ComplaintRate")
        )
        self._alarm(
            "SesBounceRate",
            bounce,
            threshold=SES_BOUNCE_RATE_THRESHOLD,
            description="SES bounce rate at the 5% review threshold",
        )
        self._alarm(
            "SesComplaintRate",
            complaint,
            threshold=SES_COMPLAINT_RATE_THRESHOLD,
            description="SES complaint rate at the 0.1% review threshold",
        )
        # A mailbox provider's report about the mail, not a complaint (it suppresses no one):
        # auth-failure (SPF/DKIM/DMARC failed there: mail heading for the junk folder or
        # refused) or virus. SES passes both as complaints; one is worth a look.
        provider_reports = []
        for report in sorted(PROVIDER_REPORTS):
            metric = cw.Metric(
                namespace=names.METRICS_NAMESPACE,
                metric_name=PROVIDER_REPORT_METRIC,
                dimensions_map={REASON_DIMENSION: report},
                statistic="Sum",
                period=PERIOD,
            )
            title = "".join(part.capitalize() for part in report.split("-"))
            self._alarm(
                f"EmailProviderReport{title}",
                metric,
                description=f"A mailbox provider reported an email as {report} "
                "(EmailProviderReport; docs/channels/EMAIL.md)",
            )
            provider_reports.append(metric)

        send_failed = []
        for channel in CHANNELS:
            metric = cw.Metric(
                namespace=names.METRICS_NAMESPACE,
                metric_name=SEND_FAILED_METRIC,
                dimensions_map={CHANNEL_DIMENSION: channel},
                statistic="Sum",
                period=PERIOD,
            )
            self._alarm(
                f"SendFailed{channel.capitalize()}",
                metric,
                description=f"Sends failed on {channel}"
                if channel != NO_CHANNEL
                else "Sends failed before a channel was chosen",
            )
            send_failed.append(metric)

        # Ledger entries the reconciliation sweep found still `sending` long after their
        # claim (a crash, or an outcome not written after delivery), by how it settled them.
        stale = {
            outcome: cw.Metric(
                namespace=names.METRICS_NAMESPACE,
                metric_name=STALE_SENDING_METRIC,
                dimensions_map={OUTCOME_DIMENSION: outcome},
                statistic="Sum",
                period=STALE_PERIOD,
            )
            for outcome in STALE_OUTCOMES
        }
        stale_sending = cw.MathExpression(
            expression=" + ".join(f"FILL(s{i}, 0)" for i in range(len(stale))),
            using_metrics={f"s{i}": m for i, m in enumerate(stale.values())},
            label="Stale sending entries",
            period=STALE_PERIOD,
        )
        self._alarm(
            names.STALE_SENDING_ALARM_ID,
            stale_sending,
            description="Ledger entries left at `sending` (settled by the reconciliation "
            "sweep; outcome_unknown: the customer may or may not have the message)",
        )

        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=dashboard_name)
        self.dashboard.add_widgets(
            cw.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Dead letters", left=dead_letters, width=8),
            cw.GraphWidget(title="Function errors", left=errors, width=8),
            cw.GraphWidget(title="Function throttles", left=throttles, width=8),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Failed journey executions", left=failed_journeys, width=8),
            cw.GraphWidget(title="Failed sends by channel", left=send_failed, width=8),
            cw.GraphWidget(title="SES reputation", left=[bounce, complaint], width=8),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Stale sending entries", left=list(stale.values()), width=8),
            cw.GraphWidget(title="Email provider reports", left=provider_reports, width=8),
        )

    def _alarm_each(
        self,
        constructs: Sequence[_C],
        suffix: str,
        metric_of: Callable[[_C], cw.Metric],
        description: str,
    ) -> list[cw.IMetric]:
        """One alarm (above 0) per construct, ``<construct path><suffix>``; their metrics.
        ``{path}`` in ``description`` is the construct's path."""
        metrics: list[cw.IMetric] = []
        for construct in constructs:
            metric = metric_of(construct)
            self._alarm(
                f"{_short(construct)}{suffix}",
                metric,
                description=description.format(path=construct.node.path),
            )
            metrics.append(metric)
        return metrics

    def _alarm(
        self, alarm_id: str, metric: cw.IMetric, *, description: str, threshold: float = 0
    ) -> cw.Alarm:
        alarm = cw.Alarm(
            self,
            alarm_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(self.action)
        self.alarms.append(alarm)
        return alarm


def monitored(
    scope: Construct,
) -> tuple[list[sqs.Queue], list[lambda_.Function], list[sfn.StateMachine]]:
    """The dead-letter queues, functions and state machines under ``scope``."""
    queues, functions, machines = [], [], []
    for c in scope.node.find_all():
        if isinstance(c, sqs.Queue) and c.node.id.endswith(DLQ_SUFFIX):
            queues.append(c)
        elif isinstance(c, lambda_.Function):
            functions.append(c)
        elif isinstance(c, sfn.StateMachine):
            machines.append(c)
    return queues, functions, machines
