"""``NaN``, ``Infinity`` and ``-Infinity`` are not JSON, yet Python's ``json`` and pydantic's
parser read them: wherever Kizuna reads JSON from outside (a bus event, an API body, an
imported JSON line) they are refused, even where the value would otherwise be ignored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kizuna.domain import strict_json
from kizuna.events.envelope import EventRejected, parse_inbound
from kizuna.runtime.config import KizunaConfig
from kizuna_tools.importer import import_file
from tests.factories import T0, envelope

CONSTANTS = ["NaN", "Infinity", "-Infinity"]


@pytest.mark.parametrize("constant", CONSTANTS)
def test_the_module_refuses_them_at_any_depth(constant: str) -> None:
    assert strict_json.loads('{"a": [1.5, -2]}') == {"a": [1.5, -2]}
    with pytest.raises(strict_json.NotJsonNumber, match=f"{constant} is not a JSON number"):
        strict_json.loads(f'{{"a": [{{"b": {constant}}}]}}')


@pytest.mark.parametrize("constant", CONSTANTS)
def test_an_event_carrying_one_is_rejected_even_where_ingest_ignores_the_value(
    constant: str,
) -> None:
    # given an event whose envelope carries NaN in a field Kizuna does not read
    detail = {"customer_id": "c1", "occurred_at": T0.isoformat()}
    raw = json.dumps({**envelope("app.opened", detail, "ev-1"), "resources": ["RESOURCE"]})
    raw = raw.replace('"RESOURCE"', constant)
    # when it is parsed / then it is not JSON, and says so
    with pytest.raises(EventRejected) as caught:
        parse_inbound(raw)
    assert caught.value.error_type == "InvalidEnvelope"
    assert "NaN or Infinity" in caught.value.reason


def test_an_imported_json_line_carrying_one_is_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    line = {
        "order_id": "o1",
        "customer_id": "c1",
        "ordered_at": "2026-01-05T10:00:00Z",
        "lines": [{"product_id": "p", "quantity": 1, "unit_price": "PRICE"}],
    }
    good = {**line, "order_id": "o2", "lines": [{**line["lines"][0], "unit_price": 5}]}
    path.write_text(json.dumps(line).replace('"PRICE"', "Infinity") + "\n" + json.dumps(good))
    report = import_file("orders", path, None, KizunaConfig(), T0, partial=True)
    assert [(e.row, e.error) for e in report.errors] == [
        (1, "invalid JSON: Infinity is not a JSON number")
    ]
    assert report.imported == 1
