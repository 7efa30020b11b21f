"""``kizuna import``: a row Kizuna refuses when written is written in no part. A customers
row is several events (the profile and attributes, a consent per channel, a device per
push token); when the customer's state refuses one (the attributes over the item's
budget once merged with what Kizuna holds), none of the row's events is applied, so the
report's "refused by Kizuna" is true, and the customer's other records and the other
customers are written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer

from kizuna.runtime.config import KizunaConfig
from kizuna.services.ingest import apply_to_customers
from kizuna_tools.cli import _print_import_report
from kizuna_tools.fakes import MemoryStore
from kizuna_tools.importer import customer_events, import_file
from tests.factories import T0, days

CFG = KizunaConfig.model_validate(
    {
        "custom": {
            "attributes": [
                {"name": f"notes_{n}", "type": "string_list", "max_length": 2048} for n in range(2)
            ]
        }
    }
)
NOW = T0 + days(40)
BIG = ["n" * 2000] * 30  # ~60 KB: two of them are over the customer's 80 KB
TOKEN = "a" * 64


def jsonl(tmp_path: Path, name: str, *rows: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def held(store: MemoryStore, cid: str) -> tuple[Any, list[str]]:
    """The customer's item and activity, as stored."""
    rows = sorted(sk for (c, sk) in store.activity if c == cid)
    return store.customers[cid].model_dump(), rows


def test_a_row_refused_when_written_writes_none_of_its_events(tmp_path: Path) -> None:
    # Given c1 held with ~60 KB of attributes
    store = MemoryStore()
    first = {"customer_id": "c1", "updated_at": (T0 + days(1)).isoformat()}
    first["attributes"] = {"notes_0": BIG}
    assert import_file("customers", jsonl(tmp_path, "a.jsonl", first), store, CFG, NOW).errors == []
    before = held(store, "c1")
    # When a row gives c1 60 KB more beside an email opt-in and a device, next to c2's row
    at = (T0 + days(2)).isoformat()
    second = {
        "customer_id": "c1",
        "updated_at": at,
        "email_consent": "opted_in",
        "push_tokens": [{"token": TOKEN, "platform": "APNS"}],
        "attributes": {"notes_1": BIG},
    }
    other = {"customer_id": "c2", "updated_at": at, "email_consent": "opted_in"}
    path = jsonl(tmp_path, "b.jsonl", second, other)
    report = import_file("customers", path, store, CFG, NOW)
    # Then c1's row is refused with the reason, and no part of it was written: neither
    # the consent nor the device, in the item or in its activity
    assert (report.imported, report.refused, [e.row for e in report.errors]) == (1, 1, [1])
    assert held(store, "c1") == before
    assert report.errors[0].error.startswith(
        "refused by Kizuna: customer.upserted: detail.attributes: the customer's custom "
        "attributes would be over 80000 bytes"
    )
    assert report.errors[0].error.endswith("(no part of the row was written)")
    # and c2's row is written
    assert str(store.customers["c2"].consent["email"].status) == "opted_in"
    # A re-run refuses it again and writes nothing of it
    again = import_file("customers", path, store, CFG, NOW)
    assert (again.imported, again.refused) == (1, 1)
    assert held(store, "c1") == before
    # Once fixed, the row is written whole
    fixed = second | {"attributes": {"notes_1": ["short"]}}
    report = import_file("customers", jsonl(tmp_path, "c.jsonl", fixed), store, CFG, NOW)
    assert (report.imported, report.refused, report.errors) == (1, 0, [])
    c1 = store.customers["c1"]
    assert str(c1.consent["email"].status) == "opted_in" and len(c1.devices) == 1
    assert c1.attributes["notes_1"] == ["short"]


