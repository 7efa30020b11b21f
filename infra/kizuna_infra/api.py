"""The HTTP API and the console: one function behind API Gateway (HTTP API), people signed in
with Cognito, CloudFront with security headers in front, and WAF rate limiting.

Routes (the function dispatches below each prefix, :mod:`kizuna.api.app`):

* ``ANY /api/{proxy+}``: people and scripts; API Gateway's JWT authorizer checks the Cognito
  id token (issuer: the user pool, audience: the console's app client), the function again;
* ``ANY /machine/{proxy+}``: machines; ``AWS_IAM`` (SigV4), the function reads the caller;
* ``GET /console``, ``ANY /console/{proxy+}``: server-rendered pages; no authorizer, the
  function verifies the session cookie (a Cognito id token) and the CSRF field;
* ``GET /cards``, ``POST /cards/{proxy+}``: the shop's site or app; no authorizer, the
  function verifies the card token (docs/channels/CARDS.md).

People use the console through CloudFront (``ConsoleUrl``): HTTPS only, nothing cached, the
same restrictive headers the function sets (``kizuna.api.app.SECURITY_HEADERS``), and a WAF
WebACL limiting each client IP on the public routes. Machines sign for the API's own domain
(``ApiUrl``): CloudFront rewrites ``Host``, which a SigV4 signature covers.

A CLOUDFRONT-scope WebACL exists only in us-east-1. Without ``web_acl_arn`` the WebACL is
created here: synthesis refuses a stack whose region is known and not us-east-1, and a
region-agnostic stack carries a CloudFormation Rule that stops a deploy elsewhere before any
resource is made. Elsewhere, create :class:`ConsoleWebAcl` in us-east-1 (any small stack)
and give its ARN (``web_acl_arn``, context ``kizuna:webAclArn``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Final

import jsii
from aws_cdk import (
    CfnRule,
    CfnRuleAssertion,
    Duration,
    Fn,
    RemovalPolicy,
    Stack,
    Token,
)
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from kizuna.api.app import SECURITY_HEADERS
from kizuna.api.auth import ROLE_ORDER
from kizuna.delivery.cards import CARD_STAMPS
from kizuna.delivery.deployed import channels_text
from kizuna.runtime import settings
from kizuna_infra import names
from kizuna_infra.campaigns import Campaigns
from kizuna_infra.delivery import Delivery
from kizuna_infra.functions import DEFAULT_LOG_RETENTION, KizunaFunction, Wiring

API_TIMEOUT: Final = Duration.seconds(29)  # API Gateway's integration timeout is 30 s
API_MEMORY_MB: Final = 1024  # the console renders pages; more memory is more CPU
# Stage throttling (every route, every client together): a backstop behind WAF.
THROTTLE_RATE: Final = 50  # requests per second, steady
THROTTLE_BURST: Final = 100
# WAF: requests per client IP in any 5-minute window on /api and /console, then blocked.
RATE_LIMIT_PER_IP: Final = 1_000
ID_TOKEN_VALIDITY: Final = Duration.hours(1)
REFRESH_TOKEN_VALIDITY: Final = Duration.days(1)
PASSWORD_MIN_LENGTH: Final = 12

# API Gateway access log: who called what and how it went; never a body (HTTP APIs cannot
# log one) nor a token (the JWT's claims are left out: the subject is a person).
ACCESS_LOG_FORMAT: Final = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "method": "$context.httpMethod",
    "routeKey": "$context.routeKey",
    "path": "$context.path",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "latencyMs": "$context.responseLatency",
    "integrationStatus": "$context.integrationStatus",
    "integrationError": "$context.integrationErrorMessage",
    "authorizerError": "$context.authorizer.error",
}


def route_path(prefix: str) -> str:
    """``/api`` -> ``/api/{proxy+}``: every path below a prefix."""
    return f"{prefix}/{{proxy+}}"


def hsts_max_age(header: str) -> int:
    """The ``max-age`` of a Strict-Transport-Security value."""
    found = re.search(r"max-age=(\d+)", header)
    if found is None:
        raise ValueError(f"no max-age in Strict-Transport-Security {header!r}")
    return int(found.group(1))


REFERRER_POLICIES: Final = {
    p.name.lower().replace("_", "-"): p for p in cloudfront.HeadersReferrerPolicy
}


def security_headers_behavior() -> cloudfront.ResponseSecurityHeadersBehavior:
    """CloudFront's copy of the function's own headers (``SECURITY_HEADERS``), so a page is as
    strict whether the function or CloudFront answered (an error page, a WAF block)."""
    hsts = SECURITY_HEADERS["Strict-Transport-Security"]
    return cloudfront.ResponseSecurityHeadersBehavior(
        content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
            content_security_policy=SECURITY_HEADERS["Content-Security-Policy"], override=True
        ),
        content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
        frame_options=cloudfront.ResponseHeadersFrameOptions(
            frame_option=cloudfront.HeadersFrameOption.DENY, override=True
        ),
        referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
            referrer_policy=REFERRER_POLICIES[SECURITY_HEADERS["Referrer-Policy"]], override=True
        ),
        strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
            access_control_max_age=Duration.seconds(hsts_max_age(hsts)),
            include_subdomains="includesubdomains" in hsts.lower(),
            override=True,
        ),
    )


@jsii.implements(apigwv2.IAccessLogSettings)
class AccessLogs:
    """The stage's access log: :data:`ACCESS_LOG_FORMAT` as JSON, into ``log_group``."""

    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigwv2.LogGroupLogDestination(log_group)

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FORMAT))


