"""Delivery: the send function (email, SMS, push, LINE), one-click unsubscribe, and feedback.

* A signing secret: the HMAC key of coupon codes and unsubscribe tokens.
* An SES configuration set whose sending events (bounces, complaints, deliveries, opens,
  clicks, rejects, rendering failures) go to EventBridge -- the account's *default* bus,
  the only one SES publishes to.
* The send function, which every journey's Send steps invoke.
* The unsubscribe function behind a public Lambda function URL (the link in every message).
* Feedback: SES events on the default bus -> SQS (with DLQ) -> feedback function, plus a
  daily sweep of the numbers that opted out of SMS.
"""

from __future__ import annotations

import re
from email.utils import parseaddr
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Stack, TimeZone
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_ses as ses
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from kizuna.domain.customer import LINE_USER_INDEX
from kizuna.runtime.config import load_config
from kizuna.runtime.settings import (
    ENV_ACTIVITY_TABLE,
    ENV_CUSTOMERS_TABLE,
    ENV_EVENT_BUS_NAME,
    ENV_KIZUNA_CONFIG,
    ENV_LINE_CHANNEL_SECRET_ARN,
    ENV_LINE_CHANNEL_SECRET_PARAMETER,
    ENV_PRODUCTS_TABLE,
)
from kizuna_infra import names
from kizuna_infra.functions import KizunaFunction, Wiring
from kizuna_infra.queues import DEFAULT_MAX_RECEIVE_COUNT, QueuedFunction
from kizuna_infra.schedules import DEFAULT_TIME_ZONE, ScheduledInvocations

# provider retries with backoff happen inside; a group's delivery budget is 60 s of it
# (kizuna.services.send.DELIVERY_BUDGET), the rest records the outcomes
SEND_TIMEOUT = Duration.seconds(120)
SEND_MEMORY_MB = 512
FEEDBACK_TIMEOUT = Duration.seconds(60)
UNSUBSCRIBE_TIMEOUT = Duration.seconds(10)

SES_SOURCE = "aws.ses"
SES_CONFIGURATION_SET_TAG = "ses:configuration-set"  # SES's own tag on a set's events
# What the configuration set publishes, and the detail-types SES gives those events on the bus.
SES_EVENTS = (
    ses.EmailSendingEvent.BOUNCE,
    ses.EmailSendingEvent.COMPLAINT,
    ses.EmailSendingEvent.DELIVERY,
    ses.EmailSendingEvent.OPEN,
    ses.EmailSendingEvent.CLICK,
    ses.EmailSendingEvent.REJECT,
    ses.EmailSendingEvent.RENDERING_FAILURE,
)
SES_DETAIL_TYPES = (
    "Email Bounced",
    "Email Complaint Received",
    "Email Delivered",
    "Email Opened",
    "Email Clicked",
    "Email Rejected",
    "Email Rendering Failed",
)
SMS_OPT_OUT_SWEEP = {"sweep": "sms_opt_outs"}
RECONCILE_SWEEP = {"sweep": "reconcile_sends"}
RECONCILE_EVERY = Duration.minutes(30)
# Direct SMS to a phone number: the numbers are not IAM resources.
SMS_ACTIONS = ("sns:Publish", "sns:CheckIfPhoneNumberIsOptedOut")
# The signing secret is JSON: {"current": key} now, {"current": new, "previous": old} after a
# rotation by hand (kizuna.runtime.wiring.signing_keys accepts both, so sent links keep working).
SIGNING_KEY_CURRENT = "current"


# Secrets Manager appends "-" and 6 random characters to a secret's name in its ARN
_COMPLETE_SECRET_ARN = re.compile(
    r"^arn:[^:]+:secretsmanager:[^:]*:[^:]*:secret:.+-[A-Za-z0-9]{6}\Z"
)


def webhook_secret(scope: Construct, construct_id: str, secret: str) -> secretsmanager.ISecret:
    """The secret a webhook endpoint names (``webhooks.<name>.secret``): a name is this
    stack's account and region (``...:secret:<name>-??????``); an ARN ending in the 6-character
    suffix is complete (exactly that secret), any other ARN partial (``<arn>-??????``)."""
    if not secret.startswith("arn:"):
        return secretsmanager.Secret.from_secret_name_v2(scope, construct_id, secret)
    if _COMPLETE_SECRET_ARN.match(secret):
        return secretsmanager.Secret.from_secret_complete_arn(scope, construct_id, secret)
    return secretsmanager.Secret.from_secret_partial_arn(scope, construct_id, secret)


