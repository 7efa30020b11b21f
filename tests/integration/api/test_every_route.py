"""Every JSON route of the OpenAPI document refuses a caller without a valid identity
(401), a signed-in person in no group (403) and an expired token (401), and writes
nothing when it does."""

from __future__ import annotations

import base64
import re
import time
from typing import Any

import boto3
import pytest

from kizuna_tools.apidocs import METHODS, openapi
from tests.integration.api.harness import REGION, Api, http_event

pytestmark = pytest.mark.integration

SAMPLE = {
    "customer_id": "cust-1",
    "campaign_id": "spring-sale",
    "name": "champions",
    "day": "2026-01-05",
}


def routes() -> list[tuple[str, str]]:
    out = []
    for path, item in sorted(openapi()["paths"].items()):
        for method in METHODS:
            if method in item:
                out.append((method.upper(), path))
    return out


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE.get(m.group(1), "x1"), path)


def item_count() -> int:
    ddb = boto3.client("dynamodb", region_name=REGION)
    return sum(
        ddb.scan(TableName=t, Select="COUNT")["Count"] for t in ddb.list_tables()["TableNames"]
    )


def test_the_document_has_the_issue_s_routes() -> None:
    paths = {p for _, p in routes()}
    for expected in (
        "/api/customers/{customer_id}",
        "/api/customers/{customer_id}/timeline",
        "/api/messages",
        "/machine/messages",
        "/machine/events",
        "/api/segments",
        "/api/campaigns",
        "/api/programs",
        "/api/reports/latest",
        "/api/audit",
    ):
        assert expected in paths, expected


@pytest.mark.parametrize(("method", "path"), routes())
def test_no_identity_no_group_or_expired_changes_nothing(api: Api, method: str, path: str) -> None:
    before = item_count()
    body: Any = {"customer_id": "cust-1"} if method in {"POST", "PUT"} else None
    target = concrete(path)
    assert api.call(method, target, body=body).status == 401
    if path.startswith("/api/"):
        assert api.call(method, target, body=body, as_="none").status == 403
        expired = api.pool.forged(exp=int(time.time()) - 60)
        assert api.call(method, target, body=body, token=expired).status == 401
        # a machine's identity is none on a people's route
        assert api.call(method, target, body=body, as_="machine").status == 401
    else:
        # a person's token is none on a machine's route
        assert api.call(method, target, body=body, as_="admin").status == 401
    assert item_count() == before


def valid_body(method: str, path: str) -> Any:
    """A body the route's schema takes (Powertools validates it before anything else)."""
    if path == "/api/campaigns/{campaign_id}/preview":
        return {}
    if path.startswith("/api/campaigns") and method in {"POST", "PUT"}:
        return {"yaml": "id: x"} | ({"version": 1} if method == "PUT" else {})
    return None


@pytest.mark.parametrize(("method", "path"), routes())
def test_an_unknown_query_parameter_is_422_naming_it_and_changes_nothing(
    api: Api, method: str, path: str
) -> None:
    # given a caller the route lets in, and a misspelt parameter (`lmit` for `limit`)
    before = item_count()
    caller = "machine" if path.startswith("/machine/") else "admin"
    # when it is sent
    answer = api.call(
        method,
        concrete(path),
        as_=caller,
        query={"lmit": "5"},
        body=valid_body(method, path),
    )
    # then it is refused naming it, not left unread as if the answer had read it
    assert answer.status == 422, answer.body
    [error] = [e for e in answer.json()["detail"] if e["loc"] == ["query", "lmit"]]
    assert error["type"] == "extra_forbidden"
    assert error["msg"].startswith("unknown query parameter (this route takes: ")
    assert item_count() == before


NOT_JSON_BODIES = {
    # a form or a multipart body was parsed into a campaign's fields as if it were JSON
    "form": ("application/x-www-form-urlencoded", "yaml=id%3A+x", False, 415),
    "multipart": ("multipart/form-data; boundary=zz", "--zz--\r\n", False, 415),
    # a multipart type without its boundary, bytes that are not UTF-8, base64 that is not:
    # each raised out of Powertools' body parsing (a 500)
    "no boundary": ("multipart/form-data", "x", False, 415),
    "not UTF-8": ("application/json", base64.b64encode(b'{"yaml": "\xff"}').decode(), True, 400),
    "bad base64": ("application/json", "e30", True, 400),
    "text": ("text/plain", '{"yaml": "id: x"}', False, 415),
}


@pytest.mark.parametrize("kind", sorted(NOT_JSON_BODIES))
@pytest.mark.parametrize(
    ("method", "path"),
    [(m, p) for m, p in routes() if m in {"POST", "PUT"} and not p.startswith("/cards")],
)
def test_a_body_that_is_not_json_text_is_refused_saying_so_and_changes_nothing(
    api: Api, method: str, path: str, kind: str
) -> None:
    # given a caller the route lets in and a body that is not UTF-8 JSON text
    ctype, body, encoded, status = NOT_JSON_BODIES[kind]
    caller = "machine" if path.startswith("/machine/") else "admin"
    before = item_count()
    event = http_event(method, concrete(path), headers={"content-type": ctype}, body=body)
    event["isBase64Encoded"] = encoded
    # when it is sent
    answer = api.call_event(event, as_=caller)
    # then it is a 4xx saying why, never a 500 nor read as if it were JSON
    assert answer.status == status, answer.body
    assert answer.json()["message"] in {
        "the body must be application/json",
        "the body is not UTF-8 text",
    }
    assert item_count() == before
