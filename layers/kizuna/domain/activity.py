"""Items of the activity table: a customer's time-ordered history.

Key layout (table ``activity``): ``pk = customer_id``, ``sk = KIND#<iso time>#<id>``.
Kinds: ORDER, CANCEL, POINTS (earn, reversal, adjustment), CONSENT, EVENT (behaviour,
with a TTL), and MSG (the message ledger, written by delivery).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from kizuna.domain.timestamps import iso


class ActivityItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    customer_id: str
    kind: str
    at: datetime
    key: str
    data: dict[str, Any]
    expires_at: int | None = None

    @property
    def sk(self) -> str:
        return f"{self.kind}#{iso(self.at)}#{self.key}"
