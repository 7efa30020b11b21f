"""The HTTP API and the console: Cognito (pool, groups, app client), the HTTP API's routes
and their authorization, the stage's throttling and access log, CloudFront (HTTPS only, the
function's own security headers), WAF's rate limit per client IP, the API function's
environment and its least-privilege grants."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template
from infra_helpers import (
    StackIds,
    actions_of,
    arn,
    as_list,
    environment,
    function_statements,
    index_arn,
    iter_resources,
    of_type,
    qualified_arn,
    resources_for,
)

from kizuna.api.app import SECURITY_HEADERS
from kizuna.delivery.cards import CARD_STAMPS
from kizuna.runtime import settings
from kizuna_infra import names
from kizuna_infra.api import (
    ACCESS_LOG_FORMAT,
    RATE_LIMIT_PER_IP,
    THROTTLE_BURST,
    THROTTLE_RATE,
    check_web_acl_arn,
)
from kizuna_infra.layers import CopyPackageBundler
from kizuna_infra.stack import KizunaStack

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
CONSOLE_DIR = ROOT / names.KIZUNA_PACKAGE_DIR / "api" / "console"
# CloudFront's managed policies (ids fixed by AWS).
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST_HEADER = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
ROUTES = {
    "ANY /api/{proxy+}": "JWT",
    "ANY /machine/{proxy+}": "AWS_IAM",
    "GET /console": "NONE",
    "ANY /console/{proxy+}": "NONE",
    "GET /cards": "NONE",
    "POST /cards/{proxy+}": "NONE",
}
OTHER_REGION_ACL = (
    "arn:aws:wafv2:us-east-1:123456789012:global/webacl/kizuna-console/"
    "a1b2c3d4-5678-90ab-cdef-0123456789ab"
)


class Ids(StackIds):
    def __init__(self, stack: KizunaStack, logical_id: Any) -> None:
        super().__init__(stack, logical_id)
        k = stack.kizuna
        api = k.api
        self.function = logical_id(api.function.function)
        self.role = logical_id(api.function.role)
        self.pool = logical_id(api.user_pool)
        self.client = logical_id(api.client)
        self.http_api = logical_id(api.http_api)
        self.stage = logical_id(api.stage)
        self.access_logs = logical_id(api.access_log_group)
        self.distribution = logical_id(api.distribution)
        self.headers = logical_id(api.response_headers)
        assert api.web_acl is not None
        self.web_acl = logical_id(api.web_acl.web_acl)
        self.campaigns = logical_id(k.tables.campaigns)
        self.snapshots = logical_id(k.tables.snapshots)
        self.bucket = logical_id(k.tables.analytics)
        self.machine = logical_id(k.campaigns.state_machine)
        self.scheduler_role = logical_id(k.campaigns.scheduler_role)
        self.dlq = logical_id(k.campaigns.dead_letter_queue)
        self.send = logical_id(k.delivery.send.function)
        self.group_name = k.campaigns.schedule_group_name


@pytest.fixture(scope="module")
def ids(stack: KizunaStack, logical_id: Any) -> Ids:
    return Ids(stack, logical_id)


def one(resources: dict[str, Any], resource_type: str) -> dict[str, Any]:
    [found] = of_type(resources, resource_type).values()
    props: dict[str, Any] = found["Properties"]
    return props


# --- Cognito -------------------------------------------------------------------------------


def test_user_pool_admits_only_accounts_an_admin_creates(
    resources: dict[str, Any], ids: Ids
) -> None:
    pool = resources[ids.pool]
    props = pool["Properties"]
    assert props["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    policy = props["Policies"]["PasswordPolicy"]
    assert policy["MinimumLength"] >= 12
    for rule in ("RequireLowercase", "RequireUppercase", "RequireNumbers", "RequireSymbols"):
        assert policy[rule] is True, rule
    # RETAIN (the default removal policy) also protects the pool from deletion
    assert props["DeletionProtection"] == "ACTIVE"
    assert pool["DeletionPolicy"] == "Retain"


def test_three_groups_viewer_marketer_admin(resources: dict[str, Any], ids: Ids) -> None:
    groups = {
        g["Properties"]["GroupName"]: g["Properties"]
        for g in of_type(resources, "AWS::Cognito::UserPoolGroup").values()
    }
    assert set(groups) == {"viewer", "marketer", "admin"}
    assert all(g["UserPoolId"] == {"Ref": ids.pool} for g in groups.values())
    # a user in several groups: the highest role's group takes precedence (lower wins)
    assert groups["admin"]["Precedence"] < groups["marketer"]["Precedence"]
    assert groups["marketer"]["Precedence"] < groups["viewer"]["Precedence"]


def test_console_client_has_no_secret_password_srp_refresh_and_one_hour_id_tokens(
    resources: dict[str, Any], ids: Ids
) -> None:
    client = resources[ids.client]["Properties"]
    assert client["UserPoolId"] == {"Ref": ids.pool}
    assert client["GenerateSecret"] is False
    assert set(client["ExplicitAuthFlows"]) == {
        "ALLOW_USER_PASSWORD_AUTH",
        "ALLOW_USER_SRP_AUTH",
        "ALLOW_REFRESH_TOKEN_AUTH",
    }
    assert (client["IdTokenValidity"], client["TokenValidityUnits"]["IdToken"]) == (60, "minutes")
    assert client["PreventUserExistenceErrors"] == "ENABLED"
    assert not client.get("AllowedOAuthFlowsUserPoolClient")


# --- HTTP API --------------------------------------------------------------------------------


def test_routes_and_their_authorization(resources: dict[str, Any], ids: Ids) -> None:
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in of_type(resources, "AWS::ApiGatewayV2::Route").values()
    }
    assert {key: r["AuthorizationType"] for key, r in routes.items()} == ROUTES
    [authorizer] = of_type(resources, "AWS::ApiGatewayV2::Authorizer")
    assert routes["ANY /api/{proxy+}"]["AuthorizerId"] == {"Ref": authorizer}
    assert all("AuthorizerId" not in r for k, r in routes.items() if k != "ANY /api/{proxy+}")
    # every route reaches the one function through one Lambda proxy integration (payload 2.0)
    [integration_id] = of_type(resources, "AWS::ApiGatewayV2::Integration")
    target = {"Fn::Join": ["", ["integrations/", {"Ref": integration_id}]]}
    assert all(
        r["Target"] == target and r["ApiId"] == {"Ref": ids.http_api} for r in routes.values()
    )
    integration = resources[integration_id]["Properties"]
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["PayloadFormatVersion"] == "2.0"
    assert integration["IntegrationUri"] == arn(ids.function)
    assert one(resources, "AWS::ApiGatewayV2::Api")["ProtocolType"] == "HTTP"


def test_jwt_authorizer_trusts_the_pool_for_the_console_client(
    resources: dict[str, Any], ids: Ids
) -> None:
    authorizer = one(resources, "AWS::ApiGatewayV2::Authorizer")
    assert authorizer["AuthorizerType"] == "JWT"
    assert authorizer["IdentitySource"] == ["$request.header.Authorization"]
    jwt = authorizer["JwtConfiguration"]
    assert jwt["Audience"] == [{"Ref": ids.client}]
    # the issuer a Cognito id token carries (kizuna.api.auth.ISSUER_FORMAT)
    assert jwt["Issuer"] == {
        "Fn::Join": [
            "",
            ["https://cognito-idp.", {"Ref": "AWS::Region"}, ".amazonaws.com/", {"Ref": ids.pool}],
        ]
    }


def test_only_api_gateway_routes_of_this_api_may_invoke_the_function(
    resources: dict[str, Any], ids: Ids
) -> None:
    permissions = [
        p["Properties"]
        for p in of_type(resources, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == arn(ids.function)
    ]
    assert len(permissions) == len(ROUTES)
    for permission in permissions:
        assert permission["Principal"] == "apigateway.amazonaws.com"
        assert {"Ref": ids.http_api} in permission["SourceArn"]["Fn::Join"][1]


def test_default_stage_is_throttled_and_logs_json_without_bodies(
    resources: dict[str, Any], ids: Ids
) -> None:
    stage = resources[ids.stage]["Properties"]
    assert stage["StageName"] == "$default"
    assert stage["AutoDeploy"] is True
    assert stage["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": THROTTLE_RATE,
        "ThrottlingBurstLimit": THROTTLE_BURST,
    }
    logging = stage["AccessLogSettings"]
    assert logging["DestinationArn"] == arn(ids.access_logs)
    assert resources[ids.access_logs]["Properties"]["RetentionInDays"] == 30
    record = json.loads(logging["Format"])
    assert record == ACCESS_LOG_FORMAT
    assert record["requestId"] == "$context.requestId"
    # no body, no token, no claim of the signed-in person
    assert not [v for v in record.values() if "body" in v.lower() or "claims" in v]


# --- CloudFront and WAF ------------------------------------------------------------------------


def test_distribution_is_https_only_uncached_in_front_of_the_api(
    resources: dict[str, Any], ids: Ids
) -> None:
    config = resources[ids.distribution]["Properties"]["DistributionConfig"]
    behavior = config["DefaultCacheBehavior"]
    assert behavior["ViewerProtocolPolicy"] in {"https-only", "redirect-to-https"}
    assert behavior["CachePolicyId"] == CACHING_DISABLED
    assert behavior["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST_HEADER
    assert behavior["ResponseHeadersPolicyId"] == {"Ref": ids.headers}
    assert "POST" in behavior["AllowedMethods"]  # console forms and API writes
    # /api/*: the bearer token reaches the API (CloudFront drops a GET's Authorization
    # header unless it is in the cache key), and nothing is cached
    [api] = config["CacheBehaviors"]
    assert api["PathPattern"] == "/api/*"
    assert api["ViewerProtocolPolicy"] == behavior["ViewerProtocolPolicy"]
    assert api["ResponseHeadersPolicyId"] == {"Ref": ids.headers}
    assert api["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST_HEADER
    cache = resources[api["CachePolicyId"]["Ref"]]["Properties"]["CachePolicyConfig"]
    assert (cache["DefaultTTL"], cache["MinTTL"], cache["MaxTTL"]) == (0, 0, 1)
    key = cache["ParametersInCacheKeyAndForwardedToOrigin"]
    assert key["HeadersConfig"] == {"HeaderBehavior": "whitelist", "Headers": ["Authorization"]}
    assert key["CookiesConfig"] == {"CookieBehavior": "none"}
    [origin] = config["Origins"]
    assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    assert origin["CustomOriginConfig"]["OriginSSLProtocols"] == ["TLSv1.2"]
    assert origin["DomainName"]["Fn::Join"][1][0] == {"Ref": ids.http_api}
    assert ".execute-api." in origin["DomainName"]["Fn::Join"][1]


def test_response_headers_are_the_functions_own(resources: dict[str, Any], ids: Ids) -> None:
    config = resources[ids.headers]["Properties"]["ResponseHeadersPolicyConfig"]
    headers = config["SecurityHeadersConfig"]
    csp = headers["ContentSecurityPolicy"]
    assert csp["ContentSecurityPolicy"] == SECURITY_HEADERS["Content-Security-Policy"]
    assert csp["Override"] is True
    assert "default-src 'none'" in csp["ContentSecurityPolicy"]
    assert "script-src" not in csp["ContentSecurityPolicy"]  # no script at all
    hsts = headers["StrictTransportSecurity"]
    assert hsts["AccessControlMaxAgeSec"] == 63_072_000
    assert hsts["IncludeSubdomains"] is True
    assert headers["FrameOptions"] == {"FrameOption": "DENY", "Override": True}
    assert headers["ContentTypeOptions"] == {"Override": True}
    assert headers["ReferrerPolicy"]["ReferrerPolicy"] == SECURITY_HEADERS["Referrer-Policy"]


def test_waf_limits_each_client_ip_on_the_public_routes_and_guards_the_distribution(
    resources: dict[str, Any], ids: Ids
) -> None:
    # Given the WebACL attached to the distribution
    config = resources[ids.distribution]["Properties"]["DistributionConfig"]
    assert config["WebACLId"] == arn(ids.web_acl)
    acl = resources[ids.web_acl]["Properties"]
    assert acl["Scope"] == "CLOUDFRONT"
    assert acl["DefaultAction"] == {"Allow": {}}
    # Then its first rule blocks an IP past the limit on /api/ and /console
    rules = sorted(acl["Rules"], key=lambda r: r["Priority"])
    rate = rules[0]
    assert rate["Action"] == {"Block": {}}
    statement = rate["Statement"]["RateBasedStatement"]
    assert statement["AggregateKeyType"] == "IP"
    assert statement["Limit"] == RATE_LIMIT_PER_IP
    prefixes = {
        s["ByteMatchStatement"]["SearchString"]
        for s in statement["ScopeDownStatement"]["OrStatement"]["Statements"]
    }
    assert prefixes == {"/api/", "/console", "/cards"}
    assert all(
        s["ByteMatchStatement"]["PositionalConstraint"] == "STARTS_WITH"
        for s in statement["ScopeDownStatement"]["OrStatement"]["Statements"]
    )
    # and AWS's common rule set follows
    managed = rules[1]["Statement"]["ManagedRuleGroupStatement"]
    assert (managed["VendorName"], managed["Name"]) == ("AWS", "AWSManagedRulesCommonRuleSet")


def test_region_agnostic_stack_asserts_us_east_1_before_deploying(
    template_json: dict[str, Any],
) -> None:
    # The WebACL (scope CLOUDFRONT) exists in us-east-1 only: elsewhere the deploy stops first
    assertions = [
        a
        for rule in template_json["Rules"].values()
        for a in rule["Assertions"]
        if "WebACL" in a["AssertDescription"]
    ]
    assert [a["Assert"] for a in assertions] == [
        {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]}
    ]
    assert names.CONTEXT_WEB_ACL_ARN_KEY in assertions[0]["AssertDescription"]


def test_another_region_without_a_web_acl_fails_synthesis_with_the_fix() -> None:
    app = cdk.App(context={"aws:cdk:bundling-stacks": []})
    with pytest.raises(ValueError, match=names.CONTEXT_WEB_ACL_ARN_KEY):
        KizunaStack(app, env=cdk.Environment(account="123456789012", region="eu-west-1"))


@pytest.mark.parametrize(
    "value",
    [
        "",
        "arn:aws:wafv2:ap-northeast-1:123456789012:regional/webacl/kizuna/"
        "a1b2c3d4-5678-90ab-cdef-0123456789ab",  # a regional WebACL cannot guard CloudFront
        "arn:aws:wafv2:us-east-1:123456789012:global/ipset/kizuna/"
        "a1b2c3d4-5678-90ab-cdef-0123456789ab",
        "a1b2c3d4-5678-90ab-cdef-0123456789ab",  # WAF Classic's bare id
        OTHER_REGION_ACL + " ",
    ],
)
def test_a_given_web_acl_must_be_a_cloudfront_one(value: str) -> None:
    with pytest.raises(ValueError, match="scope CLOUDFRONT"):
        check_web_acl_arn(value)
    assert check_web_acl_arn(OTHER_REGION_ACL) == OTHER_REGION_ACL


@pytest.fixture(scope="module")
def tokyo(make_app: Any) -> Template:
    """Kizuna in ap-northeast-1 with a WebACL made in us-east-1, given through context."""
    app = make_app({names.CONTEXT_WEB_ACL_ARN_KEY: OTHER_REGION_ACL})
    stack = KizunaStack(app, env=cdk.Environment(account="123456789012", region="ap-northeast-1"))
    return Template.from_stack(stack)


def test_a_given_web_acl_is_attached_instead_of_creating_one(tokyo: Template) -> None:
    tokyo.resource_count_is("AWS::WAFv2::WebACL", 0)
    [distribution] = tokyo.find_resources("AWS::CloudFront::Distribution").values()
    assert distribution["Properties"]["DistributionConfig"]["WebACLId"] == OTHER_REGION_ACL
    rules = tokyo.to_json().get("Rules", {})
    assert not [r for r in rules.values() if "WebACL" in json.dumps(r)]


# --- The function: environment and grants ---------------------------------------------------


def test_function_environment_names_what_every_route_family_uses(
    resources: dict[str, Any], ids: Ids, stack: KizunaStack
) -> None:
    env = environment(resources, ids.function)
    assert resources[ids.function]["Metadata"][names.FUNCTION_METADATA_KEY] == "api"
    expected = {
        settings.ENV_CUSTOMERS_TABLE: {"Ref": ids.customers},
        settings.ENV_ACTIVITY_TABLE: {"Ref": ids.activity},
        settings.ENV_EVENT_BUS_NAME: {"Ref": ids.bus},
        settings.ENV_USER_POOL_ID: {"Ref": ids.pool},
        settings.ENV_USER_POOL_CLIENT_ID: {"Ref": ids.client},
        settings.ENV_CAMPAIGNS_TABLE: {"Ref": ids.campaigns},
        settings.ENV_CAMPAIGN_STATE_MACHINE_ARN: {"Ref": ids.machine},
        settings.ENV_CAMPAIGN_SCHEDULE_GROUP: ids.group_name,
        settings.ENV_CAMPAIGN_SCHEDULER_ROLE_ARN: arn(ids.scheduler_role),
        settings.ENV_CAMPAIGN_SCHEDULE_DLQ_ARN: arn(ids.dlq),
        settings.ENV_ANALYTICS_BUCKET: {"Ref": ids.bucket},
        settings.ENV_SNAPSHOTS_TABLE: {"Ref": ids.snapshots},
        settings.ENV_SEND_FUNCTION_NAME: {"Ref": ids.send},
        # no push application, LINE token or webhook in this stack's context
        settings.ENV_DEPLOYED_CHANNELS: "card,dm,email,sms",
    }
    assert {k: env[k] for k in expected} == expected
    assert json.loads(env[settings.ENV_KIZUNA_CONFIG]) == {}
    # Secure cookies and Cognito's own JWKS URL: the defaults, never overridden on AWS
    assert settings.ENV_SECURE_COOKIES not in env
    assert settings.ENV_JWKS_URL not in env


def test_function_reads_customers_and_writes_only_the_audit_log_in_activity(
    resources: dict[str, Any], ids: Ids
) -> None:
    statements = function_statements(resources, ids.function)
    writes = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    writes |= {"dynamodb:BatchWriteItem"}
    for statement in statements:
        targets = as_list(statement["Resource"])
        actions = set(as_list(statement["Action"]))
        if arn(ids.customers) in targets or arn(ids.snapshots) in targets:
            assert not actions & writes, statement
        if arn(ids.activity) in targets and "dynamodb:UpdateItem" in actions:
            # a card's seen / clicked stamps (docs/channels/CARDS.md): those fields only
            assert actions == {"dynamodb:UpdateItem"}, statement
            assert statement["Condition"] == {
                "ForAllValues:StringEquals": {"dynamodb:Attributes": list(CARD_STAMPS)}
            }
        elif arn(ids.activity) in targets:
            assert actions & writes <= {"dynamodb:PutItem"}, statement
    # puts: the audit log (activity) and campaign definitions, nothing else
    put = resources_for(statements, "dynamodb:PutItem")
    assert arn(ids.activity) in put
    assert {json.dumps(r) for r in put} <= {
        json.dumps(arn(t)) for t in (ids.activity, ids.campaigns)
    }
    # reads reach the customers' and activity's own indexes (timelines, segment samples)
    queried = resources_for(statements, "dynamodb:Query")
    assert index_arn(ids.customers) in queried and index_arn(ids.activity) in queried
    assert arn(ids.campaigns) in resources_for(statements, "dynamodb:DeleteItem")


def test_function_reads_reports_and_writes_static_lists_only_in_the_bucket(
    resources: dict[str, Any], ids: Ids
) -> None:
    statements = function_statements(resources, ids.function)
    objects = {"Fn::Join": ["", [arn(ids.bucket), "/reports/*"]]}
    lists = {"Fn::Join": ["", [arn(ids.bucket), "/campaigns/*/list.csv"]]}
    assert resources_for(statements, "s3:GetObject") == [objects]
    assert resources_for(statements, "s3:PutObject") == [lists]
    [listing] = [s for s in statements if "s3:ListBucket" in as_list(s["Action"])]
    assert listing["Resource"] == arn(ids.bucket)
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["reports/*"]}}
    assert not {a for a in actions_of(statements) if a.startswith("s3:")} - {
        "s3:GetObject",
        "s3:PutObject",
        "s3:ListBucket",
    }


def test_function_schedules_campaigns_in_their_group_as_their_role(
    resources: dict[str, Any], ids: Ids
) -> None:
    statements = function_statements(resources, ids.function)
    schedules = {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":scheduler:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                f":schedule/{ids.group_name}/*",
            ],
        ]
    }
    for action in ("CreateSchedule", "UpdateSchedule", "DeleteSchedule", "GetSchedule"):
        assert resources_for(statements, f"scheduler:{action}") == [schedules], action
    assert resources_for(statements, "iam:PassRole") == [arn(ids.scheduler_role)]
    assert resources_for(statements, "states:StartExecution") == [{"Ref": ids.machine}]
    # the console shows an occurrence whose execution ended unfinished: that machine's
    # executions are read (DescribeExecution), and nothing else of Step Functions is allowed
    [executions] = resources_for(statements, "states:DescribeExecution")
    text = json.dumps(executions)
    assert ":execution:" in text and text.endswith(':*"]]}') and ids.machine in text, text
    assert {a for a in actions_of(statements) if a.startswith("states:")} == {
        "states:StartExecution",
        "states:DescribeExecution",
    }


def test_function_invokes_send_and_puts_events_on_the_bus_only(
    resources: dict[str, Any], ids: Ids
) -> None:
    statements = function_statements(resources, ids.function)
    assert sorted(map(json.dumps, resources_for(statements, "lambda:InvokeFunction"))) == sorted(
        map(json.dumps, [arn(ids.send), qualified_arn(ids.send)])
    )
    assert resources_for(statements, "events:PutEvents") == [arn(ids.bus)]
    assert "*" not in list(iter_resources(statements))
    # nothing to administer users with, and no Cognito call needs IAM (InitiateAuth is public)
    assert not {a for a in actions_of(statements) if a.startswith("cognito-idp:")}


def test_the_bus_still_refuses_kizuna_events_from_the_api(
    resources: dict[str, Any], ids: Ids
) -> None:
    # Given the bus policy keeping source "kizuna" to the five deriving functions
    policies = of_type(resources, "AWS::Events::EventBusPolicy").values()
    statements = {
        p["Properties"]["Statement"]["Sid"]: p["Properties"]["Statement"] for p in policies
    }
    statement = statements["cdk-OnlyKizunaPutsDerivedEvents"]
    assert statement["Condition"]["StringEquals"] == {"events:source": "kizuna"}
    allowed = statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
    # Then the API's role is not among them: what it puts comes from people and machines
    assert len(allowed) == 5
    assert arn(ids.role) not in allowed
    # nor may it report Kizuna's inbound facts (source kizuna.*: the hosted page's consent)
    inbound = statements["cdk-OnlyKizunaReportsItsInboundFacts"]["Condition"]
    assert inbound["StringLike"] == {"events:source": "kizuna.*"}
    assert arn(ids.role) not in inbound["ArnNotEquals"]["aws:PrincipalArn"]


# --- The layer ships the console's pages and styles --------------------------------------


def test_kizuna_layer_ships_the_console_templates_and_css(tmp_path: Path) -> None:
    # Given the kizuna layer's bundle
    CopyPackageBundler(ROOT / names.KIZUNA_PACKAGE_DIR).try_bundle(str(tmp_path))
    shipped = tmp_path / "python" / "kizuna" / "api" / "console"
    # Then every template and stylesheet of the console is in it, byte for byte
    files = [*CONSOLE_DIR.glob("templates/*.html"), *CONSOLE_DIR.glob("static/*.css")]
    assert {p.name for p in files} >= {"base.html", "sign_in.html", "console.css"}
    for source in files:
        copy = shipped / source.relative_to(CONSOLE_DIR)
        assert copy.read_bytes() == source.read_bytes(), source.name


# --- Outputs -------------------------------------------------------------------------------


def test_outputs_name_the_api_console_and_pool(template_json: dict[str, Any], ids: Ids) -> None:
    outputs = template_json["Outputs"]
    assert outputs[names.OUTPUT_USER_POOL_ID]["Value"] == {"Ref": ids.pool}
    assert outputs[names.OUTPUT_USER_POOL_CLIENT_ID]["Value"] == {"Ref": ids.client}
    console = outputs[names.OUTPUT_CONSOLE_URL]["Value"]["Fn::Join"][1]
    assert console == ["https://", {"Fn::GetAtt": [ids.distribution, "DomainName"]}, "/console"]
    api = outputs[names.OUTPUT_API_URL]["Value"]["Fn::Join"][1]
    assert api[:2] == ["https://", {"Ref": ids.http_api}] and api[-1] == "/"
