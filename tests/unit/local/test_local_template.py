"""Intrinsic functions and physical names of a CloudFormation template (no AWS)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kizuna_tools.local.template import Template, TemplateError

TEMPLATE: dict[str, Any] = {
    "Parameters": {"Stage": {"Type": "String", "Default": "dev"}},
    "Conditions": {"IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]}},
    "Mappings": {"Sizes": {"dev": {"Memory": 256}}},
    "Resources": {
        "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
        "Named": {
            "Type": "AWS::SQS::Queue",
            "Properties": {"QueueName": {"Fn::Sub": "${AWS::StackName}-named-${Stage}"}},
        },
        "Fifo": {"Type": "AWS::SQS::Queue", "Properties": {"FifoQueue": True}},
        "Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "kizuna"}},
        "Rule": {"Type": "AWS::Events::Rule", "Properties": {"EventBusName": {"Ref": "Bus"}}},
        "Machine": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {}},
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {}},
        "ProdOnly": {"Type": "AWS::SNS::Topic", "Condition": "IsProd", "Properties": {}},
        "Fn": {
            "Type": "AWS::Lambda::Function",
            "DependsOn": "Table",
            "Properties": {"Environment": {"Variables": {"Q": {"Ref": "Named"}}}},
        },
    },
}


@pytest.fixture
def t() -> Template:
    return Template(TEMPLATE, stack_name="kizuna")


def test_refs_and_attributes_follow_each_types_conventions(t: Template) -> None:
    assert t.resolve({"Ref": "Table"}) == "kizuna-Table"
    assert t.resolve({"Fn::GetAtt": ["Table", "Arn"]}) == (
        "arn:aws:dynamodb:us-east-1:123456789012:table/kizuna-Table"
    )
    assert t.resolve({"Ref": "Named"}) == (
        "https://sqs.us-east-1.amazonaws.com/123456789012/kizuna-named-dev"
    )
    assert t.resolve({"Fn::GetAtt": "Named.Arn"}) == (
        "arn:aws:sqs:us-east-1:123456789012:kizuna-named-dev"
    )
    assert t.name_of("Fifo").endswith(".fifo")
    assert t.resolve({"Fn::GetAtt": ["Rule", "Arn"]}) == (
        "arn:aws:events:us-east-1:123456789012:rule/kizuna/kizuna-Rule"
    )
    assert t.resolve({"Ref": "Machine"}) == (
        "arn:aws:states:us-east-1:123456789012:stateMachine:kizuna-Machine"
    )
    assert t.resolve({"Ref": "Topic"}) == "arn:aws:sns:us-east-1:123456789012:kizuna-Topic"


def test_join_sub_select_split_and_pseudo_parameters(t: Template) -> None:
    definition = {"Fn::Join": ["", ['{"Resource":"', {"Fn::GetAtt": ["Fn", "Arn"]}, '"}']]}
    assert json.loads(t.resolve(definition)) == {
        "Resource": "arn:aws:lambda:us-east-1:123456789012:function:kizuna-Fn"
    }
    assert t.resolve({"Fn::Sub": "arn:${AWS::Partition}:s3:::${Table}/${!Literal}"}) == (
        "arn:aws:s3:::kizuna-Table/${Literal}"
    )
    assert t.resolve({"Fn::Sub": ["${A}-${Table.Arn}", {"A": {"Ref": "AWS::AccountId"}}]}) == (
        "123456789012-arn:aws:dynamodb:us-east-1:123456789012:table/kizuna-Table"
    )
    assert t.resolve({"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]}) == "b"
    assert t.resolve({"Ref": "AWS::URLSuffix"}) == "amazonaws.com"
    assert t.resolve({"Fn::FindInMap": ["Sizes", {"Ref": "Stage"}, "Memory"]}) == 256


def test_conditions_if_and_no_value(t: Template) -> None:
    assert t.is_active("Table")
    assert not t.is_active("ProdOnly")
    resolved = t.resolve(
        {
            "A": {"Fn::If": ["IsProd", 1, {"Ref": "AWS::NoValue"}]},
            "B": [{"Fn::If": ["IsProd", "x", {"Ref": "AWS::NoValue"}]}, "y"],
        }
    )
    assert resolved == {"B": ["y"]}


def test_parameters_can_be_overridden() -> None:
    t = Template(TEMPLATE, parameters={"Stage": "prod"})
    assert t.is_active("ProdOnly")
    assert t.name_of("Named") == "kizuna-named-prod"


def test_creation_order_puts_dependencies_first(t: Template) -> None:
    order = t.creation_order()
    assert order.index("Table") < order.index("Fn")
    assert order.index("Named") < order.index("Fn")
    assert order.index("Bus") < order.index("Rule")


def test_unknown_references_are_errors(t: Template) -> None:
    with pytest.raises(TemplateError, match="Nope"):
        t.resolve({"Ref": "Nope"})
    with pytest.raises(TemplateError, match="ImportValue"):
        t.resolve({"Fn::ImportValue": "x"})
    with pytest.raises(TemplateError, match="not known locally"):
        t.resolve({"Fn::GetAtt": ["Topic", "Frobs"]})
