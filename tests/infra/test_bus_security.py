"""The bus: only Kizuna's functions put Kizuna's events (the bus policy), and the archive
keeps no direct identifiers, for no longer than the erasure marker lives (issue 20)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk.assertions import Template

from kizuna.domain.privacy import (
    DIRECT_IDENTIFIER_EVENTS,
    DIRECT_IDENTIFIER_FIELDS,
    ERASED_MARKER_DAYS,
)
from kizuna.events import DERIVED_MODELS, INBOUND_MODELS
from kizuna.events.derived import CAMPAIGN_EVENT_MODELS
from kizuna_infra import names
from kizuna_infra.stack import KizunaStack
from kizuna_tools.local.bus_policy import PRODUCER_ARN, bus_denials, refused
from kizuna_tools.local.template import Template as LocalTemplate

pytestmark = pytest.mark.infra

MODELS: dict[str, Any] = {**INBOUND_MODELS, **DERIVED_MODELS, **CAMPAIGN_EVENT_MODELS}


def bus_statement(template: Template, sid: str = names.BUS_POLICY_SID) -> dict[str, Any]:
    [statement] = [
        p["Properties"]["Statement"]
        for p in template.find_resources("AWS::Events::EventBusPolicy").values()
        if p["Properties"]["Statement"]["Sid"].endswith(sid)
    ]
    return dict(statement)


def test_the_bus_denies_kizuna_events_to_all_but_the_functions_that_derive_them(
    template: Template, stack: KizunaStack, logical_id: Callable[[Any], str]
) -> None:
    k = stack.kizuna
    policies = template.find_resources("AWS::Events::EventBusPolicy").values()
    assert [p["Properties"]["EventBusName"] for p in policies] == [
        {"Ref": logical_id(k.bus.bus)}
    ] * 2
    statement = bus_statement(template)
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == {"AWS": "*"}
    assert statement["Action"] == "events:PutEvents"
    assert statement["Resource"] == {"Fn::GetAtt": [logical_id(k.bus.bus), "Arn"]}
    assert statement["Condition"]["StringEquals"] == {"events:source": "kizuna"}
    allowed = {
        ref["Fn::GetAtt"][0] for ref in statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
    }
    derivers = (
        k.ingest,
        k.programs.evaluate,
        k.programs.sweep,
        k.scoring.score,
        k.campaigns.campaign,
    )
    assert allowed == {logical_id(f.role) for f in derivers}
    # the functions that only report inbound facts (the public unsubscribe URL's among them)
    for other in (k.delivery.unsubscribe, k.delivery.send, k.delivery.feedback):
        assert logical_id(other.role) not in allowed


def test_the_local_runtime_reads_the_synthesized_policy_as_aws_applies_it(
    template: Template,
) -> None:
    local = LocalTemplate(template.to_json(), stack_name="kizuna")
    denials = bus_denials(local)
    assert set(denials) == {names.DEFAULT_BUS_NAME}
    score_role = next(
        str(local.resolve(local.properties(i)["Role"]))
        for i in local.resources
        if local.type_of(i) == "AWS::Lambda::Function" and "ScoringScore" in i
    )
    forged = {"Source": "kizuna", "DetailType": "customer.segment_changed"}
    assert refused(denials, "kizuna", forged, PRODUCER_ARN)
    assert refused(denials, "kizuna", forged, score_role) is None
    unsubscribe_role = next(
        str(local.resolve(local.properties(i)["Role"]))
        for i in local.resources
        if local.type_of(i) == "AWS::Lambda::Function" and "Unsubscribe" in i
    )
    page = {"Source": "kizuna.unsubscribe", "DetailType": "consent.changed"}
    assert refused(denials, "kizuna", page, PRODUCER_ARN)
    assert refused(denials, "kizuna", page, unsubscribe_role) is None
    assert refused(denials, "kizuna", page, score_role)  # a deriver reports no consent
    shop = {"Source": "com.example.shop", "DetailType": "order.placed"}
    assert refused(denials, "kizuna", shop, PRODUCER_ARN) is None


def test_kizunas_inbound_facts_are_denied_to_all_but_the_functions_that_report_them(
    template: Template, stack: KizunaStack, logical_id: Callable[[Any], str]
) -> None:
    # a producer putting source kizuna.unsubscribe could forge the hosted page's consent proof
    k = stack.kizuna
    statement = bus_statement(template, names.BUS_INBOUND_POLICY_SID)
    assert (statement["Effect"], statement["Action"]) == ("Deny", "events:PutEvents")
    assert statement["Condition"]["StringLike"] == {"events:source": "kizuna.*"}
    allowed = {
        ref["Fn::GetAtt"][0] for ref in statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
    }
    reporters = [k.delivery.send, k.delivery.feedback, k.delivery.unsubscribe, k.campaigns.campaign]
    reporters += [k.delivery.line_webhook] if k.delivery.line_webhook else []
    assert allowed == {logical_id(f.role) for f in reporters}
    assert logical_id(k.api.function.role) not in allowed


def test_the_archive_keeps_no_event_that_carries_a_direct_identifier(
    template: Template, stack: KizunaStack, logical_id: Callable[[Any], str]
) -> None:
    [archive] = template.find_resources("AWS::Events::Archive").values()
    props = archive["Properties"]
    assert props["SourceArn"] == {"Fn::GetAtt": [logical_id(stack.kizuna.bus.bus), "Arn"]}
    archived = props["EventPattern"]["detail-type"]
    assert set(archived).isdisjoint(DIRECT_IDENTIFIER_EVENTS)
    # an allow list: what it names carries no direct identifier, whatever the field's model
    for name in archived:
        assert not set(MODELS[name].model_fields) & DIRECT_IDENTIFIER_FIELDS, name
    # and every type that does carry one is named in DIRECT_IDENTIFIER_EVENTS
    for name, model in MODELS.items():
        if set(model.model_fields) & DIRECT_IDENTIFIER_FIELDS:
            assert name in DIRECT_IDENTIFIER_EVENTS, name
    # what is archived is enough to replay orders, points, consent, behaviour and erasures
    assert {"order.placed", "points.adjusted", "consent.changed", "customer.erase"} <= set(archived)


def test_the_archive_forgets_before_the_erasure_marker_does(template: Template) -> None:
    # An archived event of an erased customer is older than the erasure; it leaves the
    # archive before the marker that stops ingest from re-creating the customer expires,
    # so a replay never brings an erased customer back.
    [archive] = template.find_resources("AWS::Events::Archive").values()
    assert archive["Properties"]["RetentionDays"] == names.ARCHIVE_RETENTION_DAYS
    assert names.ARCHIVE_RETENTION_DAYS <= ERASED_MARKER_DAYS
