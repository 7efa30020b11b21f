"""Direct mail: a dm send collects the recipient (consent and a complete address, exactly
once), the daily job prints one CSV per program and template with a manifest and an event,
a re-run adds nothing, cells a spreadsheet would run are escaped."""

import csv
import hashlib
import io
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from kizuna.delivery.direct_mail import COLUMNS, DmCollector, DmRow, recheck, safe_cell
from kizuna.delivery.templates import Renderer
from kizuna.domain.customer import ConsentState, Customers, PauseState, PostalAddress, Suppression
from kizuna.domain.privacy import mask
from kizuna.events import CustomerUpserted
from kizuna.programs.loader import load_programs
from kizuna.runtime.clock import FixedClock
from kizuna.runtime.config import KizunaConfig
from kizuna.services.direct_mail import manifest_key, write_print_files
from kizuna.services.send import SendRequest, SendService
from kizuna_tools.fakes import MemoryInbound, MemoryStore
from tests import factories
from tests.factories import Email, opted_in

NOON = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo
ADDRESS = {
    "recipient_name": "山田 花子",
    "postal_code": "150-0001",
    "region": "東京都",
    "locality": "渋谷区神宮前",
    "line1": "1-2-3",
    "line2": "ハイツ101",
}
# the print job runs the next morning, with the deployment's preferences
PRINT: dict[str, Any] = {
    "now": NOON + timedelta(hours=20),
    "preferences": KizunaConfig().preferences,
}
PROGRAM = """id: dm-sample
name: DM sample
trigger: {event: customer.first_purchase}
steps:
  - {id: mail, type: send, channels: [dm, email], template: postcard}
"""


class Rows:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, str], DmRow] = {}
        self.puts = 0

    def put_dm_row(self, row: DmRow) -> None:
        self.puts += 1
        self.rows[(row.customer_id, row.execution, row.step)] = row

    def dm_rows(self, day: date) -> list[DmRow]:
        return [r for r in self.rows.values() if r.day == day]


class Files:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.puts = 0

    def put(self, key: str, body: bytes, content_type: str = "application/json") -> None:
        self.objects[key] = body
        self.puts += 1

    def get(self, key: str) -> bytes | None:
        return self.objects.get(key)

    def keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))


class Events:
    def __init__(self) -> None:
        self.put: list[dict[str, Any]] = []

    def put_file_ready(self, detail: Any) -> None:
        self.put.append(dict(detail))


@pytest.fixture
def world(tmp_path: Path) -> Any:
    (tmp_path / "programs").mkdir()
    (tmp_path / "programs" / "dm-sample.yaml").write_text(PROGRAM)
    for locale, text in (
        (
            "ja",
            "{{ customer.display_name }} 様\nクーポン {{ coupon.code if coupon else 'なし' }}\n\n",
        ),
        ("en", "Dear {{ customer.display_name }}\n{{ customer.first_name }}\n"),
    ):
        folder = tmp_path / "templates" / "dm-sample" / "postcard" / locale
        folder.mkdir(parents=True)
        (folder / "dm.txt.j2").write_text(text)
        (folder / "email.subject.j2").write_text("Hi")
        (folder / "email.html.j2").write_text("<p>Hi</p>")
        (folder / "email.txt.j2").write_text("Hi")
    programs, problems = load_programs(tmp_path / "programs")
    assert not problems
    store = MemoryStore()
    rows = Rows()
    email = Email()
    clock = FixedClock(NOON)
    service = SendService(
        programs,
        store,
        Renderer(tmp_path / "templates"),
        {"dm": DmCollector(rows, clock, "Asia/Tokyo"), "email": email},
        MemoryInbound(),
        KizunaConfig(),
        clock,
        coupon_secret=b"k" * 32,
        sleep=lambda _: None,
    )
    return service, store, rows, email


def send(service: SendService, cid: str, execution: str = "") -> Any:
    return service.send(
        SendRequest(
            program="dm-sample",
            step="mail",
            customer_id=cid,
            execution=execution or f"ex-{cid}",
            entered_at=NOON - timedelta(hours=1),
        )
    )