def email_domain(email_from: str) -> str:
    """The domain of a sender (``Shop <no-reply@shop.example>`` -> ``shop.example``)."""
    _, address = parseaddr(email_from)
    local, at, domain = address.rpartition("@")
    if not (local and at and domain):
        raise ValueError(f"not an email address: {email_from!r}")
    return domain


class Feedback(QueuedFunction):
    """SES events (default bus) -> SQS (with DLQ) -> feedback function; daily SMS opt-outs.

    ``configuration_set_name``: the stack's SES configuration set. The rule takes only its
    events (SES tags every event of a set with ``ses:configuration-set``): the default bus
    carries every sender's SES events in the account and region."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        default_bus: events.IEventBus,
        configuration_set_name: str,
        wiring: Wiring,
        max_receive_count: int,
        schedule_time_zone: TimeZone,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            folder=names.FEEDBACK_FUNCTION_NAME,
            description="Kizuna feedback: bounces, complaints, opt-outs -> suppression, ledger",
            environment={
                **wiring.tables.environment,
                ENV_EVENT_BUS_NAME: wiring.bus.event_bus_name,
            },
            timeout=FEEDBACK_TIMEOUT,
            max_receive_count=max_receive_count,
            **wiring.shared,
        )
        self.rule = self.add_rule(
            names.FEEDBACK_RULE_ID,
            bus=default_bus,
            description="SES sending events of Kizuna's configuration set, to the feedback queue",
            event_pattern=events.EventPattern(
                source=[SES_SOURCE],
                detail_type=list(SES_DETAIL_TYPES),
                detail={"mail": {"tags": {SES_CONFIGURATION_SET_TAG: [configuration_set_name]}}},
            ),
        )
        wiring.bus.grant_put_events_to(self.function)
        wiring.tables.customers.grant_read_data(self.function)
        wiring.tables.activity.grant_read_write_data(self.function)

        # --- Daily sweep of SMS opt-outs (SNS keeps the list; nothing is pushed) -----------
        self.schedules = ScheduledInvocations(self, "Schedules", function=self.function)
        self.schedules.add(
            names.FEEDBACK_SCHEDULE_ID,
            name=names.FEEDBACK_SCHEDULE_NAME,
            expression=scheduler.ScheduleExpression.expression(
                "cron(30 1 * * ? *)", schedule_time_zone
            ),
            payload=SMS_OPT_OUT_SWEEP,
            description="Daily: phone numbers that opted out of SMS become suppressions",
        )
        # --- Reconciliation of ledger entries left at `sending` (kizuna.services.reconcile)
        self.schedules.add(
            names.RECONCILE_SCHEDULE_ID,
            name=names.RECONCILE_SCHEDULE_NAME,
            expression=scheduler.ScheduleExpression.rate(RECONCILE_EVERY),
            payload=RECONCILE_SWEEP,
            description="Every 30 minutes: stale `sending` ledger entries get an outcome",
        )
        # ListPhoneNumbersOptedOut has no resource-level permissions: a policy of its own, so
        # its "*" is acknowledged on exactly this statement.
        self.sms_opt_out_policy = iam.Policy(
            self,
            names.SMS_OPT_OUT_POLICY_ID,
            roles=[self.role],
            statements=[
                iam.PolicyStatement(actions=["sns:ListPhoneNumbersOptedOut"], resources=["*"])
            ],
        )


class Delivery(Construct):
    """Signing secret, SES configuration set, send, unsubscribe and feedback.

    Keyword arguments:
        email_from: the From address of every email (``kizuna:emailFrom``).
        ses_identity: the verified SES identity sending it: a domain or an address
            (``kizuna:sesIdentity``; the domain of ``email_from`` when empty).
        push_application_id: End User Messaging Push (Pinpoint) application id; push is
            off when empty.
        line_token_secret_arn: complete ARN of a secret holding the LINE channel access
            token; LINE is off when empty (and no parameter is given).
        line_token_parameter: or the name of an SSM SecureString parameter holding it.
        line_channel_secret_arn / line_channel_secret_parameter: the LINE channel secret
            (a secret's complete ARN, or an SSM SecureString name): the LINE webhook
            (follow, unfollow, account link) is deployed behind a function URL when one
            is given.
        sms_sender_id: SMS sender id where the destination country supports one.
        removal_policy: what happens to the signing secret when the stack is deleted
            (RETAIN: links in emails already sent keep working after a re-deploy).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        wiring: Wiring,
        programs_dir: Path | None = None,
        templates_dir: Path | None = None,
        segments_dir: Path | None = None,
        email_from: str = names.DEFAULT_EMAIL_FROM,
        ses_identity: str | None = None,
        push_application_id: str = "",
        line_token_secret_arn: str = "",
        line_token_parameter: str = "",
        line_channel_secret_arn: str = "",
        line_channel_secret_parameter: str = "",
        sms_sender_id: str = "",
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
        schedule_time_zone: TimeZone = DEFAULT_TIME_ZONE,
    ) -> None:
        super().__init__(scope, construct_id)
        programs_dir = programs_dir or wiring.shared["source_root"] / names.PROGRAMS_DIR
        templates_dir = templates_dir or wiring.shared["source_root"] / names.TEMPLATES_DIR
        segments_dir = segments_dir or wiring.shared["source_root"] / names.SEGMENTS_DIR
        self.email_from = email_from
        self.ses_identity = ses_identity or email_domain(email_from)
        self.push_application_id = push_application_id
        self.line_token_secret_arn = line_token_secret_arn
        self.line_token_parameter = line_token_parameter
        self.sms_sender_id = sms_sender_id
        self.tracing = wiring.shared.get("tracing", False)
        # the HMAC keys of the shop's webhook endpoints (docs/channels/WEBHOOK.md), each once
        self.webhook_secrets = tuple(
            dict.fromkeys(e.secret for e in load_config(wiring.config_json).webhooks.values())
        )
        stack = Stack.of(self)

        # --- Signing secret (HMAC key of coupon codes and unsubscribe tokens) ---------------
        self.signing_secret = secretsmanager.Secret(
            self,
            names.SIGNING_SECRET_ID,
            description="Kizuna: HMAC key of coupon codes and unsubscribe links",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template="{}",  # noqa: S106 - a JSON template, no secret
                generate_string_key=SIGNING_KEY_CURRENT,
                password_length=names.SIGNING_SECRET_LENGTH,
                exclude_punctuation=True,
                include_space=False,
            ),
            removal_policy=removal_policy,
        )

        # --- SES configuration set -> the default bus ---------------------------------------
        self.default_bus = events.EventBus.from_event_bus_name(
            self, names.DEFAULT_BUS_ID, names.DEFAULT_EVENT_BUS
        )
        self.configuration_set = ses.ConfigurationSet(
            self, names.CONFIGURATION_SET_ID, reputation_metrics=True
        )
        self.configuration_set.add_event_destination(
            names.CONFIGURATION_SET_DESTINATION_ID,
            destination=ses.EventDestination.event_bus(self.default_bus),
            events=list(SES_EVENTS),
        )
        self.configuration_set_arn = stack.format_arn(
            service="ses",
            resource="configuration-set",
            resource_name=self.configuration_set.configuration_set_name,
        )
        self.ses_identity_arn = stack.format_arn(
            service="ses", resource="identity", resource_name=self.ses_identity
        )

        # --- Unsubscribe (public function URL) ------------------------------------------------
        self.unsubscribe = KizunaFunction(
            self,
            names.UNSUBSCRIBE_CONSTRUCT_ID,
            folder=names.UNSUBSCRIBE_FUNCTION_NAME,
            description="Kizuna unsubscribe: one-click links (RFC 8058) from messages",
            environment={
                ENV_EVENT_BUS_NAME: wiring.bus.event_bus_name,
                names.ENV_SIGNING_SECRET_ARN: self.signing_secret.secret_arn,
                ENV_CUSTOMERS_TABLE: wiring.tables.customers.table_name,
                # tracked link clicks (/l/<token>) stamp click_at on ledger entries
                ENV_ACTIVITY_TABLE: wiring.tables.activity.table_name,
                # the preference topics the page shows
                ENV_KIZUNA_CONFIG: wiring.config_json,
            },
            timeout=UNSUBSCRIBE_TIMEOUT,
            **wiring.shared,
        )
        # No IAM auth: a one-click unsubscribe link in an email (and the mail provider's
        # RFC 8058 POST) must work without credentials. The signed token in the URL is the
        # authorization; the function accepts nothing else.
        self.unsubscribe_url = lambda_.FunctionUrl(
            self.unsubscribe,
            names.FUNCTION_URL_ID,
            function=self.unsubscribe.function,
            auth_type=lambda_.FunctionUrlAuthType.NONE,
        )
        self.signing_secret.grant_read(self.unsubscribe.function)
        wiring.bus.grant_put_events_to(self.unsubscribe.function)
        # a token is checked against the customer's consent (never creates one): GetItem on
        # the table itself (Table.grant would add its indexes, which it never reads)
        self.unsubscribe.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem"], resources=[wiring.tables.customers.table_arn]
            )
        )
        # a tracked link's click is stamped on its (existing) ledger entry: UpdateItem only
        self.unsubscribe.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:UpdateItem"], resources=[wiring.tables.activity.table_arn]
            )
        )

        # --- LINE webhook (public function URL, LINE's signature is the authorization) -------
        self.line_webhook: KizunaFunction | None = None
        self.line_webhook_url: lambda_.FunctionUrl | None = None
        if line_channel_secret_arn or line_channel_secret_parameter:
            self._line_webhook(wiring, line_channel_secret_arn, line_channel_secret_parameter)

        # --- Send -----------------------------------------------------------------------------
        self.send = KizunaFunction(
            self,
            names.SEND_CONSTRUCT_ID,
            folder=names.SEND_FUNCTION_NAME,
            description="Kizuna send: contact policy, render, deliver, ledger",
            environment=wiring.environment(
                {
                    **self.channel_environment(),
                    ENV_PRODUCTS_TABLE: wiring.tables.products.table_name,
                },
            ),
            # the named segments too: a branch fused with a send (one task of this
            # function) decides segment conditions here
            extras={
                names.PROGRAMS_DIR: programs_dir,
                names.TEMPLATES_DIR: templates_dir,
                **({names.SEGMENTS_DIR: segments_dir} if segments_dir.is_dir() else {}),
            },
            timeout=SEND_TIMEOUT,
            memory_size=SEND_MEMORY_MB,
            **wiring.shared,
        )
        send = self.send.function
        # recommendations: the last order's products and the best sellers, one BatchGetItem
        wiring.tables.products.grant(send, "dynamodb:BatchGetItem")
        self.sms_policy = self.grant_sending(self.send, names.SMS_POLICY_ID)
        wiring.tables.customers.grant_read_data(send)
        wiring.tables.activity.grant_read_write_data(send)
        wiring.bus.grant_put_events_to(send)

        # --- Feedback ---------------------------------------------------------------------------
        self.feedback = Feedback(
            self,
            names.FEEDBACK_CONSTRUCT_ID,
            default_bus=self.default_bus,
            configuration_set_name=self.configuration_set.configuration_set_name,
            wiring=wiring,
            max_receive_count=max_receive_count,
            schedule_time_zone=schedule_time_zone,
        )

    def _line_webhook(self, wiring: Wiring, secret_arn: str, parameter: str) -> None:
        hook = self.line_webhook = KizunaFunction(
            self,
            names.LINE_WEBHOOK_CONSTRUCT_ID,
            folder=names.LINE_WEBHOOK_FUNCTION_NAME,
            description="Kizuna LINE webhook: follow/unfollow as consent, account link",
            environment={
                ENV_EVENT_BUS_NAME: wiring.bus.event_bus_name,
                names.ENV_SIGNING_SECRET_ARN: self.signing_secret.secret_arn,
                ENV_CUSTOMERS_TABLE: wiring.tables.customers.table_name,
                ENV_ACTIVITY_TABLE: wiring.tables.activity.table_name,
                ENV_LINE_CHANNEL_SECRET_ARN: secret_arn,
                ENV_LINE_CHANNEL_SECRET_PARAMETER: parameter,
            },
            timeout=UNSUBSCRIBE_TIMEOUT,
            **wiring.shared,
        )
        # No IAM auth: LINE's platform posts without AWS credentials; every request's
        # X-Line-Signature (HMAC of the body under the channel secret) is checked instead.
        self.line_webhook_url = lambda_.FunctionUrl(
            hook,
            names.FUNCTION_URL_ID,
            function=hook.function,
            auth_type=lambda_.FunctionUrlAuthType.NONE,
        )
        self.signing_secret.grant_read(hook.function)
        wiring.bus.grant_put_events_to(hook.function)
        customers = wiring.tables.customers.table_arn
        for actions, resources in (
            (["dynamodb:GetItem"], [customers]),
            (["dynamodb:Query"], [f"{customers}/index/{LINE_USER_INDEX}"]),
            # one claim per webhook event id
            (["dynamodb:PutItem", "dynamodb:DeleteItem"], [wiring.tables.activity.table_arn]),
        ):
            hook.function.add_to_role_policy(
                iam.PolicyStatement(actions=actions, resources=resources)
            )
        if secret_arn:
            secretsmanager.Secret.from_secret_complete_arn(
                hook, "ChannelSecret", secret_arn
            ).grant_read(hook.function)
        if parameter:
            ssm.StringParameter.from_secure_string_parameter_attributes(
                hook, "ChannelSecretParameter", parameter_name=parameter
            ).grant_read(hook.function)

    def channel_environment(self) -> dict[str, str]:
        """The settings of a function that sends messages: signing secret, sender, SES
        configuration set, unsubscribe URL and the channels' ids and tokens."""
        return {
            names.ENV_SIGNING_SECRET_ARN: self.signing_secret.secret_arn,
            names.ENV_EMAIL_FROM: self.email_from,
            names.ENV_SES_CONFIGURATION_SET: self.configuration_set.configuration_set_name,
            names.ENV_UNSUBSCRIBE_URL: self.unsubscribe_url.url,
            names.ENV_PUSH_APPLICATION_ID: self.push_application_id,
            names.ENV_LINE_TOKEN_SECRET_ARN: self.line_token_secret_arn,
            names.ENV_LINE_TOKEN_PARAMETER: self.line_token_parameter,
            names.ENV_SMS_SENDER_ID: self.sms_sender_id,
        }

    def grant_sending(self, sender: KizunaFunction, sms_policy_id: str) -> iam.Policy:
        """Lets ``sender`` send on every channel configured here (SES through this identity
        and configuration set, push, LINE, SMS) and read the signing secret. SMS goes to
        phone numbers, which are not IAM resources: sns:Publish (and the opt-out check
        before it) need "*", in a policy of its own (``sms_policy_id``, returned) so that
        "*" is acknowledged on exactly this statement."""
        function = sender.function
        iam.Grant.add_to_principal(
            grantee=function,
            actions=["ses:SendEmail", "ses:SendRawEmail"],
            resource_arns=[self.ses_identity_arn, self.configuration_set_arn],
        )
        if self.push_application_id:
            iam.Grant.add_to_principal(
                grantee=function,
                actions=["mobiletargeting:SendMessages"],
                resource_arns=[
                    Stack.of(self).format_arn(
                        service="mobiletargeting",
                        resource="apps",
                        resource_name=f"{self.push_application_id}/messages",
                    )
                ],
            )
        if self.line_token_secret_arn:
            secretsmanager.Secret.from_secret_complete_arn(
                sender, "LineTokenSecret", self.line_token_secret_arn
            ).grant_read(function)
        if self.line_token_parameter:
            ssm.StringParameter.from_secure_string_parameter_attributes(
                sender, "LineTokenParameter", parameter_name=self.line_token_parameter
            ).grant_read(function)
        for index, secret in enumerate(self.webhook_secrets):
            webhook_secret(sender, f"WebhookSecret{index}", secret).grant_read(function)
        self.signing_secret.grant_read(function)
        return iam.Policy(
            sender,
            sms_policy_id,
            roles=[sender.role],
            statements=[iam.PolicyStatement(actions=list(SMS_ACTIONS), resources=["*"])],
        )

    @property
    def functions(self) -> list[lambda_.Function]:
        found = [self.send.function, self.unsubscribe.function, self.feedback.function]
        return found + ([self.line_webhook.function] if self.line_webhook else [])
