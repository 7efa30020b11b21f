"""The local runtime's enforcement of bus policies (kizuna_tools.local.bus_policy) on a
hand-written template: what it refuses, to whom, and that it is undone with the cloud."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kizuna_tools.local import LocalCloud, TemplateError
from kizuna_tools.local.bus_policy import PRODUCER_ARN, acting_as, role_of
from kizuna_tools.local.testing import CloudFactory
from tests.integration.local.fixtures import probe_template, with_resources

pytestmark = pytest.mark.integration

ALLOWED_ROLE = "arn:aws:iam::123456789012:role/kizuna-Deriver"


def policy(condition: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "AWS::Events::EventBusPolicy",
        "Properties": {
            "EventBusName": {"Ref": "Bus"},
            "StatementId": "OnlyDeriver",
            "Statement": {
                "Sid": "OnlyDeriver",
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": "events:PutEvents",
                "Resource": {"Fn::GetAtt": ["Bus", "Arn"]},
                "Condition": condition,
            },
        },
    }


DENY_KIZUNA = {
    "StringEquals": {"events:source": "kizuna"},
    "ArnNotEquals": {"aws:PrincipalArn": [{"Fn::GetAtt": ["Deriver", "Arn"]}]},
}
DERIVER = {"Type": "AWS::IAM::Role", "Properties": {"RoleName": "kizuna-Deriver"}}


def entry(source: str) -> dict[str, Any]:
    return {"Source": source, "DetailType": "customer.first_purchase", "Detail": {"x": 1}}


def test_a_denied_entry_fails_alone_and_allowed_callers_go_through(
    local_cloud_factory: CloudFactory, project_root: Path
) -> None:
    from moto.events.models import EventsBackend

    moto_put = EventsBackend.put_events
    template = with_resources(
        probe_template(), {"BusPolicy": policy(DENY_KIZUNA), "Deriver": DERIVER}
    )
    cloud: LocalCloud = local_cloud_factory(template, project_root=project_root)
    # a producer: the kizuna entry is refused in its place, the other goes through
    refused, fine = cloud.put_events([entry("kizuna"), entry("com.example.shop")])
    assert refused["ErrorCode"] == "AccessDeniedException"
    assert PRODUCER_ARN in refused["ErrorMessage"] and "OnlyDeriver" in refused["ErrorMessage"]
    assert "EventId" in fine
    # the allowed role (what a test standing in for a deriving function uses)
    with acting_as(ALLOWED_ROLE):
        [allowed] = cloud.put_events([entry("kizuna")])
    assert "EventId" in allowed
    # a function's handler puts as its own role: the probe's role is not the allowed one
    assert role_of(cloud.template, "probe") != ALLOWED_ROLE
    cloud.close()
    assert EventsBackend.put_events is moto_put


def test_a_policy_the_runtime_cannot_evaluate_fails_the_start(
    local_cloud_factory: CloudFactory, project_root: Path
) -> None:
    template = with_resources(
        probe_template(),
        {"BusPolicy": policy({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})},
    )
    with pytest.raises(TemplateError, match="IpAddress"):
        local_cloud_factory(template, project_root=project_root)