def test_the_file_holds_exactly_the_customers_with_consent_and_an_address(world: Any) -> None:
    service, store, rows, email = world
    # given: one with consent and an address, one without consent (but on email), one
    # without an address, one whose name a spreadsheet would run as a formula
    address = PostalAddress.model_validate(ADDRESS)
    evil = address.model_copy(update={"recipient_name": '=HYPERLINK("x")'})
    store.customers["c1"] = factories.customer("c1", consent=opted_in("dm"), postal_address=address)
    store.customers["c2"] = factories.customer(
        "c2", consent=opted_in("email"), email="c2@example.jp", postal_address=address
    )
    store.customers["c3"] = factories.customer("c3", consent=opted_in("dm"))
    store.customers["c4"] = factories.customer(
        "c4", consent=opted_in("dm"), postal_address=evil, first_name="-1+1", locale="en"
    )
    # when: the step runs for each, c1's twice (a duplicated invocation)
    answers = {cid: send(service, cid) for cid in ("c1", "c2", "c3", "c4")}
    again = send(service, "c1")
    # then: the ledger says why; the fallback took email; nobody is collected twice
    assert answers["c1"].status == "sent" and answers["c1"].channel == "dm"
    assert answers["c2"].channel == "email" and len(email.sent) == 1
    assert answers["c3"].status == "suppressed" and answers["c3"].reason == "no_channel"
    entry = store.ledger_entries_of([("c3", "ex-c3")], "mail")[("c3", "ex-c3")]
    assert "dm:no_address" in entry["skipped"]
    assert again.status == "sent" and rows.puts == 2  # the claim's answer; c1 collected once
    files, events = Files(), Events()
    written = write_print_files(
        date(2026, 1, 5), rows, files, events, customers=store, ledger=store, **PRINT
    )
    assert len(written) == 1
    key = "dm/date=2026-01-05/dm-sample/postcard.csv"
    body = files.objects[key]
    table = list(csv.reader(io.StringIO(body.decode("utf-8"))))
    assert tuple(table[0]) == COLUMNS
    assert [r[0] for r in table[1:]] == ["c1", "c4"]
    c1 = dict(zip(COLUMNS, table[1], strict=True))
    assert c1["recipient_name"] == "山田 花子" and c1["postal_code"] == "150-0001"
    assert c1["line_1"].endswith("様") and c1["line_2"].startswith("クーポン")
    c4 = dict(zip(COLUMNS, table[2], strict=True))
    assert c4["recipient_name"] == '\'=HYPERLINK("x")'
    assert c4["line_2"] == "'-1+1"
    # the manifest and the event
    manifest = json.loads(files.objects[manifest_key(key)])
    assert manifest["sha256"] == hashlib.sha256(body).hexdigest()
    assert manifest["rows"] == 2 and manifest["program"] == "dm-sample"
    assert manifest["template"] == "postcard" and manifest["date"] == "2026-01-05"
    assert events.put == [manifest]
    # a re-run writes nothing and puts nothing
    puts = files.puts
    assert (
        write_print_files(
            date(2026, 1, 5), rows, files, events, customers=store, ledger=store, **PRINT
        )
        == []
    )
    assert files.puts == puts and len(events.put) == 1
    # another day has no file
    assert (
        write_print_files(
            date(2026, 1, 6), rows, files, events, customers=store, ledger=store, **PRINT
        )
        == []
    )


def test_opted_out_customer_is_not_collected(world: Any) -> None:
    service, store, rows, _ = world
    consent = opted_in("dm")
    consent["dm"] = consent["dm"].model_copy(update={"status": "opted_out"})
    store.customers["c1"] = factories.customer(
        "c1", consent=consent, postal_address=PostalAddress.model_validate(ADDRESS)
    )
    assert send(service, "c1").status == "suppressed"
    assert rows.rows == {}


