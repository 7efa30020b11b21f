"""``KizunaStack``: deploys the ``Kizuna`` construct on its own, with its outputs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from constructs import Construct

from kizuna.delivery.deployed import channels_text
from kizuna_infra import names
from kizuna_infra.kizuna import Kizuna
from kizuna_infra.limits import MAX_STACK_NAME


class KizunaStack(Stack):
    """Wires ``Kizuna`` and exports what producers and operators need."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str = names.STACK_ID,
        *,
        config: Mapping[str, Any] | None = None,
        bus_name: str | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        if len(self.stack_name) > MAX_STACK_NAME:
            # the functions' environments carry this stack's generated names: a long stack
            # name could push one past Lambda's 4 KB (see kizuna_infra.limits)
            raise ValueError(f"stack name {self.stack_name!r}: at most {MAX_STACK_NAME} characters")
        if config is None:
            config = self.node.try_get_context(names.CONTEXT_CONFIG_KEY) or {}
        if bus_name is None:
            bus_name = self.node.try_get_context(names.CONTEXT_BUS_NAME_KEY) or (
                names.DEFAULT_BUS_NAME
            )

        def context(key: str, default: str = "") -> str:
            return str(self.node.try_get_context(key) or default)

        self.kizuna = Kizuna(
            self,
            names.KIZUNA_CONSTRUCT_ID,
            bus_name=bus_name,
            config=config,
            removal_policy=removal_policy,
            email_from=context(names.CONTEXT_EMAIL_FROM_KEY, names.DEFAULT_EMAIL_FROM),
            ses_identity=context(names.CONTEXT_SES_IDENTITY_KEY) or None,
            push_application_id=context(names.CONTEXT_PUSH_APPLICATION_ID_KEY),
            line_token_secret_arn=context(names.CONTEXT_LINE_TOKEN_SECRET_ARN_KEY),
            line_token_parameter=context(names.CONTEXT_LINE_TOKEN_PARAMETER_KEY),
            line_channel_secret_arn=context(names.CONTEXT_LINE_CHANNEL_SECRET_ARN_KEY),
            line_channel_secret_parameter=context(names.CONTEXT_LINE_CHANNEL_SECRET_PARAMETER_KEY),
            sms_sender_id=context(names.CONTEXT_SMS_SENDER_ID_KEY),
            web_acl_arn=context(names.CONTEXT_WEB_ACL_ARN_KEY) or None,
            content_dir=Path(context(names.CONTEXT_CONTENT_DIR_KEY)).resolve()
            if context(names.CONTEXT_CONTENT_DIR_KEY)
            else None,
        )

        k = self.kizuna
        for output_id, value, description in (
            (names.OUTPUT_BUS_NAME, k.bus.bus_name, "EventBridge bus producers put events on"),
            (names.OUTPUT_BUS_ARN, k.bus.bus_arn, "ARN of the Kizuna event bus"),
            (names.OUTPUT_CUSTOMERS_TABLE, k.tables.customers.table_name, "Customers table"),
            (names.OUTPUT_ACTIVITY_TABLE, k.tables.activity.table_name, "Activity table"),
            (
                names.OUTPUT_ANALYTICS_BUCKET,
                k.tables.analytics.bucket_name,
                "Analytics bucket: snapshot export, campaign manifests and static lists",
            ),
            (
                names.OUTPUT_INGEST_DLQ_URL,
                k.ingest.dead_letter_queue.queue_url,
                "Dead-letter queue of inbound events",
            ),
            (
                names.OUTPUT_EVALUATE_DLQ_URL,
                k.programs.evaluate.dead_letter_queue.queue_url,
                "Dead-letter queue of events the evaluate function could not process",
            ),
            (
                names.OUTPUT_FEEDBACK_DLQ_URL,
                k.delivery.feedback.dead_letter_queue.queue_url,
                "Dead-letter queue of SES events the feedback function could not process",
            ),
            (
                names.OUTPUT_SWEEP_SCHEDULE_DLQ_URL,
                k.programs.sweep_schedules.dead_letter_queue.queue_url,
                "Dead-letter queue of sweep runs that failed or could not be invoked",
            ),
            (
                names.OUTPUT_FEEDBACK_SCHEDULE_DLQ_URL,
                k.delivery.feedback.schedules.dead_letter_queue.queue_url,
                "Dead-letter queue of SMS opt-out sweeps that failed or could not be invoked",
            ),
            (
                names.OUTPUT_SCORING_SCHEDULE_DLQ_URL,
                k.scoring.dead_letter_queue.queue_url,
                "Dead-letter queue of daily scoring runs Scheduler could not start",
            ),
            (
                names.OUTPUT_CAMPAIGN_SCHEDULE_DLQ_URL,
                k.campaigns.dead_letter_queue.queue_url,
                "Dead-letter queue of campaign occurrences Scheduler could not start",
            ),
            (
                names.OUTPUT_UNSUBSCRIBE_URL,
                k.delivery.unsubscribe_url.url,
                "One-click unsubscribe endpoint (signed links in every message)",
            ),
            *(
                [
                    (
                        names.OUTPUT_LINE_WEBHOOK_URL,
                        k.delivery.line_webhook_url.url,
                        "LINE webhook URL (set it in the LINE Developers Console)",
                    )
                ]
                if k.delivery.line_webhook_url is not None
                else []
            ),
            (
                names.OUTPUT_CONFIGURATION_SET,
                k.delivery.configuration_set.configuration_set_name,
                "SES configuration set every email is sent with",
            ),
            (
                names.OUTPUT_SIGNING_SECRET_ARN,
                k.delivery.signing_secret.secret_arn,
                "Secret holding the HMAC key of coupon codes and unsubscribe links",
            ),
            (names.OUTPUT_CAMPAIGNS_TABLE, k.tables.campaigns.table_name, "Campaigns table"),
            (
                names.OUTPUT_CAMPAIGN_STATE_MACHINE_ARN,
                k.campaigns.state_machine.state_machine_arn,
                "State machine running every campaign occurrence",
            ),
            (
                names.OUTPUT_CAMPAIGN_SCHEDULER_ROLE_ARN,
                k.campaigns.scheduler_role.role_arn,
                "Role campaign schedules start the campaign state machine with",
            ),
            (
                names.OUTPUT_CAMPAIGN_SCHEDULE_GROUP,
                k.campaigns.schedule_group.ref,
                "Scheduler group holding one schedule per campaign",
            ),
            (
                names.OUTPUT_CAMPAIGN_SCHEDULE_DLQ_ARN,
                k.campaigns.dead_letter_queue.queue_arn,
                "Dead-letter queue of campaign schedules Scheduler could not deliver",
            ),
            (
                names.OUTPUT_DEPLOYED_CHANNELS,
                channels_text(k.deployed_channels),
                "Channels this stack sends on (kizuna campaigns apply refuses a campaign on "
                "none of them)",
            ),
            (
                names.OUTPUT_JOURNEY_SCHEDULE_GROUP,
                k.programs.journey_schedule_group.ref,
                "Scheduler group holding the one-time schedules that start journey executions "
                "due later (their dead letters go to the evaluate DLQ)",
            ),
            (names.OUTPUT_API_URL, k.api.api_url, "HTTP API (machines sign SigV4 for it)"),
            (names.OUTPUT_CONSOLE_URL, k.api.console_url, "The console, through CloudFront"),
            (names.OUTPUT_USER_POOL_ID, k.api.user_pool.user_pool_id, "Console user pool"),
            (
                names.OUTPUT_USER_POOL_CLIENT_ID,
                k.api.client.user_pool_client_id,
                "Console app client (id tokens for /api)",
            ),
        ):
            CfnOutput(self, output_id, value=value, description=description)
        for program_id, machine in k.programs.state_machines.items():
            CfnOutput(
                self,
                journey_output_id(program_id),
                value=machine.state_machine_arn,
                description=f"Journey state machine of program {program_id}",
            )


def journey_output_id(program_id: str) -> str:
    """``cart-abandonment`` -> ``JourneyCartAbandonmentArn`` (output ids are alphanumeric)."""
    camel = "".join(part[:1].upper() + part[1:] for part in program_id.split("-"))
    return f"{names.OUTPUT_JOURNEY_PREFIX}{camel}{names.OUTPUT_JOURNEY_SUFFIX}"
