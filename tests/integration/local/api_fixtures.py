"""A hand-written template with an HTTP API as the infra's Api construct writes one: a
Cognito user pool (groups, app client), an HTTP API with a JWT authorizer on ``/api``, IAM on
``/machine`` and none on ``/console``; its integration runs ``functions/<code>/handler.py``."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

GROUPS = ("viewer", "marketer", "admin")

# Answers with the event it got; a few paths exercise errors and cookies.
GATEWAY_PROBE = """
import base64
import json


def handler(event, context):
    path = event["rawPath"]
    if path.endswith("/crash"):
        raise RuntimeError("the probe crashed")
    if path.endswith("/malformed"):
        return {"statusCode": "not a status"}
    if path.endswith("/plain"):
        return {"just": "a dict"}
    if path.endswith("/binary"):
        return {
            "statusCode": 200,
            "headers": {"content-type": "image/png"},
            "body": base64.b64encode(bytes(range(256))).decode(),
            "isBase64Encoded": True,
        }
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json", "x-probe": "yes"},
        "cookies": ["a=1; Path=/; HttpOnly", "b=2; Path=/console"],
        "body": json.dumps({"event": event}),
    }
"""


def write_gateway_project(root: Path) -> Path:
    folder = root / "functions" / "gwprobe"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "handler.py").write_text(textwrap.dedent(GATEWAY_PROBE))
    return root


def _issuer() -> dict[str, Any]:
    return {
        "Fn::Join": [
            "",
            ["https://cognito-idp.", {"Ref": "AWS::Region"}, ".amazonaws.com/", {"Ref": "Pool"}],
        ]
    }


def gateway_template(
    code_name: str = "gwprobe",
    *,
    environment: dict[str, Any] | None = None,
    extra_routes: dict[str, dict[str, Any]] | None = None,
    tables: bool = False,
) -> dict[str, Any]:
    resources: dict[str, Any] = {
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
        "Pool": {
            "Type": "AWS::Cognito::UserPool",
            "Properties": {
                "UsernameAttributes": ["email"],
                "AutoVerifiedAttributes": ["email"],
                "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": True},
                "AccountRecoverySetting": {
                    "RecoveryMechanisms": [{"Name": "verified_email", "Priority": 1}]
                },
                "UserPoolAddOns": {"AdvancedSecurityMode": "ENFORCED"},
                "Policies": {"PasswordPolicy": {"MinimumLength": 12}},
            },
        },
        "Client": {
            "Type": "AWS::Cognito::UserPoolClient",
            "Properties": {
                "UserPoolId": {"Ref": "Pool"},
                "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
                "GenerateSecret": False,
                "PreventUserExistenceErrors": "ENABLED",
            },
        },
        **{
            f"Group{g.title()}": {
                "Type": "AWS::Cognito::UserPoolGroup",
                "Properties": {"UserPoolId": {"Ref": "Pool"}, "GroupName": g, "Precedence": n},
            }
            for n, g in enumerate(reversed(GROUPS))
        },
        "Fn": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Code": {"S3Bucket": "cdk-assets", "S3Key": f"{code_name}.zip"},
                "Handler": "handler.handler",
                "Runtime": "python3.13",
                "MemorySize": 512,
                "Timeout": 29,
                "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                "Environment": {
                    "Variables": {
                        "USER_POOL_ID": {"Ref": "Pool"},
                        "USER_POOL_CLIENT_ID": {"Ref": "Client"},
                        **(environment or {}),
                    }
                },
            },
            "Metadata": {"kizuna:function": code_name},
        },
        "Api": {
            "Type": "AWS::ApiGatewayV2::Api",
            "Properties": {"Name": "kizuna-api", "ProtocolType": "HTTP"},
        },
        "Stage": {
            "Type": "AWS::ApiGatewayV2::Stage",
            "Properties": {
                "ApiId": {"Ref": "Api"},
                "StageName": "$default",
                "AutoDeploy": True,
                "DefaultRouteSettings": {"ThrottlingBurstLimit": 50, "ThrottlingRateLimit": 20},
                "AccessLogSettings": {"DestinationArn": "arn:aws:logs:x", "Format": "{}"},
            },
        },
        "Integration": {
            "Type": "AWS::ApiGatewayV2::Integration",
            "Properties": {
                "ApiId": {"Ref": "Api"},
                "IntegrationType": "AWS_PROXY",
                "IntegrationUri": {"Fn::GetAtt": ["Fn", "Arn"]},
                "PayloadFormatVersion": "2.0",
            },
        },
        "Authorizer": {
            "Type": "AWS::ApiGatewayV2::Authorizer",
            "Properties": {
                "ApiId": {"Ref": "Api"},
                "AuthorizerType": "JWT",
                "IdentitySource": ["$request.header.Authorization"],
                "JwtConfiguration": {"Audience": [{"Ref": "Client"}], "Issuer": _issuer()},
                "Name": "cognito",
            },
        },
        "LogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {}},
        "Distribution": {"Type": "AWS::CloudFront::Distribution", "Properties": {}},
        "WebAcl": {"Type": "AWS::WAFv2::WebACL", "Properties": {}},
        "Invoke": {"Type": "AWS::Lambda::Permission", "Properties": {}},
    }
    routes = {
        "RouteApi": ("ANY /api/{proxy+}", "JWT"),
        "RouteMachine": ("ANY /machine/{proxy+}", "AWS_IAM"),
        "RouteConsole": ("GET /console", "NONE"),
        "RouteConsoleAll": ("ANY /console/{proxy+}", "NONE"),
    }
    for logical_id, (key, auth) in routes.items():
        props: dict[str, Any] = {
            "ApiId": {"Ref": "Api"},
            "RouteKey": key,
            "Target": {"Fn::Join": ["", ["integrations/", {"Ref": "Integration"}]]},
            "AuthorizationType": auth,
        }
        if auth == "JWT":
            props["AuthorizerId"] = {"Ref": "Authorizer"}
        resources[logical_id] = {"Type": "AWS::ApiGatewayV2::Route", "Properties": props}
    for logical_id, props in (extra_routes or {}).items():
        resources[logical_id] = {
            "Type": "AWS::ApiGatewayV2::Route",
            "Properties": {
                "ApiId": {"Ref": "Api"},
                "Target": {"Fn::Join": ["", ["integrations/", {"Ref": "Integration"}]]},
                **props,
            },
        }
    if tables:
        for name in ("Customers", "Activity"):
            resources[name] = {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "KeySchema": [
                        {"AttributeName": "customer_id", "KeyType": "HASH"},
                        *(
                            [{"AttributeName": "sk", "KeyType": "RANGE"}]
                            if name == "Activity"
                            else []
                        ),
                    ],
                    "AttributeDefinitions": [
                        {"AttributeName": "customer_id", "AttributeType": "S"},
                        *(
                            [{"AttributeName": "sk", "AttributeType": "S"}]
                            if name == "Activity"
                            else []
                        ),
                    ],
                    "BillingMode": "PAY_PER_REQUEST",
                },
            }
        resources["Bus"] = {"Type": "AWS::Events::EventBus", "Properties": {"Name": "kizuna-bus"}}
    return {
        "Resources": resources,
        "Outputs": {"ApiUrl": {"Value": {"Fn::GetAtt": ["Api", "ApiEndpoint"]}}},
    }