def test_the_print_file_honours_what_changed_since_the_send(world: Any) -> None:
    service, store, rows, _ = world
    # given: five customers collected at noon, each opted in with an address
    address = PostalAddress.model_validate(ADDRESS)
    moved = address.model_copy(update={"locality": "渋谷区恵比寿", "line1": "4-5-6"})
    for cid in ("c1", "c2", "c3", "c4", "c5"):
        store.customers[cid] = factories.customer(
            cid, consent=opted_in("dm"), postal_address=address
        )
        assert send(service, cid).channel == "dm"
    # when, before the next day's job: c1 withdraws dm consent, c2 is suppressed on dm,
    # c3 is gone, c4 moves; c5 changes nothing
    consent = opted_in("dm")
    consent["dm"] = consent["dm"].model_copy(update={"status": "opted_out"})
    store.customers["c1"] = store.customers["c1"].model_copy(update={"consent": consent})
    gone = Suppression(reason="returned", at=NOON)
    store.customers["c2"] = store.customers["c2"].model_copy(update={"suppressions": {"dm": gone}})
    del store.customers["c3"]
    store.customers["c4"] = store.customers["c4"].model_copy(update={"postal_address": moved})
    files = Files()
    write_print_files(
        date(2026, 1, 5), rows, files, Events(), customers=store, ledger=store, **PRINT
    )
    # then: only c4 (at the new address) and c5 are printed
    body = files.objects["dm/date=2026-01-05/dm-sample/postcard.csv"].decode("utf-8")
    table = [dict(zip(COLUMNS, r, strict=True)) for r in list(csv.reader(io.StringIO(body)))[1:]]
    assert [(r["customer_id"], r["line1"]) for r in table] == [("c4", "4-5-6"), ("c5", "1-2-3")]
    assert table[0]["locality"] == "渋谷区恵比寿"
    # and each withheld row has the contact policy's reason
    current = store.get_customers(["c1", "c2", "c4", "c5"])
    _, withheld = recheck(rows.dm_rows(date(2026, 1, 5)), current, **PRINT)
    reasons = {w.row.customer_id: w.reason for w in withheld}
    assert reasons == {"c1": "no_consent", "c2": "suppressed_returned", "c3": "unknown_customer"}
    # and the ledger entries of the withheld messages say so (the printed ones do not)
    entries = {cid: store.messages[(cid, f"MSG#ex-{cid}#mail")] for cid in ("c1", "c2", "c3", "c4")}
    assert {cid: e.get("not_delivered_reason") for cid, e in entries.items()} == {
        "c1": "withheld from the print file (no_consent)",
        "c2": "withheld from the print file (suppressed_returned)",
        "c3": "withheld from the print file (unknown_customer)",
        "c4": None,
    }
    assert entries["c1"]["status"] == "sent" and entries["c1"]["withheld_at"]


@pytest.mark.parametrize("value", ["=1+1", "+81", "-x", "@SUM(A1)", "\tx", "\rx"])
def test_formula_cells_are_prefixed(value: str) -> None:
    assert safe_cell(value) == "'" + value
    assert safe_cell("渋谷区") == "渋谷区"


