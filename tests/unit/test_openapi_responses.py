"""The OpenAPI document says what each route answers: its success with the success's body,
and a refusal with the refusal's body, never the success model under an error code (what
Powertools writes for a response declared without content)."""

from __future__ import annotations

from typing import Any

import pytest

from kizuna.api.app import build_app, openapi_document

DOCUMENT = openapi_document(build_app(None))
OPERATIONS = [
    (method.upper(), path, op)
    for path, ops in DOCUMENT["paths"].items()
    for method, op in ops.items()
]
RETURN = {"title": "Return"}  # Powertools' schema of an unannotated (Response[Any]) return
# refusals whose body is the success's model on purpose: a key's conflict is a message outcome
# (status conflict or in_progress)
ANSWERED_AS_OUTCOMES = {("POST", "/machine/messages", "409"), ("POST", "/api/messages", "409")}


def _schema(response: dict[str, Any]) -> dict[str, Any] | None:
    return response.get("content", {}).get("application/json", {}).get("schema")


@pytest.mark.parametrize(
    ("method", "path", "op"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS]
)
def test_a_route_documents_its_success_and_no_error_carries_the_success_body(
    method: str, path: str, op: dict[str, Any]
) -> None:
    responses = op["responses"]
    successes = {code: _schema(r) for code, r in responses.items() if code.startswith("2")}
    assert successes, f"{method} {path}: no 2xx answer documented"
    for code, schema in successes.items():
        assert schema and schema != RETURN, f"{method} {path} {code}: no body documented"
    for code, response in responses.items():
        if code.startswith("2"):
            continue
        schema = _schema(response)
        assert schema != RETURN, f"{method} {path} {code}: documented as the route's return"
        assert (method, path, code) in ANSWERED_AS_OUTCOMES or schema not in successes.values(), (
            f"{method} {path} {code}: an error documented with the success's body {schema}"
        )


def test_the_customer_routes_answer_200_with_their_model() -> None:
    profile = DOCUMENT["paths"]["/api/customers/{customer_id}"]["get"]["responses"]
    timeline = DOCUMENT["paths"]["/api/customers/{customer_id}/timeline"]["get"]["responses"]
    assert _schema(profile["200"]) == {"$ref": "#/components/schemas/CustomerProfile"}
    assert _schema(timeline["200"]) == {"$ref": "#/components/schemas/TimelinePage"}
    assert "404" in profile and "404" in timeline
