"""Delivery: signing secret, SES configuration set, send, unsubscribe URL and feedback."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk.assertions import Template
from infra_helpers import (
    CONFIGURED_WEBHOOK_SECRETS,
    StackIds,
    actions_of,
    arn,
    environment,
    function_statements,
    index_arn,
    iter_resources,
    of_type,
    resources_for,
    statements_of,
    webhook_secret_resources,
)
from moto.events.models import EventPattern

from kizuna.runtime.settings import (
    FeedbackSettings,
    LineWebhookSettings,
    LinkSettings,
    SendSettings,
    UnsubscribeSettings,
)
from kizuna_infra.delivery import email_domain
from kizuna_infra.stack import KizunaStack

pytestmark = pytest.mark.infra

LogicalId = Callable[[Any], str]
# The sending events the configuration set publishes -> their detail-type on EventBridge.
SES_DETAIL_TYPES = {
    "bounce": "Email Bounced",
    "complaint": "Email Complaint Received",
    "delivery": "Email Delivered",
    "open": "Email Opened",
    "click": "Email Clicked",
    "reject": "Email Rejected",
    "renderingFailure": "Email Rendering Failed",
}


def ses_arn(resource: Any) -> dict[str, Any]:
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":ses:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                *resource,
            ],
        ]
    }


class Ids(StackIds):
    def __init__(self, stack: KizunaStack, logical_id: LogicalId) -> None:
        super().__init__(stack, logical_id)
        k = stack.kizuna
        d = k.delivery
        self.secret = logical_id(d.signing_secret)
        self.configuration_set = logical_id(d.configuration_set)
        self.send = logical_id(d.send.function)
        self.send_role = logical_id(d.send.role)
        self.sms_policy = logical_id(d.sms_policy)
        self.unsubscribe = logical_id(d.unsubscribe.function)
        self.url = logical_id(d.unsubscribe_url)
        self.feedback = logical_id(d.feedback.function)
        self.campaign = logical_id(k.campaigns.campaign.function)
        self.api = logical_id(k.api.function.function)
        self.feedback_queue = logical_id(d.feedback.queue)
        self.feedback_dlq = logical_id(d.feedback.dead_letter_queue)
        self.feedback_rule = logical_id(d.feedback.rule)
        self.feedback_schedule_dlq = logical_id(d.feedback.schedules.dead_letter_queue)
        self.opt_out_policy = logical_id(d.feedback.sms_opt_out_policy)


@pytest.fixture(scope="module")
def ids(stack: KizunaStack, logical_id: LogicalId) -> Ids:
    return Ids(stack, logical_id)


@pytest.fixture(scope="module")
def send_statements(resources: dict[str, Any], ids: Ids) -> list[dict[str, Any]]:
    return statements_of(resources, ids.send_role)


# --- Signing secret ------------------------------------------------------------------------


def test_signing_secret_is_a_generated_64_character_key(
    resources: dict[str, Any], ids: Ids
) -> None:
    secret = resources[ids.secret]
    generated = secret["Properties"]["GenerateSecretString"]
    assert generated["PasswordLength"] == 64
    # {"current": key}: the layout kizuna.runtime.wiring.signing_keys reads, "previous" after rotation
    assert generated["SecretStringTemplate"] == "{}"
    assert generated["GenerateStringKey"] == "current"
    # links in sent emails outlive a re-deploy
    assert secret["DeletionPolicy"] == "Retain"


def test_only_the_senders_unsubscribe_and_the_api_read_the_signing_secret(
    resources: dict[str, Any], ids: Ids
) -> None:
    readers = set()
    for function in of_type(resources, "AWS::Lambda::Function"):
        statements = function_statements(resources, function)
        if {"Ref": ids.secret} in resources_for(statements, "secretsmanager:GetSecretValue"):
            readers.add(function)
    # the API: card tokens (docs/channels/CARDS.md) are derived from it
    assert readers == {ids.send, ids.campaign, ids.unsubscribe, ids.api}


# --- SES configuration set -------------------------------------------------------------------


def test_configuration_set_publishes_sending_events_to_the_default_bus(
    template: Template, ids: Ids
) -> None:
    [destination] = template.find_resources("AWS::SES::ConfigurationSetEventDestination").values()
    props = destination["Properties"]
    assert props["ConfigurationSetName"] == {"Ref": ids.configuration_set}
    event_destination = props["EventDestination"]
    assert event_destination["Enabled"] is True
    bus = event_destination["EventBridgeDestination"]["EventBusArn"]
    assert bus["Fn::Join"][1][-1] == ":event-bus/default"
    assert set(event_destination["MatchingEventTypes"]) == set(SES_DETAIL_TYPES)


# --- Unsubscribe ------------------------------------------------------------------------------


def test_unsubscribe_url_needs_no_credentials(resources: dict[str, Any], ids: Ids) -> None:
    # a one-click link in an email cannot sign requests: the signed token is the authorization
    assert resources[ids.url]["Properties"] == {
        "AuthType": "NONE",
        "TargetFunctionArn": arn(ids.unsubscribe),
    }


def test_unsubscribe_reads_the_secret_and_a_customer_puts_events_and_stamps_clicks_only(
    resources: dict[str, Any], ids: Ids
) -> None:
    env = environment(resources, ids.unsubscribe)
    assert {n for n, f in UnsubscribeSettings.model_fields.items() if f.is_required()} <= set(env)
    assert env["SIGNING_SECRET_ARN"] == {"Ref": ids.secret}
    assert env["CUSTOMERS_TABLE"] == {"Ref": ids.customers}
    statements = function_statements(resources, ids.unsubscribe)
    assert {a.split(":")[0] for a in actions_of(statements)} == {
        "logs",
        "secretsmanager",
        "events",
        "dynamodb",
    }
    assert resources_for(statements, "events:PutEvents") == [arn(ids.bus)]
    # a token is checked against the customer's consent, read by id; a tracked link's click
    # is stamped on its ledger entry (UpdateItem): nothing else
    assert {n for n, f in LinkSettings.model_fields.items() if f.is_required()} <= set(env)
    assert {a for a in actions_of(statements) if a.startswith("dynamodb:")} == {
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
    }
    assert resources_for(statements, "dynamodb:GetItem") == [arn(ids.customers)]
    assert resources_for(statements, "dynamodb:UpdateItem") == [arn(ids.activity)]


# --- Send ------------------------------------------------------------------------------------


def test_send_environment(resources: dict[str, Any], ids: Ids) -> None:
    env = environment(resources, ids.send)
    assert {n for n, f in SendSettings.model_fields.items() if f.is_required()} <= set(env)
    assert env["EMAIL_FROM"] == "no-reply@example.com"
    assert env["SES_CONFIGURATION_SET"] == {"Ref": ids.configuration_set}
    assert env["UNSUBSCRIBE_URL"] == {"Fn::GetAtt": [ids.url, "FunctionUrl"]}
    assert env["SIGNING_SECRET_ARN"] == {"Ref": ids.secret}
    assert env["PUSH_APPLICATION_ID"] == ""
    assert env["LINE_TOKEN_SECRET_ARN"] == ""
    props = resources[ids.send]["Properties"]
    assert props["MemorySize"] == 512
    assert props["Timeout"] == 120


def test_send_emails_only_from_the_identity_with_the_configuration_set(
    send_statements: list[dict[str, Any]], ids: Ids
) -> None:
    [statement] = [s for s in send_statements if "ses:SendEmail" in s["Action"]]
    assert sorted(statement["Action"]) == ["ses:SendEmail", "ses:SendRawEmail"]
    assert statement["Resource"] == [
        ses_arn([":identity/example.com"]),
        ses_arn([":configuration-set/", {"Ref": ids.configuration_set}]),
    ]
    assert {a for a in actions_of(send_statements) if a.startswith("ses:")} == {
        "ses:SendEmail",
        "ses:SendRawEmail",
    }


def test_sms_wildcard_is_its_own_policy(
    send_statements: list[dict[str, Any]], resources: dict[str, Any], ids: Ids
) -> None:
    [statement] = resources[ids.sms_policy]["Properties"]["PolicyDocument"]["Statement"]
    assert statement == {
        "Effect": "Allow",
        "Action": ["sns:Publish", "sns:CheckIfPhoneNumberIsOptedOut"],
        "Resource": "*",
    }
    # every other statement of the send role names its resources
    assert statement in send_statements
    assert "*" not in list(iter_resources([s for s in send_statements if s != statement]))


def test_send_grants(send_statements: list[dict[str, Any]], ids: Ids) -> None:
    assert resources_for(send_statements, "dynamodb:PutItem") == [
        arn(ids.activity),
        index_arn(ids.activity),
    ]
    assert arn(ids.customers) in resources_for(send_statements, "dynamodb:GetItem")
    assert arn(ids.customers) not in resources_for(send_statements, "dynamodb:UpdateItem")
    assert resources_for(send_statements, "events:PutEvents") == [arn(ids.bus)]
    # push and LINE are off unless configured
    assert resources_for(send_statements, "mobiletargeting:SendMessages") == []
    assert resources_for(send_statements, "secretsmanager:GetSecretValue") == [{"Ref": ids.secret}]


@pytest.fixture(scope="module")
def configured_send(
    configured: Template, configured_stack: KizunaStack, logical_id: LogicalId
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    resources = configured.to_json()["Resources"]
    function = logical_id(configured_stack.kizuna.delivery.send.function)
    return (
        environment(resources, function),
        function_statements(resources, function),
    )


def test_configured_channels_reach_send(
    configured_send: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    env, statements = configured_send
    assert env["EMAIL_FROM"] == "Shop <news@shop.example>"
    assert env["PUSH_APPLICATION_ID"] == "0123456789abcdef0123456789abcdef"
    line = "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:kizuna/line-AbCdEf"
    assert env["LINE_TOKEN_SECRET_ARN"] == line
    assert env["SMS_SENDER_ID"] == "SHOP"
    # the SES identity defaults to the sender's domain
    [ses] = [s for s in statements if "ses:SendEmail" in s["Action"]]
    assert ses["Resource"][0] == ses_arn([":identity/shop.example"])
    # push to this application only; the LINE token secret is readable
    assert resources_for(statements, "mobiletargeting:SendMessages") == [
        {
            "Fn::Join": [
                "",
                [
                    "arn:",
                    {"Ref": "AWS::Partition"},
                    ":mobiletargeting:",
                    {"Ref": "AWS::Region"},
                    ":",
                    {"Ref": "AWS::AccountId"},
                    ":apps/0123456789abcdef0123456789abcdef/messages",
                ],
            ]
        }
    ]
    assert line in resources_for(statements, "secretsmanager:GetSecretValue")


def test_send_reads_exactly_each_configured_webhook_key(
    configured_send: tuple[dict[str, Any], list[dict[str, Any]]],
    send_statements: list[dict[str, Any]],
) -> None:
    _, statements = configured_send
    assert webhook_secret_resources(statements) == CONFIGURED_WEBHOOK_SECRETS
    # without webhooks configured, no webhook key is readable
    assert webhook_secret_resources(send_statements) == []


@pytest.mark.parametrize(
    ("sender", "domain"),
    [
        ("no-reply@example.com", "example.com"),
        ("Shop <news@shop.example>", "shop.example"),
        ('"A, B" <a@mail.example.jp>', "mail.example.jp"),
    ],
)
def test_email_domain(sender: str, domain: str) -> None:
    assert email_domain(sender) == domain


def test_email_domain_rejects_non_addresses() -> None:
    with pytest.raises(ValueError, match="not an email address"):
        email_domain("shop.example")


# --- Feedback -----------------------------------------------------------------------------------


def test_feedback_rule_takes_ses_events_from_the_default_bus(
    resources: dict[str, Any], ids: Ids
) -> None:
    props = resources[ids.feedback_rule]["Properties"]
    assert props["EventBusName"] == "default"
    # only the events of the stack's configuration set (SES tags each of them with its name):
    # the default bus carries every sender's SES events in the account
    tags = props["EventPattern"]["detail"]["mail"]["tags"]
    assert tags == {"ses:configuration-set": [{"Ref": ids.configuration_set}]}
    named = json.dumps(props["EventPattern"]).replace(
        json.dumps({"Ref": ids.configuration_set}), '"kizuna-set"'
    )
    pattern = EventPattern.load(named)

    def ses_event(detail_type: str, source: str = "aws.ses", tag: str = "kizuna-set") -> Any:
        detail = {"mail": {"tags": {"ses:configuration-set": [tag], "customer": ["c1"]}}}
        return {"source": source, "detail-type": detail_type, "detail": detail}

    for detail_type in SES_DETAIL_TYPES.values():
        assert pattern.matches_event(ses_event(detail_type))
    assert not pattern.matches_event(ses_event("Email Sent"))
    assert not pattern.matches_event(ses_event("Email Bounced", source="shop"))
    assert not pattern.matches_event(ses_event("Email Bounced", tag="someone-elses-set"))
    assert not pattern.matches_event(
        {"source": "aws.ses", "detail-type": "Email Bounced", "detail": {"mail": {}}}
    )
    assert props["Targets"] == [
        {
            "Id": "Target0",
            "Arn": arn(ids.feedback_queue),
            "DeadLetterConfig": {"Arn": arn(ids.feedback_dlq)},
            "RetryPolicy": {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185},
        }
    ]


def test_feedback_consumes_its_queue_reporting_partial_failures(
    resources: dict[str, Any], ids: Ids
) -> None:
    [mapping] = [
        m["Properties"]
        for m in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": ids.feedback}
    ]
    assert mapping["EventSourceArn"] == arn(ids.feedback_queue)
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = resources[ids.feedback_queue]["Properties"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": arn(ids.feedback_dlq),
        "maxReceiveCount": 5,
    }


def test_feedback_environment_and_grants(resources: dict[str, Any], ids: Ids) -> None:
    env = environment(resources, ids.feedback)
    assert {n for n, f in FeedbackSettings.model_fields.items() if f.is_required()} <= set(env)
    assert env["DEAD_LETTER_QUEUE_URL"] == {"Ref": ids.feedback_dlq}
    statements = function_statements(resources, ids.feedback)
    assert resources_for(statements, "events:PutEvents") == [arn(ids.bus)]
    assert resources_for(statements, "dynamodb:PutItem") == [
        arn(ids.activity),
        index_arn(ids.activity),
    ]
    assert arn(ids.customers) in resources_for(statements, "dynamodb:GetItem")
    # the queue's DLQ (by hand, with the reason) and the schedule DLQ (on failure)
    assert sorted(map(json.dumps, resources_for(statements, "sqs:SendMessage"))) == sorted(
        map(json.dumps, [arn(ids.feedback_dlq), arn(ids.feedback_schedule_dlq)])
    )


def feedback_schedules(resources: dict[str, Any], ids: Ids) -> dict[str, dict[str, Any]]:
    return {
        s["Metadata"]["kizuna:schedule"]: s
        for s in of_type(resources, "AWS::Scheduler::Schedule").values()
        if s["Properties"]["Target"]["Arn"] == arn(ids.feedback)
    }


def test_stale_sending_entries_are_reconciled_every_30_minutes(
    resources: dict[str, Any], ids: Ids
) -> None:
    # the feedback function (it settles ledger entries from provider evidence) runs the
    # reconciliation sweep, with the schedule's retries and dead-letter queue
    schedule = feedback_schedules(resources, ids)["reconcile-sends"]
    assert schedule["Properties"]["ScheduleExpression"] == "rate(30 minutes)"
    target = schedule["Properties"]["Target"]
    assert json.loads(target["Input"]) == {"sweep": "reconcile_sends"}
    assert target["DeadLetterConfig"] == {"Arn": arn(ids.feedback_schedule_dlq)}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0


def test_daily_sms_opt_out_sweep(resources: dict[str, Any], ids: Ids) -> None:
    schedule = feedback_schedules(resources, ids)["sms-opt-outs"]
    target = schedule["Properties"]["Target"]
    assert json.loads(target["Input"]) == {"sweep": "sms_opt_outs"}
    assert target["DeadLetterConfig"] == {"Arn": arn(ids.feedback_schedule_dlq)}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    # listing opted-out numbers has no resource-level permissions: a policy of its own
    [statement] = resources[ids.opt_out_policy]["Properties"]["PolicyDocument"]["Statement"]
    assert statement == {
        "Effect": "Allow",
        "Action": "sns:ListPhoneNumbersOptedOut",
        "Resource": "*",
    }


# --- LINE webhook --------------------------------------------------------------------------


def test_no_line_webhook_without_a_channel_secret(stack: KizunaStack) -> None:
    assert stack.kizuna.delivery.line_webhook is None


def test_line_webhook_behind_a_public_url_reads_and_claims_only(
    configured_stack: KizunaStack, configured: Template, logical_id: LogicalId
) -> None:
    d = configured_stack.kizuna.delivery
    assert d.line_webhook is not None and d.line_webhook_url is not None
    resources = configured.to_json()["Resources"]
    hook, url = logical_id(d.line_webhook.function), logical_id(d.line_webhook_url)
    customers = logical_id(configured_stack.kizuna.tables.customers)
    activity = logical_id(configured_stack.kizuna.tables.activity)
    # LINE's platform cannot sign AWS requests: X-Line-Signature is the authorization
    assert resources[url]["Properties"] == {"AuthType": "NONE", "TargetFunctionArn": arn(hook)}
    env = environment(resources, hook)
    assert {n for n, f in LineWebhookSettings.model_fields.items() if f.is_required()} <= set(env)
    assert env["LINE_CHANNEL_SECRET_PARAMETER"] == "/shop/line-channel-secret"
    statements = function_statements(resources, hook)
    dynamo = {a for a in actions_of(statements) if a.startswith("dynamodb:")}
    assert dynamo == {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
    }
    assert resources_for(statements, "dynamodb:GetItem") == [arn(customers)]
    assert resources_for(statements, "dynamodb:Query") == [
        {"Fn::Join": ["", [arn(customers), "/index/by_line_user"]]}
    ]
    assert resources_for(statements, "dynamodb:PutItem") == [arn(activity)]
    assert "ssm:GetParameter" in actions_of(statements)


def test_the_delivery_budgets_leave_time_to_record_under_the_function_timeouts() -> None:
    """A send invocation stops starting provider calls at its delivery budget; what is left
    of the function's timeout records the outcomes (a timeout would leave the messages
    marked dispatched outcome_unknown)."""
    from kizuna.delivery.webhook import SEND_BUDGET
    from kizuna.services import campaign, send
    from kizuna_infra.campaigns import CAMPAIGN_TIMEOUT
    from kizuna_infra.delivery import SEND_TIMEOUT

    assert SEND_TIMEOUT.to_seconds() >= send.DELIVERY_BUDGET + 15
    assert SEND_TIMEOUT.to_seconds() >= SEND_BUDGET + 15
    assert CAMPAIGN_TIMEOUT.to_seconds() >= campaign.DELIVERY_BUDGET + 30