@pytest.mark.parametrize(
    "change",
    [
        {"postal_code": "1500"},  # not a Japanese postal code
        {"line1": "   "},
        {"locality": "a\nb"},
        {"line2": "x" * 201},
        {"zip": "1"},
        {"country": "jp"},
    ],
)
def test_address_is_validated_strictly(change: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        CustomerUpserted.model_validate(
            {
                "customer_id": "c1",
                "occurred_at": NOON.isoformat(),
                "postal_address": {**ADDRESS, **change},
            }
        )


def test_address_is_masked_for_viewers() -> None:
    shown = mask("postal_address", ADDRESS | {"country": "JP"})
    assert shown == "JP 東京都 ***"
    assert "1-2-3" not in str(shown)


def _row(cid: str, topic: str | None, transactional: bool = False) -> DmRow:
    return DmRow(
        day=date(2026, 1, 5),
        program="dm-sample",
        template="postcard",
        customer_id=cid,
        execution=f"ex-{cid}",
        step="mail",
        address=PostalAddress.model_validate(ADDRESS),
        lines=("line",),
        topic=topic,
        transactional=transactional,
    )


def test_a_collected_row_carries_what_the_print_time_check_asks(world: Any) -> None:
    service, store, rows, _ = world
    store.customers["c1"] = factories.customer(
        "c1", consent=opted_in("dm"), postal_address=PostalAddress.model_validate(ADDRESS)
    )
    assert send(service, "c1").channel == "dm"
    (row,) = rows.dm_rows(date(2026, 1, 5))
    # the program's topic (the deployment's default), not a transactional message
    assert (row.topic, row.transactional) == ("promotions", False)


def test_the_print_file_honours_a_topic_opt_out_and_a_pause_since_the_send() -> None:
    address = PostalAddress.model_validate(ADDRESS)
    now = PRINT["now"]
    topic_out = {"dm": ConsentState(status="opted_out", at=NOON, source="page", stamp="s")}
    paused = PauseState(until=now + timedelta(days=30), at=NOON, source="page", stamp="s")
    ended = PauseState(until=now - timedelta(hours=1), at=NOON, source="page", stamp="s")
    customers = {
        # opted out of promotions by dm after the send
        "c1": factories.customer(
            "c1", consent=opted_in("dm"), postal_address=address, topics={"promotions": topic_out}
        ),
        # paused every marketing message until next month
        "c2": factories.customer(
            "c2", consent=opted_in("dm"), postal_address=address, pause=paused
        ),
        # a pause that has ended
        "c3": factories.customer("c3", consent=opted_in("dm"), postal_address=address, pause=ended),
        # opted out of newsletter only
        "c4": factories.customer(
            "c4", consent=opted_in("dm"), postal_address=address, topics={"newsletter": topic_out}
        ),
    }
    rows = [_row(cid, "promotions") for cid in ("c1", "c2", "c3", "c4")]
    # a row on the transactional topic is not held by a pause; a row collected before rows
    # kept their topic is checked as before (consent, suppression, address)
    rows += [_row("c2", "service"), _row("c2", None).model_copy(update={"execution": "old"})]
    printed, withheld = recheck(rows, customers, **PRINT)
    assert {(w.row.customer_id, w.row.topic): w.reason for w in withheld} == {
        ("c1", "promotions"): "topic_opted_out",
        ("c2", "promotions"): "paused",
    }
    assert {(r.customer_id, r.topic) for r in printed} == {
        ("c2", None),
        ("c2", "service"),
        ("c3", "promotions"),
        ("c4", "promotions"),
    }


def test_a_transactional_direct_mail_needs_no_opt_in_at_print_time_only_no_opt_out() -> None:
    # an invoice by post (the transactional API): the send asked for no dm opt-in
    address = PostalAddress.model_validate(ADDRESS)
    out = {"dm": ConsentState(status="opted_out", at=NOON, source="page", stamp="s")}
    customers = {
        "c1": factories.customer("c1", postal_address=address),  # never asked about dm
        "c2": factories.customer("c2", postal_address=address, consent=out),
    }
    rows = [_row("c1", "service", transactional=True), _row("c2", "service", transactional=True)]
    printed, withheld = recheck(rows, customers, **PRINT)
    assert [r.customer_id for r in printed] == ["c1"]
    assert [(w.row.customer_id, w.reason) for w in withheld] == [("c2", "opted_out")]
    # a marketing row of the same customer still needs the opt-in
    _, withheld = recheck([_row("c1", "promotions")], customers, **PRINT)
    assert [w.reason for w in withheld] == ["no_consent"]


def test_a_customer_item_this_version_cannot_read_withholds_that_row_alone() -> None:
    address = PostalAddress.model_validate(ADDRESS)
    readable = factories.customer("c1", consent=opted_in("dm"), postal_address=address)
    customers = Customers({"c1": readable}, {"c2": ("order_count",)})  # as the adapter reads them
    rows = [_row("c1", "promotions"), _row("c2", "promotions"), _row("c3", "promotions")]
    printed, withheld = recheck(rows, customers, **PRINT)
    assert [r.customer_id for r in printed] == ["c1"]
    assert [(w.row.customer_id, w.reason) for w in withheld] == [
        ("c2", "unreadable_customer"),
        ("c3", "unknown_customer"),
    ]


def test_a_direct_mail_sent_through_the_transactional_api_is_printed_without_an_opt_in(
    world: Any, tmp_path: Path
) -> None:
    from kizuna.services.contracts import TransactionalRequest
    from kizuna.services.transactional import TransactionalService

    service, store, rows, _ = world
    folder = tmp_path / "templates" / "transactional" / "invoice" / "ja"
    folder.mkdir(parents=True)
    (folder / "dm.txt.j2").write_text("{{ customer.display_name }} 様\nご請求書\n")
    # a customer who was never asked about direct mail (no opt-in, no opt-out)
    store.customers["c1"] = factories.customer(
        "c1", postal_address=PostalAddress.model_validate(ADDRESS)
    )

    class Keys:
        def bind_request(self, execution: str, request_hash: str, at: str, expires: int) -> str:
            return request_hash

    req = TransactionalRequest(
        execution="tx:" + "a" * 32,
        request_hash="b" * 64,
        caller="test",
        customer_id="c1",
        template="invoice",
        channels=("dm",),
    )
    assert TransactionalService(service, Keys()).send(req).status == "sent"
    (row,) = rows.dm_rows(date(2026, 1, 5))
    assert (row.topic, row.transactional) == ("service", True)
    files = Files()
    write_print_files(
        date(2026, 1, 5), rows, files, Events(), customers=store, ledger=store, **PRINT
    )
    body = files.objects["dm/date=2026-01-05/transactional/invoice.csv"].decode("utf-8")
    assert [r[0] for r in csv.reader(io.StringIO(body))][1:] == ["c1"]


def test_a_ledger_that_fails_never_holds_the_days_print_file_back(world: Any) -> None:
    service, store, rows, _ = world
    address = PostalAddress.model_validate(ADDRESS)
    for cid in ("c1", "c2"):
        store.customers[cid] = factories.customer(
            cid, consent=opted_in("dm"), postal_address=address
        )
        assert send(service, cid).channel == "dm"
    # c2 withdraws; the ledger is throttled past its retries when the job marks c2's row
    consent = opted_in("dm")
    consent["dm"] = consent["dm"].model_copy(update={"status": "opted_out"})
    store.customers["c2"] = store.customers["c2"].model_copy(update={"consent": consent})

    class Throttled:
        def stamp_message(self, *args: Any, **kwargs: Any) -> bool:
            raise RuntimeError("ProvisionedThroughputExceededException")

    files = Files()
    written = write_print_files(
        date(2026, 1, 5), rows, files, Events(), customers=store, ledger=Throttled(), **PRINT
    )
    # c1's mail is printed all the same
    assert len(written) == 1
    body = files.objects["dm/date=2026-01-05/dm-sample/postcard.csv"].decode("utf-8")
    assert [r[0] for r in csv.reader(io.StringIO(body))][1:] == ["c1"]


def test_after_an_erasure_a_re_run_rewrites_the_file_without_them_even_their_own_file(
    world: Any,
) -> None:
    """What docs/channels/DM.md ("Privacy") tells an operator after an erasure."""
    service, store, rows, _ = world
    address = PostalAddress.model_validate(ADDRESS)
    for cid in ("c1", "c2"):
        store.customers[cid] = factories.customer(
            cid, consent=opted_in("dm"), postal_address=address
        )
        send(service, cid)
    files, events = Files(), Events()
    day = date(2026, 1, 5)
    write_print_files(day, rows, files, events, customers=store, ledger=store, **PRINT)
    key = "dm/date=2026-01-05/dm-sample/postcard.csv"

    def printed() -> list[str]:
        table = list(csv.reader(io.StringIO(files.objects[key].decode("utf-8"))))
        return [r[0] for r in table[1:]]

    def erase(cid: str) -> None:  # what customer.erase leaves: no customer, no collected row
        del store.customers[cid]
        rows.rows = {k: r for k, r in rows.rows.items() if r.customer_id != cid}

    assert printed() == ["c1", "c2"]
    # given c1 erased after the file was written; when the job runs again for that day
    erase("c1")
    write_print_files(day, rows, files, events, customers=store, ledger=store, **PRINT)
    # then the file is rewritten without them, announced again
    assert printed() == ["c2"] and len(events.put) == 2
    # and when the erased customer was the file's only row, it is rewritten with no row
    # (it kept their name and address until the bucket's rule expired it)
    erase("c2")
    (emptied,) = write_print_files(day, rows, files, events, customers=store, ledger=store, **PRINT)
    assert printed() == [] and "c2" not in files.objects[key].decode("utf-8")
    assert (emptied["file"], emptied["rows"]) == (key, 0) and events.put[-1] == emptied
    assert json.loads(files.objects[manifest_key(key)])["rows"] == 0
    # a re-run of an emptied file writes nothing
    assert write_print_files(day, rows, files, events, customers=store, ledger=store, **PRINT) == []
