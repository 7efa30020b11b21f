"""The audit log of writes made through the API and the console (activity table).

One item per write: pk ``AUDIT#<yyyy-mm-dd>`` (``#`` is in no customer id), sk
``<instant>#<uuid>``; who (the principal: Cognito ``sub`` or IAM ARN, and the name), what
(an action such as ``campaign.schedule`` and its target) and when. No personal data: the
target is an id (customer ids are pseudonymous keys), never a name or an address. A row
whose target is a customer (``customer:<id>``: a transactional send) is also in the
activity table's ``gsi1`` under ``AUDITOF#<id>``, so a customer's access export finds it
without reading every day.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from boto3.dynamodb.conditions import Key

from kizuna.adapters.dynamodb import LEDGER_INDEX
from kizuna.adapters.retry import retrying

AUDIT_PREFIX = "AUDIT#"
CUSTOMER_TARGET = "customer:"
AUDIT_OF_PREFIX = "AUDITOF#"  # gsi1pk of a row whose target is a customer


class Actor(Protocol):
    """Who wrote (:class:`kizuna.api.auth.Principal`, frozen: read-only members)."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...


class AuditLog:
    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._table = dynamodb.Table(table_name)

    def record(
        self,
        actor: Actor,
        action: str,
        target: str,
        at: datetime,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        item: dict[str, Any] = {
            "pk": f"{AUDIT_PREFIX}{at.date().isoformat()}",
            "sk": f"{at.isoformat()}#{uuid.uuid4().hex}",
            "kind": "AUDIT",
            "actor_id": actor.id,
            "actor_name": actor.name,
            "actor_kind": actor.kind,
            "action": action,
            "target": target,
            "at": at.isoformat(),
        }
        if detail:
            item["detail"] = dict(detail)
        if target.startswith(CUSTOMER_TARGET):
            item["gsi1pk"] = AUDIT_OF_PREFIX + target.removeprefix(CUSTOMER_TARGET)
            item["gsi1sk"] = item["sk"]
        # a new key each time: a retried put after a lost answer may leave two rows of the
        # same write, never none (the audit errs on the side of saying more)
        retrying(self._table.put_item, Item=item)

    def day(self, day: str) -> list[dict[str, Any]]:
        return self._query({"KeyConditionExpression": Key("pk").eq(AUDIT_PREFIX + day)})

    def of_customer(self, customer_id: str) -> list[dict[str, Any]]:
        """The rows whose target is ``customer_id`` (written since rows were indexed)."""
        return self._query(
            {
                "IndexName": LEDGER_INDEX,
                "KeyConditionExpression": Key("gsi1pk").eq(AUDIT_OF_PREFIX + customer_id),
            }
        )

    def _query(self, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = retrying(self._table.query, **kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
