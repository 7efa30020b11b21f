"""Read access to moto's in-memory backends, for what no AWS API offers.

Peeking at a dead-letter queue without receiving (which would count a receive), reading
sent emails and SMS, finding schedule rules and Scheduler schedules, expiring TTL items
(free on AWS, so not counted as API calls) and putting an event on a queue the way
EventBridge does. Everything that touches moto's models lives here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from kizuna_tools.local.template import ACCOUNT_ID, REGION


def backend(service: str) -> Any:
    """moto's in-memory backend of ``service`` in the local runtime's account and region."""
    from moto.backends import get_backend

    return get_backend(service)[ACCOUNT_ID][REGION]  # type: ignore[call-overload]


@dataclass(frozen=True)
class ScheduledRule:
    arn: str
    name: str
    bus: str
    expression: str
    rule: Any


def scheduled_rules() -> list[ScheduledRule]:
    """Enabled EventBridge rules with a ``ScheduleExpression``, on every bus."""
    found = []
    for bus in list(backend("events").event_buses.values()):
        for rule in list(bus.rules.values()):
            if rule.scheduled_expression and rule.state != "DISABLED":
                found.append(
                    ScheduledRule(rule.arn, rule.name, bus.name, rule.scheduled_expression, rule)
                )
    return sorted(found, key=lambda r: r.arn)


def schedules() -> list[Any]:
    """Every EventBridge Scheduler schedule (moto ``Schedule`` objects), by ARN."""
    found = []
    for group in list(backend("scheduler").schedule_groups.values()):
        found.extend(group.schedules.values())
    return sorted(found, key=lambda s: s.arn)


def delete_schedule(group: str, name: str) -> None:
    backend("scheduler").delete_schedule(group, name)


def send_to_queue(queue_name: str, body: str, group_id: str | None = None) -> None:
    """Put a message on a queue as EventBridge's SQS target does (no API call)."""
    backend("sqs").send_message(queue_name=queue_name, message_body=body, group_id=group_id)


def queue_messages(queue_name: str) -> list[dict[str, Any]]:
    """Every message on a queue, visible or not, without receiving it."""
    queue = backend("sqs").get_queue(queue_name)
    messages = []
    for message in list(queue._messages):
        attributes = {name: dict(spec) for name, spec in (message.message_attributes or {}).items()}
        messages.append(
            {
                "message_id": message.id,
                "body": message.body,
                "json": _maybe_json(message.body),
                "message_attributes": attributes,
                "receive_count": message.approximate_receive_count,
                "sent_timestamp": message.sent_timestamp,
            }
        )
    return messages


def _maybe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def expire_ttl(now_epoch: float) -> int:
    """Delete every item whose TTL attribute (epoch seconds) is before ``now_epoch``."""
    deleted = 0
    for table in list(backend("dynamodb").tables.values()):
        ttl = table.ttl
        if ttl.get("TimeToLiveStatus") != "ENABLED" or not ttl.get("AttributeName"):
            continue
        attribute = ttl["AttributeName"]
        items = [
            i
            for bucket in list(table.items.values())
            for i in (list(bucket.values()) if table.range_key_attr else [bucket])
        ]
        for item in items:
            value = item.attrs.get(attribute)
            if value is None or value.type != "N":
                continue
            try:
                expires = float(value.value)
            except (TypeError, ValueError):
                continue
            if expires < now_epoch:
                table.delete_item(item.hash_key, item.range_key)
                deleted += 1
    return deleted


def sent_emails() -> list[dict[str, Any]]:
    out = []
    for message in list(backend("ses").sent_messages):
        entry: dict[str, Any] = {"message_id": getattr(message, "id", None)}
        for attribute in (
            "source",
            "subject",
            "body",
            "destinations",
            "raw_data",
            "template",
            "template_data",
        ):
            if hasattr(message, attribute):
                entry[attribute] = getattr(message, attribute)
        out.append(entry)
    return out


def sent_sms() -> list[dict[str, Any]]:
    return [
        {"message_id": message_id, "phone_number": phone, "message": text}
        for message_id, (phone, text) in list(backend("sns").sms_messages.items())
    ]


def pinpoint_app_exists(application_id: str) -> bool:
    from moto.pinpoint.models import pinpoint_backends

    return application_id in pinpoint_backends[ACCOUNT_ID][REGION].apps


_ARCHIVE_IN_TEMPLATE = re.compile(r'"archive-arn": "[^"]*:archive/([^:"]+):')


def archive_event(target: dict[str, Any], event: dict[str, Any]) -> bool:
    """Store an event in the archive behind moto's archive rule target; False if not one.

    moto's archive rule carries the archive's ARN in its target's InputTransformer and
    evaluates it with a JSONPath parser built per event (milliseconds each).
    """
    template = str((target.get("InputTransformer") or {}).get("InputTemplate", ""))
    match = _ARCHIVE_IN_TEMPLATE.search(template)
    if match is None:
        return False
    archive = backend("events").archives.get(match.group(1))
    if archive is not None:
        archive.events.append(event)
    return True


def queue_has_visible(queue_name: str) -> bool:
    """Whether a receive could return anything (saves an empty ReceiveMessage round trip)."""
    queue = backend("sqs").get_queue(queue_name)
    return any(message.visible and not message.delayed for message in list(queue._messages))


def register_pinpoint_app(application_id: str, name: str) -> None:
    """A push app under a fixed id (moto makes up ids; a template names one in advance)."""
    from moto.pinpoint.models import pinpoint_backends

    backend = pinpoint_backends[ACCOUNT_ID][REGION]
    app = backend.create_app(name=name, tags={})
    backend.apps.pop(app.application_id, None)
    app.application_id = application_id
    backend.apps[application_id] = app
