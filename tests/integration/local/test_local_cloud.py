"""LocalCloud end to end on a hand-written template (tests/integration/local/fixtures.py)."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from kizuna_tools.local import DEFAULT_START, LocalCloud, LocalCloudError
from kizuna_tools.local.testing import CloudFactory
from tests.integration.local.fixtures import (
    bus_rule,
    order,
    probe_template,
    state_machine,
    with_resources,
)

pytestmark = pytest.mark.integration


def customer(cloud: LocalCloud, customer_id: str) -> dict[str, Any] | None:
    return next((i for i in cloud.scan("Customers") if i["customer_id"] == customer_id), None)


def ids(cloud: LocalCloud, prefix: str = "") -> list[str]:
    return sorted(
        i["customer_id"]
        for i in cloud.scan("Customers")
        if str(i["customer_id"]).startswith(prefix)
    )


# --- provisioning -----------------------------------------------------------------------
def test_provisions_tables_queues_functions_and_machines(cloud: LocalCloud) -> None:
    # Given the probe template provisioned
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    table = ddb.describe_table(TableName=cloud.physical_name("Customers"))["Table"]
    ttl = ddb.describe_time_to_live(TableName=cloud.physical_name("Customers"))

    # Then the table has its key, GSI and TTL
    assert table["KeySchema"] == [{"AttributeName": "customer_id", "KeyType": "HASH"}]
    assert [g["IndexName"] for g in table["GlobalSecondaryIndexes"]] == ["by-segment"]
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"

    # And the queue's redrive policy points at the DLQ's ARN
    attributes = boto3.client("sqs", region_name="us-east-1").get_queue_attributes(
        QueueUrl=cloud.resources["Queue"].url, AttributeNames=["All"]
    )["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive == {
        "deadLetterTargetArn": cloud.resources["DeadLetterQueue"].arn,
        "maxReceiveCount": 2,
    }

    # And functions carry their environment with Ref/Sub resolved to physical names
    probe = cloud.functions[cloud.physical_name("Probe")]
    assert probe.environment == {
        "TABLE": "kizuna-Customers",
        "BUS": "kizuna-test",
        "ECHO_URL": cloud.resources["EchoUrl"].url,
    }
    assert cloud.functions[cloud.physical_name("Echo")].environment == {
        "GREETING": "hello from us-east-1"
    }
    config = boto3.client("lambda", region_name="us-east-1").get_function_configuration(
        FunctionName=probe.name
    )
    assert config["Environment"]["Variables"]["TABLE"] == "kizuna-Customers"

    # And the mapping, the state machine and the schedule exist
    assert [
        (p.function.logical_id, p.batch_size, p.report_failures, p.redrive) for p in cloud.pumps
    ] == [("Probe", 5, True, True)]
    assert cloud.resources["Journey"].arn == (
        "arn:aws:states:us-east-1:123456789012:stateMachine:kizuna-Journey"
    )
    assert cloud.resources["MorningSchedule"].arn
    assert cloud.unsupported == []
    assert {i.logical_id for i in cloud.ignored} == {
        "QueuePolicy",
        "Role",
        "ProbeLogGroup",
        "CDKMetadata",
    }


def test_reports_what_it_cannot_run(local_cloud_factory: CloudFactory, project_root: Path) -> None:
    # Given a template with things the runtime does not emulate
    template = with_resources(
        probe_template(),
        {
            "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "x"}},
            "Custom": {"Type": "Custom::Thing", "Properties": {"ServiceToken": "arn"}},
            "Slow": {"Type": "AWS::SQS::Queue", "Properties": {"DelaySeconds": 30}},
            "NoMetadata": {
                "Type": "AWS::Lambda::Function",
                "Properties": {"Code": {}, "Role": "r", "Handler": "h"},
            },
            "Odd": {"Type": "AWS::SNS::Topic", "Properties": {"Frobnicate": True}},
            "StreamMapping": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "EventSourceArn": {"Fn::GetAtt": ["Customers", "StreamArn"]},
                    "FunctionName": {"Ref": "Probe"},
                },
            },
        },
    )

    # When it is provisioned
    cloud = local_cloud_factory(template, project_root=project_root)

    # Then each is reported by name, with a reason
    reported = {(u.logical_id, u.what) for u in cloud.unsupported}
    assert reported == {
        ("Api", "AWS::ApiGateway::RestApi"),
        ("Custom", "Custom::Thing"),
        ("Slow", "AWS::SQS::Queue.DelaySeconds"),
        ("NoMetadata", "AWS::Lambda::Function"),
        ("Odd", "AWS::SNS::Topic.Frobnicate"),
        ("StreamMapping", "AWS::Lambda::EventSourceMapping"),
    }
    assert all(u.reason for u in cloud.unsupported)


# --- SQS event source -----------------------------------------------------------------------
def test_event_reaches_handler_through_rule_queue_and_mapping(cloud: LocalCloud) -> None:
    # When a producer puts an order on the bus and the cloud drains
    cloud.put_events([order("c1")])
    cloud.drain()

    # Then the handler ran once, with its environment, at virtual time, as an SQS batch
    item = customer(cloud, "c1")
    assert item is not None
    assert item["function"] == "kizuna-Probe"
    assert item["env_bus"] == "kizuna-test"
    assert item["seen_at"] == DEFAULT_START.isoformat()
    assert item["receive_count"] == 1
    assert cloud.invocations["Probe"] == 1
    assert cloud.dlq_messages() == {"DeadLetterQueue": []}


def test_rule_does_not_match_other_sources(cloud: LocalCloud) -> None:
    cloud.put_events(
        [{"Source": "kizuna", "DetailType": "order.placed", "Detail": {"customer_id": "own"}}]
    )
    cloud.drain()
    assert customer(cloud, "own") is None
    assert cloud.invocations["Probe"] == 0


def test_partial_batch_failure_retries_only_the_failed_record_until_the_dlq(
    cloud: LocalCloud,
) -> None:
    # Given one good and one failing record in the same batch
    cloud.put_events([order("good"), order("bad", fail=True)])

    # When drained
    cloud.drain()

    # Then the good record was processed once and the bad one tried maxReceiveCount (2) times
    assert customer(cloud, "good")["receive_count"] == 1  # type: ignore[index]
    assert cloud.invocations["Probe"] == 2
    dlq = cloud.dlq_messages()["DeadLetterQueue"]
    assert [m["json"]["detail"] for m in dlq] == [{"customer_id": "bad", "fail": True}]
    assert dlq[0]["receive_count"] == 2


def test_handler_exception_retries_the_whole_batch(cloud: LocalCloud) -> None:
    cloud.put_events([order("a"), order("boom", crash=True)])
    cloud.drain()

    # The exception failed the batch both times: the good record was retried with it
    # (its side effect happened twice) and both reach the DLQ
    assert customer(cloud, "a")["receive_count"] == 2  # type: ignore[index]
    assert sorted(
        m["json"]["detail"]["customer_id"] for m in cloud.dlq_messages()["DeadLetterQueue"]
    ) == ["a", "boom"]
    assert [e.error["errorType"] for e in cloud.errors] == ["RuntimeError", "RuntimeError"]


def test_batches_are_at_most_batch_size(cloud: LocalCloud) -> None:
    cloud.put_events([order(f"c{i:02d}") for i in range(12)])
    cloud.drain()
    assert len(ids(cloud, "c")) == 12
    assert cloud.invocations["Probe"] == 3  # 5 + 5 + 2


# --- Step Functions and the clock ---------------------------------------------------------------
def test_journey_waits_seven_virtual_days_in_no_real_time(cloud: LocalCloud) -> None:
    # Given a first purchase, which the handler turns into a derived event starting a journey
    cloud.put_events([order("c1", first=True)])
    cloud.drain()
    assert cloud.execution_counts() == {("kizuna-Journey", "RUNNING"): 1}

    # When six days pass nothing is sent; on the seventh the Lambda task sends
    started = time.perf_counter()
    cloud.advance(days=6)
    assert customer(cloud, "sent#c1") is None
    cloud.advance(days=1)
    elapsed = time.perf_counter() - started

    sent = customer(cloud, "sent#c1")
    assert sent is not None
    assert sent["sent_at"] == (DEFAULT_START + timedelta(days=7)).isoformat()
    assert sent["function"] == "kizuna-Sender"
    assert cloud.execution_counts() == {("kizuna-Journey", "SUCCEEDED"): 1}
    assert elapsed < 5


def test_waiters_wake_in_due_then_execution_order(cloud: LocalCloud) -> None:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    for name in ("b", "c", "a"):
        sfn.start_execution(
            stateMachineArn=cloud.resources["Journey"].arn,
            name=name,
            input=json.dumps({"detail": {"customer_id": name}}),
        )
    cloud.wait_for_executions()

    pending = [t.key[0].rsplit(":", 1)[-1] for t in cloud.timeline.pending()]
    assert pending == ["a", "b", "c"]
    cloud.advance(days=7)
    assert ids(cloud, "sent#") == ["sent#a", "sent#b", "sent#c"]


def test_schedule_rule_and_scheduler_schedule_fire_on_virtual_time(cloud: LocalCloud) -> None:
    cloud.advance(days=2)

    nightly = [i for i in cloud.scan("Customers") if str(i["customer_id"]).startswith("n")]
    fired = sorted((i["customer_id"].split("#")[1], i["source"]) for i in nightly)
    assert fired == [
        ("2026-01-01T03:00:00+00:00", "aws.events"),  # cron(0 3 * * ? *) UTC
        ("2026-01-02T00:00:00+00:00", "scheduler"),  # cron(0 9 * * ? *) Asia/Tokyo
        ("2026-01-02T03:00:00+00:00", "aws.events"),
        ("2026-01-03T00:00:00+00:00", "scheduler"),  # the end of advance() is inclusive
    ]
    scheduled = next(i for i in nightly if i["source"] == "scheduler")
    assert scheduled["event_time"] == "2026-01-02T00:00:00Z"


def test_ttl_expires_items_as_virtual_time_passes(cloud: LocalCloud) -> None:
    cloud.put_events([order("short", ttl_days=1), order("long", ttl_days=30)])
    cloud.drain()
    cloud.advance(days=2)
    assert customer(cloud, "short") is None
    assert customer(cloud, "long") is not None


def test_wait_for_executions_returns_while_executions_are_parked(cloud: LocalCloud) -> None:
    cloud.put_events([order(f"p{i}", first=True) for i in range(5)])
    started = time.perf_counter()
    cloud.drain()
    cloud.wait_for_executions(timeout=5)
    assert time.perf_counter() - started < 5
    assert cloud.execution_counts() == {("kizuna-Journey", "RUNNING"): 5}
    assert len(cloud.timeline.pending()) == 5


# --- Lambda -----------------------------------------------------------------------------------
def test_direct_invoke_runs_the_handler_with_its_environment(cloud: LocalCloud) -> None:
    response = boto3.client("lambda", region_name="us-east-1").invoke(
        FunctionName=cloud.physical_name("Echo"), Payload=json.dumps({"x": 1})
    )
    payload = json.loads(response["Payload"].read())
    assert "FunctionError" not in response
    assert payload["echo"] == {"x": 1}
    assert payload["greeting"] == "hello from us-east-1"
    assert payload["function"] == "kizuna-Echo"
    assert payload["memory"] == 256
    assert payload["has_time"] is True
    assert payload["now"] == DEFAULT_START.isoformat()


def test_direct_invoke_reports_handler_errors(cloud: LocalCloud) -> None:
    response = boto3.client("lambda", region_name="us-east-1").invoke(
        FunctionName=cloud.physical_name("Flaky"), Payload=json.dumps({"key": "k"})
    )
    assert response["FunctionError"]
    assert json.loads(response["Payload"].read())["errorType"] == "ConnectionError"


def test_lambda_target_failures_retry_then_reach_the_functions_dlq(
    local_cloud_factory: CloudFactory,
    project_root: Path,
) -> None:
    # Given a rule whose Lambda target always fails, with a DLQ on the function
    template = with_resources(
        probe_template(),
        {
            "FlakyDlq": {"Type": "AWS::SQS::Queue", "Properties": {}},
            "FlakyRule": bus_rule(
                {"detail-type": ["flaky"]},
                {
                    "Arn": {"Fn::GetAtt": ["Flaky", "Arn"]},
                    "Id": "Flaky",
                    "Input": json.dumps({"key": "k", "succeed_on": 99}),
                },
            ),
        },
    )
    template["Resources"]["Flaky"]["Properties"]["DeadLetterConfig"] = {
        "TargetArn": {"Fn::GetAtt": ["FlakyDlq", "Arn"]}
    }
    cloud = local_cloud_factory(template, project_root=project_root)

    # When an event matches
    cloud.put_events([{"Source": "x", "DetailType": "flaky", "Detail": {}}])
    cloud.drain()

    # Then Lambda's async retries ran (1 + 2) and the event went to the DLQ with the error
    assert cloud.invocations["Flaky"] == 3
    dead = cloud.dlq_messages()["FlakyDlq"]
    assert [m["json"] for m in dead] == [{"key": "k", "succeed_on": 99}]
    assert dead[0]["message_attributes"]["ErrorMessage"]["StringValue"] == "flaky dependency"


def test_input_transformer_and_disabled_rules(
    local_cloud_factory: CloudFactory, project_root: Path
) -> None:
    machine = state_machine(
        {
            "StartAt": "Echo",
            "States": {
                "Echo": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": "${Echo}", "Payload.$": "$"},
                    "End": True,
                }
            },
        }
    )
    template = with_resources(
        probe_template(),
        {
            "EchoMachine": machine,
            "Transforming": bus_rule(
                {"detail-type": ["t"]},
                {
                    "Arn": {"Ref": "EchoMachine"},
                    "Id": "M",
                    "InputTransformer": {
                        "InputPathsMap": {"c": "$.detail.customer_id", "t": "$.time"},
                        "InputTemplate": '{"customer": <c>, "at": <t>, "fixed": 1}',
                    },
                },
            ),
            "Disabled": bus_rule(
                {"detail-type": ["t"]},
                {"Arn": {"Fn::GetAtt": ["Flaky", "Arn"]}, "Id": "F"},
                State="DISABLED",
            ),
        },
    )
    cloud = local_cloud_factory(template, project_root=project_root)

    cloud.put_events([{"Source": "x", "DetailType": "t", "Detail": {"customer_id": "c9"}}])
    cloud.drain()

    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    [execution] = sfn.list_executions(stateMachineArn=cloud.resources["EchoMachine"].arn)[
        "executions"
    ]
    described = sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == {
        "customer": "c9",
        "at": "2026-01-01T00:00:00Z",
        "fixed": 1,
    }
    assert described["status"] == "SUCCEEDED"
    assert cloud.invocations["Flaky"] == 0


# --- outputs --------------------------------------------------------------------------------
def test_api_calls_are_counted_apart_from_the_runtimes_own(cloud: LocalCloud) -> None:
    cloud.put_events([order("c1", first=True)])
    cloud.drain()
    cloud.advance(days=7)

    assert cloud.api_calls[("events", "PutEvents")] == 2  # the producer and the handler
    assert cloud.api_calls[("dynamodb", "PutItem")] >= 2
    assert cloud.api_calls[("lambda", "Invoke")] == 1  # the journey's task
    assert ("sqs", "ReceiveMessage") not in cloud.api_calls
    assert cloud.runtime_api_calls[("sqs", "ReceiveMessage")] >= 1
    assert cloud.runtime_api_calls[("stepfunctions", "StartExecution")] == 1


def test_outboxes_record_every_channel(cloud: LocalCloud) -> None:
    # email through SESv2 (headers kept from the request) and SES v1
    boto3.client("ses", region_name="us-east-1").verify_domain_identity(Domain="shop.example")
    sesv2 = boto3.client("sesv2", region_name="us-east-1")
    sesv2.send_email(
        FromEmailAddress="news@shop.example",
        Destination={"ToAddresses": ["a@example.com"]},
        Content={
            "Simple": {
                "Subject": {"Data": "Hi"},
                "Body": {"Html": {"Data": "<p>Hi</p>"}},
                "Headers": [{"Name": "List-Unsubscribe", "Value": "<https://u.example/x>"}],
            }
        },
    )
    # sms through SNS
    boto3.client("sns", region_name="us-east-1").publish(PhoneNumber="+819012345678", Message="Hi")
    # push through the pinpoint fake
    pinpoint = boto3.client("pinpoint", region_name="us-east-1")
    app_id = pinpoint.create_app(CreateApplicationRequest={"Name": "app"})["ApplicationResponse"][
        "Id"
    ]
    pinpoint.send_messages(
        ApplicationId=app_id,
        MessageRequest={
            "Addresses": {"device-token-1": {"ChannelType": "GCM"}},
            "MessageConfiguration": {"GCMMessage": {"Title": "Hi", "Body": "Hello"}},
        },
    )
    # LINE through the HTTP recorder
    requests.post(
        "https://api.line.me/v2/bot/message/push",
        timeout=5,
        headers={"Authorization": "Bearer secret"},
        json={"to": "U" + "0" * 32, "messages": [{"type": "text", "text": "Hi"}]},
    )

    [email] = cloud.outbox("email")
    assert email["destinations"] == {"ToAddresses": ["a@example.com"]}
    assert email["request"]["Content"]["Simple"]["Headers"][0]["Name"] == "List-Unsubscribe"
    assert [(m["phone_number"], m["message"]) for m in cloud.outbox("sms")] == [
        ("+819012345678", "Hi")
    ]
    assert [(m["address"], m["message"]["GCMMessage"]["Title"]) for m in cloud.outbox("push")] == [
        ("device-token-1", "Hi")
    ]
    [line] = cloud.outbox("line")
    assert line["messages"] == [{"type": "text", "text": "Hi"}]
    assert line["headers"]["Authorization"] == "Bearer ***"
    with pytest.raises(ValueError, match="unknown channel"):
        cloud.outbox("fax")


def test_line_recorder_rejects_malformed_pushes(cloud: LocalCloud) -> None:
    request = urllib.request.Request(
        "https://api.line.me/v2/bot/message/push",
        method="POST",
        data=json.dumps({"to": "U1", "messages": []}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request)  # intercepted: never leaves the process
    assert raised.value.code == 400
    assert cloud.outbox("line") == []


def test_line_recorder_accepts_a_retry_key_once(cloud: LocalCloud) -> None:
    # Given a push sent with LINE's X-Line-Retry-Key
    def push() -> requests.Response:
        return requests.post(
            "https://api.line.me/v2/bot/message/push",
            timeout=5,
            headers={"X-Line-Retry-Key": "123e4567-e89b-12d3-a456-426614174000"},
            json={"to": "U" + "0" * 32, "messages": [{"type": "text", "text": "Hi"}]},
        )

    first = push()
    # When the same request is retried (a timeout, a re-invoked function)
    again = push()
    # Then LINE answers 409 with the request it accepted, and sends nothing more
    assert first.status_code == 200 and again.status_code == 409
    assert again.headers["x-line-accepted-request-id"] == first.headers["x-line-request-id"]
    assert again.json()["sentMessages"] == first.json()["sentMessages"]
    assert len(cloud.outbox("line")) == 1


# --- lifecycle ----------------------------------------------------------------------------
def test_one_cloud_at_a_time_and_each_starts_clean(
    template: dict[str, Any], project_root: Path
) -> None:
    with LocalCloud.from_template(template, project_root=project_root) as first:
        first.put_events([order("c1")])
        first.drain()
        with pytest.raises(LocalCloudError, match="another LocalCloud"):
            LocalCloud.from_template(template, project_root=project_root).start()
    with LocalCloud.from_template(template, project_root=project_root) as second:
        assert second.scan("Customers") == []


def test_serve_accepts_put_events_over_http(cloud: LocalCloud) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with cloud.serve(port) as server:
        events = boto3.client(
            "events",
            region_name="us-east-1",
            endpoint_url=server.endpoint_url,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        events.put_events(
            Entries=[
                {
                    "Source": "shop",
                    "DetailType": "order.placed",
                    "Detail": json.dumps({"customer_id": "http"}),
                    "EventBusName": "kizuna-test",
                }
            ]
        )
        deadline = time.monotonic() + 10
        while customer(cloud, "http") is None and time.monotonic() < deadline:
            time.sleep(0.05)

    assert customer(cloud, "http") is not None


def test_function_url_invokes_the_function(cloud: LocalCloud) -> None:
    # Given the Echo function's URL (as another function's environment sees it)
    url = cloud.functions[cloud.physical_name("Probe")].environment["ECHO_URL"]
    assert url.startswith("https://") and ".lambda-url.us-east-1.on.aws/" in url

    # When it is called over HTTP (requests and urllib alike)
    response = requests.post(
        url + "unsubscribe?token=abc",
        data="one-click",
        timeout=5,
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(url + "ping") as raw:  # intercepted: stays in-process
        pinged = json.loads(raw.read())

    # Then the function ran with a function URL (payload 2.0) event
    assert response.status_code == 200
    event = response.json()["echo"]
    assert event["version"] == "2.0"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["rawPath"] == "/unsubscribe"
    assert event["queryStringParameters"] == {"token": "abc"}
    assert event["body"] == "one-click"
    assert pinged["echo"]["rawPath"] == "/ping"
    assert cloud.invocations["Echo"] == 2
