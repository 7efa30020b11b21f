"""No personal data in clear in the logs or in the events Kizuna puts on the bus: a small
synthetic shop runs on the local runtime, and every captured log line (the handlers'
structured logs on stdout, and the root logger's records) and every derived event is
searched for the seeded emails, phones, names, device tokens and LINE ids. (Functions are
asked for DEBUG; Kizuna logs nothing below INFO today.)"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest

from kizuna.runtime.observability import logger as kizuna_logger
from kizuna_tools.demo import DEMO_CONTEXT, prepare_channels
from kizuna_tools.local.app import default_project_root, kizuna_template
from kizuna_tools.local.cloud import LocalCloud
from kizuna_tools.simulation import Shop

pytestmark = pytest.mark.integration

PERSONAL_KEYS = ("email", "phone", "first_name", "last_name", "token", "line_user_id")


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def seeded_personal_data(entries: list[dict[str, Any]]) -> set[str]:
    values = set()
    for entry in entries:
        detail = json.loads(entry["Detail"])
        values |= {str(detail[k]) for k in PERSONAL_KEYS if detail.get(k)}
    # short names ("Aoi") could occur inside unrelated words; full addresses never do
    return {v for v in values if len(v) >= 5}


def test_demo_logs_and_derived_events_hold_no_personal_data(
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    # the handlers' own loggers at DEBUG (Powertools writes JSON to stdout); the root at INFO
    # (botocore's DEBUG would echo the test's own requests, which carry the seeded data)
    caplog.set_level(logging.INFO)
    # and a handler on Kizuna's own Logger with its JSON formatter: its stdout handler may be
    # bound to a stream an earlier test captured
    structured = Collect()
    structured.setFormatter(kizuna_logger.registered_formatter)
    underlying = logging.getLogger(kizuna_logger.name)
    underlying.addHandler(structured)
    request.addfinalizer(lambda: underlying.removeHandler(structured))
    shop = Shop(customers=25, days=4, seed=7)
    personal: set[str] = set()
    with LocalCloud.from_template(
        kizuna_template(DEMO_CONTEXT),
        project_root=default_project_root(),
        start=shop.start,
        environment_overrides={"POWERTOOLS_LOG_LEVEL": "DEBUG"},
        ttl_sweep_interval=timedelta(days=1),
    ) as cloud:
        prepare_channels(cloud)
        # a tap on the bus: every event Kizuna itself emits
        sqs, events = cloud.client("sqs"), cloud.client("events")
        tap = sqs.create_queue(QueueName="derived-tap")["QueueUrl"]
        tap_arn = sqs.get_queue_attributes(QueueUrl=tap, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        bus = next(b for b in cloud.bus_names() if b != "default")
        events.put_rule(Name="tap", EventBusName=bus, EventPattern='{"source": ["kizuna"]}')
        events.put_targets(Rule="tap", EventBusName=bus, Targets=[{"Id": "q", "Arn": tap_arn}])

        for day, entries in shop.days_of_events():
            personal |= seeded_personal_data(entries)
            by_hour: dict[int, list[dict[str, Any]]] = defaultdict(list)
            for entry in entries:
                by_hour[day * 24 + 12].append(entry)
            for hour, batch in sorted(by_hour.items()):
                cloud.advance_to(shop.start + timedelta(hours=hour), wake="batch")
                cloud.put_events(batch)
                cloud.drain()
            cloud.advance_to(shop.start + timedelta(days=day + 1), wake="batch")
        sent = sum(len(cloud.outbox(c)) for c in ("email", "sms", "push", "line"))

        derived = []
        while batch := sqs.receive_message(QueueUrl=tap, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            derived += [m["Body"] for m in batch]
            sqs.delete_message_batch(
                QueueUrl=tap,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
                ],
            )

    captured = capfd.readouterr()
    lines = (captured.out + captured.err).splitlines() + [r.getMessage() for r in caplog.records]
    lines += [json.dumps(r.__dict__, default=str) for r in caplog.records]
    lines += structured.lines
    # the run did something worth scanning
    assert len(personal) > 50 and sent > 0 and len(derived) > 10 and len(lines) > 100
    # the handlers' own structured log lines were captured (the scan would see a leak)
    handler_lines = [x for x in lines if '"level"' in x and '"function_name":"kizuna-' in x]
    assert len(handler_lines) > 20
    leaks = [(v, line[:200]) for line in lines for v in personal if v in line]
    assert leaks == []
    leaks = [(v, body[:200]) for body in derived for v in personal if v in body]
    assert leaks == []