# wafv2 ARN of a CLOUDFRONT-scope ("global") WebACL, which only us-east-1 holds.
_CLOUDFRONT_WEB_ACL_ARN: Final = re.compile(
    r"arn:aws[a-z-]*:wafv2:us-east-1:\d{12}:global/webacl/[A-Za-z0-9_-]{1,128}/[0-9a-fA-F-]{36}"
)


def check_web_acl_arn(value: str) -> str:
    """``value`` if it is the ARN of a CLOUDFRONT-scope WebACL (or a token resolved at
    deploy time); a regional WebACL's ARN, or anything else, is refused with the reason."""
    if Token.is_unresolved(value):
        return value
    if not _CLOUDFRONT_WEB_ACL_ARN.fullmatch(value):
        raise ValueError(
            f"web_acl_arn ({names.CONTEXT_WEB_ACL_ARN_KEY}) must be the ARN of a WAF WebACL of "
            f"scope CLOUDFRONT, arn:aws:wafv2:us-east-1:<account>:global/webacl/<name>/<id>; "
            f"got {value!r}"
        )
    return value


class ConsoleWebAcl(Construct):
    """A CLOUDFRONT-scope WAF WebACL (create it in us-east-1): a rate limit per client IP on
    the public routes (``/api/``, ``/console``) and AWS's common rule set (its body-size rule
    only counts: a campaign's YAML may be larger than 8 KB)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, rate_limit: int = RATE_LIMIT_PER_IP
    ) -> None:
        super().__init__(scope, construct_id)

        def visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True,
                metric_name=metric,
                sampled_requests_enabled=True,
            )

        def starts_with(prefix: str) -> wafv2.CfnWebACL.StatementProperty:
            return wafv2.CfnWebACL.StatementProperty(
                byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
                    field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(uri_path={}),
                    positional_constraint="STARTS_WITH",
                    search_string=prefix,
                    text_transformations=[
                        wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")
                    ],
                )
            )

        public = wafv2.CfnWebACL.StatementProperty(
            or_statement=wafv2.CfnWebACL.OrStatementProperty(
                statements=[
                    starts_with(f"{names.API_ROUTE_PREFIX}/"),
                    starts_with(names.CONSOLE_ROUTE_PREFIX),
                    starts_with(names.CARDS_ROUTE_PREFIX),
                ]
            )
        )
        self.web_acl = wafv2.CfnWebACL(
            self,
            names.WEB_ACL_ID,
            scope="CLOUDFRONT",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=visibility("KizunaConsole"),
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name=names.WEB_ACL_RATE_RULE,
                    priority=0,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            aggregate_key_type="IP",
                            limit=rate_limit,
                            evaluation_window_sec=300,
                            scope_down_statement=public,
                        )
                    ),
                    visibility_config=visibility(names.WEB_ACL_RATE_RULE),
                ),
                wafv2.CfnWebACL.RuleProperty(
                    name=names.WEB_ACL_COMMON_RULE,
                    priority=1,
                    override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                            vendor_name="AWS",
                            name="AWSManagedRulesCommonRuleSet",
                            rule_action_overrides=[
                                wafv2.CfnWebACL.RuleActionOverrideProperty(
                                    name="SizeRestrictions_BODY",
                                    action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={}),
                                )
                            ],
                        )
                    ),
                    visibility_config=visibility(names.WEB_ACL_COMMON_RULE),
                ),
            ],
        )

    @property
    def arn(self) -> str:
        return self.web_acl.attr_arn


class Api(Construct):
    """The API function, its Cognito user pool, HTTP API, CloudFront distribution and WAF.

    Keyword arguments:
        wiring: the bus, tables and shared function settings.
        delivery: its send function is invoked for a transactional message.
        campaigns: the campaign routes store campaigns, schedule them in its Scheduler group
            with its role and dead-letter queue, and start its state machine.
        deployed_channels: the channels the stack sends on: a campaign on none of them is
            refused (``kizuna.delivery.deployed``).
        web_acl_arn: an existing CLOUDFRONT-scope WebACL (made in us-east-1) instead of
            creating one here (which needs the stack in us-east-1).
        removal_policy: of the user pool (RETAIN also turns on its deletion protection).
        advanced_security: Cognito threat protection (the Plus feature plan, billed per
            active user) enforced on sign-ins.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        wiring: Wiring,
        delivery: Delivery,
        campaigns: Campaigns,
        deployed_channels: Collection[str],
        data_dirs: Mapping[str, Path] | None = None,
        web_acl_arn: str | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        advanced_security: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        source_root = wiring.shared["source_root"]
        log_retention = wiring.shared.get("log_retention", DEFAULT_LOG_RETENTION)
        self.advanced_security = advanced_security
        self.schedule_group_name = campaigns.schedule_group_name

        # --- Cognito: people, their groups, the console's app client ----------------------
        self.user_pool = cognito.UserPool(
            self,
            names.USER_POOL_ID,
            self_sign_up_enabled=False,  # an admin creates every account
            sign_in_aliases=cognito.SignInAliases(username=True, email=True),
            sign_in_case_sensitive=False,
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            password_policy=cognito.PasswordPolicy(
                min_length=PASSWORD_MIN_LENGTH,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            # The console's sign-in form answers no MFA challenge (USER_PASSWORD_AUTH).
            mfa=cognito.Mfa.OFF,
            feature_plan=(
                cognito.FeaturePlan.PLUS if advanced_security else cognito.FeaturePlan.ESSENTIALS
            ),
            standard_threat_protection_mode=(
                cognito.StandardThreatProtectionMode.FULL_FUNCTION if advanced_security else None
            ),
            deletion_protection=removal_policy == RemovalPolicy.RETAIN,
            removal_policy=removal_policy,
        )
        self.groups = {
            str(role): cognito.CfnUserPoolGroup(
                self,
                f"{names.USER_POOL_GROUP_PREFIX}{str(role).capitalize()}",
                user_pool_id=self.user_pool.user_pool_id,
                group_name=str(role),
                precedence=len(ROLE_ORDER) - rank,  # lower wins: admin first
                description=f"Kizuna {role}",
            )
            for rank, role in enumerate(ROLE_ORDER)
        }
        self.client = self.user_pool.add_client(
            names.USER_POOL_CLIENT_ID,
            generate_secret=False,
            auth_flows=cognito.AuthFlow(user_password=True, user_srp=True),  # + refresh
            id_token_validity=ID_TOKEN_VALIDITY,
            access_token_validity=ID_TOKEN_VALIDITY,
            refresh_token_validity=REFRESH_TOKEN_VALIDITY,
            prevent_user_existence_errors=True,
            enable_token_revocation=True,
            disable_o_auth=True,  # no hosted UI: the console has its own sign-in form
        )

        # --- The function ------------------------------------------------------------------
        self.function = KizunaFunction(
            self,
            names.API_FUNCTION_ID,
            folder=names.API_FUNCTION_NAME,
            description="Kizuna HTTP API and console",
            environment=wiring.environment(
                {
                    settings.ENV_USER_POOL_ID: self.user_pool.user_pool_id,
                    settings.ENV_USER_POOL_CLIENT_ID: self.client.user_pool_client_id,
                    settings.ENV_CAMPAIGNS_TABLE: wiring.tables.campaigns.table_name,
                    settings.ENV_CAMPAIGN_STATE_MACHINE_ARN: (
                        campaigns.state_machine.state_machine_arn
                    ),
                    settings.ENV_CAMPAIGN_SCHEDULE_GROUP: campaigns.schedule_group_name,
                    settings.ENV_CAMPAIGN_SCHEDULER_ROLE_ARN: campaigns.scheduler_role.role_arn,
                    settings.ENV_CAMPAIGN_SCHEDULE_DLQ_ARN: campaigns.dead_letter_queue.queue_arn,
                    settings.ENV_DEPLOYED_CHANNELS: channels_text(deployed_channels),
                    settings.ENV_ANALYTICS_BUCKET: wiring.tables.analytics.bucket_name,
                    settings.ENV_SNAPSHOTS_TABLE: wiring.tables.snapshots.table_name,
                    settings.ENV_SEND_FUNCTION_NAME: delivery.send.function.function_name,
                    # card tokens (/cards) under a key derived from it
                    names.ENV_SIGNING_SECRET_ARN: delivery.signing_secret.secret_arn,
                }
            ),
            extras=self._data_dirs(source_root, data_dirs),
            timeout=API_TIMEOUT,
            memory_size=API_MEMORY_MB,
            **wiring.shared,
        )
        self._grant(wiring, delivery, campaigns)

        # --- HTTP API ----------------------------------------------------------------------
        self.access_log_group = logs.LogGroup(
            self, names.API_ACCESS_LOG_GROUP_ID, retention=log_retention
        )
        self.http_api = apigwv2.HttpApi(
            self,
            names.HTTP_API_ID,
            description="Kizuna HTTP API and console",
            create_default_stage=False,
        )
        self.stage = self.http_api.add_stage(
            names.HTTP_STAGE_ID,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=THROTTLE_RATE, burst_limit=THROTTLE_BURST),
            access_log_settings=AccessLogs(self.access_log_group),
        )
        integration = integrations.HttpLambdaIntegration(
            names.HTTP_INTEGRATION_ID,
            self.function.function,
            payload_format_version=apigwv2.PayloadFormatVersion.VERSION_2_0,
        )
        self.jwt_authorizer = authorizers.HttpUserPoolAuthorizer(
            names.JWT_AUTHORIZER_ID,
            self.user_pool,
            user_pool_clients=[self.client],
        )
        any_method = [apigwv2.HttpMethod.ANY]
        self.http_api.add_routes(
            path=route_path(names.API_ROUTE_PREFIX),
            methods=any_method,
            integration=integration,
            authorizer=self.jwt_authorizer,
        )
        self.http_api.add_routes(
            path=route_path(names.MACHINE_ROUTE_PREFIX),
            methods=any_method,
            integration=integration,
            authorizer=authorizers.HttpIamAuthorizer(),
        )
        # No authorizer: the function verifies the session cookie (and CSRF on every POST).
        self.console_routes = [
            *self.http_api.add_routes(
                path=names.CONSOLE_ROUTE_PREFIX,
                methods=[apigwv2.HttpMethod.GET],
                integration=integration,
            ),
            *self.http_api.add_routes(
                path=route_path(names.CONSOLE_ROUTE_PREFIX),
                methods=any_method,
                integration=integration,
            ),
        ]
        # No authorizer: the shop's site sends a card token, which the function verifies.
        self.card_routes = [
            *self.http_api.add_routes(
                path=names.CARDS_ROUTE_PREFIX,
                methods=[apigwv2.HttpMethod.GET],
                integration=integration,
            ),
            *self.http_api.add_routes(
                path=route_path(names.CARDS_ROUTE_PREFIX),
                methods=[apigwv2.HttpMethod.POST],
                integration=integration,
            ),
        ]
        # https://<api id>.execute-api.<region>.<suffix>/ (the $default stage is at the root)
        self.api_url = self.stage.url
        self.api_domain = f"{self.http_api.api_id}.execute-api.{stack.region}.{stack.url_suffix}"

        # --- WAF (us-east-1) and CloudFront ---------------------------------------------------
        if web_acl_arn is None:
            self._require_web_acl_region(stack)
            self.web_acl: ConsoleWebAcl | None = ConsoleWebAcl(self, names.WEB_ACL_ID)
            self.web_acl_arn = self.web_acl.arn
        else:
            self.web_acl = None
            self.web_acl_arn = check_web_acl_arn(web_acl_arn)
        self.response_headers = cloudfront.ResponseHeadersPolicy(
            self,
            names.RESPONSE_HEADERS_POLICY_ID,
            comment="Kizuna console: the API function's own security headers",
            security_headers_behavior=security_headers_behavior(),
        )
        origin = origins.HttpOrigin(
            self.api_domain,
            protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
            origin_ssl_protocols=[cloudfront.OriginSslPolicy.TLS_V1_2],
        )

        def behavior(cache_policy: cloudfront.ICachePolicy) -> cloudfront.BehaviorOptions:
            return cloudfront.BehaviorOptions(
                origin=origin,
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
                cache_policy=cache_policy,
                origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
                response_headers_policy=self.response_headers,
                compress=True,
            )

        # CloudFront forwards a GET's Authorization header only when it is in the cache key,
        # and a policy with a cache key needs a maximum TTL above 0: the bearer token is the
        # key, and the function's "Cache-Control: no-store" keeps anything from being cached.
        self.api_cache_policy = cloudfront.CachePolicy(
            self,
            names.API_CACHE_POLICY_ID,
            comment="Kizuna /api: forward the bearer token, cache nothing",
            default_ttl=Duration.seconds(0),
            min_ttl=Duration.seconds(0),
            max_ttl=Duration.seconds(1),
            header_behavior=cloudfront.CacheHeaderBehavior.allow_list("Authorization"),
            query_string_behavior=cloudfront.CacheQueryStringBehavior.all(),
            cookie_behavior=cloudfront.CacheCookieBehavior.none(),
        )
        self.distribution = cloudfront.Distribution(
            self,
            names.DISTRIBUTION_ID,
            comment="Kizuna console and API",
            # the console (its cookie is forwarded) and everything else: never cached
            default_behavior=behavior(cloudfront.CachePolicy.CACHING_DISABLED),
            additional_behaviors={
                f"{names.API_ROUTE_PREFIX}/*": behavior(self.api_cache_policy),
            },
            web_acl_id=self.web_acl_arn,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass.PRICE_CLASS_ALL,
        )
        self.console_url = (
            f"https://{self.distribution.distribution_domain_name}{names.CONSOLE_ROUTE_PREFIX}"
        )

    @staticmethod
    def _data_dirs(source_root: Path, given: Mapping[str, Path] | None) -> dict[str, Path]:
        """``programs/`` and ``templates/`` (and ``segments/`` when there is one), bundled next
        to the handler as the other functions bundle them (``given`` overrides the
        checkout's)."""
        given = given or {}
        dirs = {
            name: given.get(name) or source_root / name
            for name in (names.PROGRAMS_DIR, names.TEMPLATES_DIR, names.SEGMENTS_DIR)
        }
        if not dirs[names.SEGMENTS_DIR].is_dir():
            del dirs[names.SEGMENTS_DIR]
        return dirs

    def _grant(self, wiring: Wiring, delivery: Delivery, campaigns: Campaigns) -> None:
        """What the routes may do, and nothing more."""
        function = self.function.function
        tables = wiring.tables
        bucket = tables.analytics
        # Customers: profiles, segment counts and samples (reads only).
        tables.customers.grant_read_data(function)
        # Activity: timelines (reads) and the audit log (one PutItem per write).
        tables.activity.grant_read_data(function)
        # (Table.grant would add its indexes, where nothing is put)
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["dynamodb:PutItem"], resources=[tables.activity.table_arn])
        )
        tables.snapshots.grant_read_data(function)
        tables.campaigns.grant_read_write_data(function)
        # Reports: JSON under reports/ only; a campaign's static audience list.
        iam.Grant.add_to_principal(
            grantee=function,
            actions=["s3:GetObject"],
            resource_arns=[bucket.arn_for_objects(f"{names.ANALYTICS_REPORTS_PREFIX}*")],
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{names.ANALYTICS_REPORTS_PREFIX}*"]}},
            )
        )
        iam.Grant.add_to_principal(
            grantee=function,
            actions=["s3:PutObject"],
            resource_arns=[
                bucket.arn_for_objects(
                    f"{names.ANALYTICS_CAMPAIGNS_PREFIX}*/{names.CAMPAIGN_LIST_OBJECT}"
                )
            ],
        )
        # Campaigns: schedules in the campaigns' group only, run as its role; run one now.
        iam.Grant.add_to_principal(
            grantee=function,
            actions=[
                "scheduler:CreateSchedule",
                "scheduler:UpdateSchedule",
                "scheduler:DeleteSchedule",
                "scheduler:GetSchedule",
            ],
            resource_arns=[self.schedules_arn(campaigns)],
        )
        campaigns.scheduler_role.grant_pass_role(function.grant_principal)
        campaigns.state_machine.grant_start_execution(function)
        # ... and read how an occurrence's execution ended (one that ended unfinished is shown)
        campaigns.state_machine.grant_execution(function, "states:DescribeExecution")
        # Cards: the signing secret (card tokens); a card's seen / clicked stamps (its row
        # and its ledger entry, conditional UpdateItem).
        delivery.signing_secret.grant_read(function)
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:UpdateItem"],
                resources=[tables.activity.table_arn],
                conditions={
                    "ForAllValues:StringEquals": {"dynamodb:Attributes": list(CARD_STAMPS)}
                },
            )
        )
        # Transactional messages: the send function, synchronously.
        delivery.send.function.grant_invoke(function)
        # Inbound events from /machine/events (never source "kizuna": the bus denies it).
        wiring.bus.grant_put_events_to(function)

    @staticmethod
    def schedules_arn(campaigns: Campaigns) -> str:
        """Every schedule of the campaigns' Scheduler group."""
        return Stack.of(campaigns).format_arn(
            service="scheduler",
            resource="schedule",
            resource_name=f"{campaigns.schedule_group_name}/*",
        )

    def _require_web_acl_region(self, stack: Stack) -> None:
        """A CLOUDFRONT WebACL is made in us-east-1 only: refuse another known region now, and
        assert the region at deploy time when it is not known yet."""
        region = stack.region
        if not Token.is_unresolved(region):
            if region != names.WEB_ACL_REGION:
                raise ValueError(
                    f"the console's WAF WebACL (scope CLOUDFRONT) can only be created in "
                    f"{names.WEB_ACL_REGION}, and this stack is in {region}: create "
                    f"kizuna_infra.api.ConsoleWebAcl in a {names.WEB_ACL_REGION} stack and "
                    f"give its ARN (context {names.CONTEXT_WEB_ACL_ARN_KEY})"
                )
            return
        CfnRule(
            self,
            names.WEB_ACL_REGION_RULE_ID,
            assertions=[
                CfnRuleAssertion(
                    assert_=Fn.condition_equals(stack.region, names.WEB_ACL_REGION),
                    assert_description=(
                        f"The console's WAF WebACL (scope CLOUDFRONT) is created in "
                        f"{names.WEB_ACL_REGION} only: deploy there, or create "
                        f"kizuna_infra.api.ConsoleWebAcl in {names.WEB_ACL_REGION} and give "
                        f"its ARN as context {names.CONTEXT_WEB_ACL_ARN_KEY}."
                    ),
                )
            ],
        )