def test_a_refused_record_leaves_the_customer_s_other_records_written() -> None:
    # Given c1 held with ~60 KB of attributes
    store = MemoryStore()
    row = {"customer_id": "c1", "updated_at": (T0 + days(1)).isoformat()}
    seed = customer_events(row | {"attributes": {"notes_0": BIG}}, NOW, CFG)
    apply_to_customers(store, {"c1": seed}, CFG, NOW, bulk=True)
    # When two records of c1 are applied together: one whose attributes are refused, with
    # an email opt-in, and one that opts in to SMS
    day2, day3 = ({"updated_at": (T0 + days(d)).isoformat()} for d in (2, 3))
    big = {"attributes": {"notes_1": BIG}, "email_consent": "yes"}
    refused = customer_events(row | day2 | big, NOW, CFG)
    sms = customer_events(row | day3 | {"sms_consent": "yes"}, NOW, CFG)
    together = {"c1": {ev.event_id: 1 for ev in refused} | {ev.event_id: 2 for ev in sms}}
    out = apply_to_customers(
        store, {"c1": [*refused, *sms]}, CFG, NOW, bulk=True, together=together
    )
    # Then the refused record's events are all reported with its reason, the other applied
    applied = out["c1"]
    assert not isinstance(applied, Exception)
    assert set(applied.refused) == {ev.event_id for ev in refused}
    assert len(set(applied.refused.values())) == 1
    c1 = store.customers["c1"]
    assert set(c1.consent) == {"sms"} and "notes_1" not in c1.attributes
    # Without records (ingest), each event stands alone, as before
    store2 = MemoryStore()
    apply_to_customers(store2, {"c1": seed}, CFG, NOW, bulk=True)
    out = apply_to_customers(store2, {"c1": [*refused, *sms]}, CFG, NOW, bulk=True)
    applied = out["c1"]
    assert not isinstance(applied, Exception)
    assert set(applied.refused) == {refused[0].event_id}
    assert set(store2.customers["c1"].consent) == {"email", "sms"}


def test_a_row_whose_own_attributes_are_over_the_budget_is_rejected_dry_run_or_not(
    tmp_path: Path,
) -> None:
    # Given a new customer's row whose own attributes are ~120 KB (over the 80 KB budget)
    # beside an email opt-in and a device, and another customer's row
    at = (T0 + days(1)).isoformat()
    big = {
        "customer_id": "c1",
        "updated_at": at,
        "email": "c1@example.jp",
        "email_consent": "opted_in",
        "push_tokens": [{"token": TOKEN, "platform": "APNS"}],
        "attributes": {"notes_0": BIG, "notes_1": BIG},
    }
    other = {"customer_id": "c2", "updated_at": at, "email_consent": "opted_in"}
    path = jsonl(tmp_path, "big.jsonl", big, other)
    # When it is validated (a dry run) and imported, with partial and without
    dry = import_file("customers", path, None, CFG, NOW)
    strict_store, partial_store = MemoryStore(), MemoryStore()
    strict = import_file("customers", path, strict_store, CFG, NOW)
    partial = import_file("customers", path, partial_store, CFG, NOW, partial=True)
    # Then each reports the same: the row is rejected for its attributes, by the rule the
    # write applies (the dry run no longer says "imported" for a row the write refuses)
    why = "customer.upserted: detail.attributes: over 80000 bytes (names and values as UTF-8 JSON)"
    for report in (dry, strict, partial):
        assert [(e.row, e.error) for e in report.errors] == [(1, why)]
        assert (report.imported, report.refused) == (1, 0)
    # and nothing of it is written; with partial, the other customer's row is
    assert strict_store.customers == {}
    assert set(partial_store.customers) == {"c2"}


def test_rows_of_a_customer_erased_recently_are_reported_not_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a customer erased in the last 30 days (their marker is live)
    store = MemoryStore()
    store.erased_ids = {"gone1"}
    at = (T0 + days(1)).isoformat()
    gone = {"customer_id": "gone1", "email": "gone1@example.jp", "email_consent": "opted_in"}
    kept = {"customer_id": "c2", "email": "c2@example.jp", "email_consent": "opted_in"}
    path = jsonl(tmp_path, "old-crm.jsonl", gone | {"updated_at": at}, kept | {"updated_at": at})
    # When an old export that still holds them is imported
    report = import_file("customers", path, store, CFG, NOW)
    # Then their row is not written (ingest drops their events) and the report says so,
    # with what to do, instead of counting it imported
    assert sorted(store.customers) == ["c2"]
    assert (report.imported, report.erased, report.customers_written) == (1, 1, 1)
    assert [e.row for e in report.errors] == [1]
    assert report.errors[0].error.startswith("not written: the customer was erased in the last")
    assert "remove them from the source data" in report.errors[0].error
    assert "gone1@example.jp" not in report.errors[0].error
    # and the command says it and exits 1, without claiming nothing was written
    with pytest.raises(typer.Exit) as exited:
        _print_import_report("customers", path, report, False, None, False)
    assert exited.value.exit_code == 1
    captured = capsys.readouterr()
    printed = " ".join((captured.out + captured.err).split())
    assert "1 rows are of customers erased in the last 30 days" in printed
    assert "nothing was written" not in printed
