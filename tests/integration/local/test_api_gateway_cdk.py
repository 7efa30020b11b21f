"""The local gateway on what CDK's L2 constructs synthesize: a Cognito user pool with groups
and an app client, an HTTP API (``HttpUserPoolAuthorizer`` on ``/api``, ``HttpIamAuthorizer``
on ``/machine``, open ``/console``, ``HttpLambdaIntegration``), CloudFront with a response
headers policy and a WAF web ACL. A test-only stack: it checks that provisioning reads the
resource types and properties CDK writes, whatever the real Api construct adds around them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from kizuna_tools.local import LocalCloud
from kizuna_tools.local.testing import CloudFactory
from tests.integration.local.api_fixtures import write_gateway_project

pytestmark = pytest.mark.integration


def synthesize() -> dict[str, Any]:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    import aws_cdk as cdk
    from aws_cdk import aws_apigatewayv2 as apigw
    from aws_cdk import aws_apigatewayv2_authorizers as authorizers
    from aws_cdk import aws_apigatewayv2_integrations as integrations
    from aws_cdk import aws_cloudfront as cloudfront
    from aws_cdk import aws_cloudfront_origins as origins
    from aws_cdk import aws_cognito as cognito
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_wafv2 as wafv2
    from aws_cdk.assertions import Template

    app = cdk.App()
    stack = cdk.Stack(app, "GatewayProbe", env=cdk.Environment(region="us-east-1"))
    pool = cognito.UserPool(
        stack,
        "Users",
        self_sign_up_enabled=False,
        sign_in_aliases=cognito.SignInAliases(email=True),
        password_policy=cognito.PasswordPolicy(min_length=12),
        account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
        feature_plan=cognito.FeaturePlan.PLUS,
        removal_policy=cdk.RemovalPolicy.DESTROY,
    )
    client = pool.add_client(
        "Console", auth_flows=cognito.AuthFlow(user_password=True), generate_secret=False
    )
    for precedence, group in enumerate(("admin", "marketer", "viewer")):
        cognito.CfnUserPoolGroup(
            stack,
            f"Group{group}",
            user_pool_id=pool.user_pool_id,
            group_name=group,
            precedence=precedence,
        )
    function = lambda_.Function(
        stack,
        "Api",
        runtime=lambda_.Runtime.PYTHON_3_13,
        handler="handler.handler",
        code=lambda_.Code.from_inline("def handler(event, context): pass"),
        environment={
            "USER_POOL_ID": pool.user_pool_id,
            "USER_POOL_CLIENT_ID": client.user_pool_client_id,
        },
    )
    cfn_function = function.node.default_child
    assert isinstance(cfn_function, lambda_.CfnFunction)
    cfn_function.add_metadata("kizuna:function", "gwprobe")
    api = apigw.HttpApi(stack, "Http", create_default_stage=True)
    target = integrations.HttpLambdaIntegration("Fn", function)
    api.add_routes(
        path="/api/{proxy+}",
        methods=[apigw.HttpMethod.ANY],
        integration=target,
        authorizer=authorizers.HttpUserPoolAuthorizer("Cognito", pool, user_pool_clients=[client]),
    )
    api.add_routes(
        path="/machine/{proxy+}",
        methods=[apigw.HttpMethod.ANY],
        integration=target,
        authorizer=authorizers.HttpIamAuthorizer(),
    )
    api.add_routes(path="/console", methods=[apigw.HttpMethod.GET], integration=target)
    api.add_routes(path="/console/{proxy+}", methods=[apigw.HttpMethod.ANY], integration=target)
    headers = cloudfront.ResponseHeadersPolicy(
        stack,
        "Headers",
        security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
            content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                content_security_policy="default-src 'none'", override=True
            )
        ),
    )
    acl = wafv2.CfnWebACL(
        stack,
        "Acl",
        default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
        scope="CLOUDFRONT",
        visibility_config=wafv2.CfnWebACL.VisibilityConfigProperty(
            cloud_watch_metrics_enabled=True, metric_name="acl", sampled_requests_enabled=True
        ),
    )
    cloudfront.Distribution(
        stack,
        "Cdn",
        default_behavior=cloudfront.BehaviorOptions(
            origin=origins.HttpOrigin(f"{api.api_id}.execute-api.us-east-1.amazonaws.com"),
            response_headers_policy=headers,
        ),
        web_acl_id=acl.attr_arn,
    )
    template: dict[str, Any] = Template.from_stack(stack).to_json()
    return template


@pytest.fixture(scope="module")
def cdk_template() -> dict[str, Any]:
    return synthesize()


@pytest.fixture
def cloud(
    local_cloud_factory: CloudFactory, cdk_template: dict[str, Any], tmp_path: Path
) -> LocalCloud:
    return local_cloud_factory(cdk_template, project_root=write_gateway_project(tmp_path))


def test_what_cdk_synthesizes_is_provisioned_and_served(cloud: LocalCloud) -> None:
    # then nothing is unsupported; CloudFront and WAF are ignored, with why
    assert cloud.unsupported == []
    ignored = {i.type for i in cloud.ignored}
    assert {"AWS::CloudFront::Distribution", "AWS::WAFv2::WebACL"} <= ignored
    assert "AWS::CloudFront::ResponseHeadersPolicy" in ignored
    routes = sorted(r.route_key for r in cloud.gateway().api.routes)
    assert routes == [
        "ANY /api/{proxy+}",
        "ANY /console/{proxy+}",
        "ANY /machine/{proxy+}",
        "GET /console",
    ]
    spec = next(iter(cloud.functions.values()))
    assert spec.environment["USER_POOL_ID"] == cloud.user_pool_id()
    # and the routes answer as API Gateway's: 401 / 403 without credentials, open console
    assert cloud.http("GET", "/api/x").status == 401
    assert cloud.http("POST", "/machine/x", {"Host": "localhost"}, "{}").status == 403
    assert cloud.http("GET", "/console").status == 200
    username = cloud.username_for("viewer")
    assert username == "viewer@example.com"  # the pool signs in with email
    token = cloud.id_token(username, cloud.add_user(username, "viewer"))
    answer = cloud.http("GET", "/api/x", {"Authorization": f"Bearer {token}"})
    assert answer.status == 200
    claims = answer.json()["event"]["requestContext"]["authorizer"]["jwt"]["claims"]
    assert claims["cognito:groups"] == "[viewer]"
