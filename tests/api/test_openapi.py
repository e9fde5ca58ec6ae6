"""The OpenAPI document, and schemathesis against the live app: every operation, no 500s, responses
match the schema (status codes, content types, bodies). Bounded examples so it stays well under a minute.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from alerting.interfaces.api.openapi import build_spec

MAX_EXAMPLES = int(os.environ.get("SIRENA_FUZZ_EXAMPLES", "8"))  # raise it to hunt, keep it small in CI


SCHEMA = schemathesis.openapi.from_dict(build_spec())
# The coverage phase enumerates every boundary of every field (hundreds of cases per operation);
# random fuzzing with a bounded example count keeps this test well under a minute.
SCHEMA.config.phases.coverage.enabled = False


@pytest.fixture
def fuzz_headers(app, make_token, sender, factories):  # type: ignore[no-untyped-def]
    """A token with every scope on an operator with every role, a sender and a group to aim at."""
    app.config["SIRENA_API_RATE_PER_MIN"] = 0  # schemathesis is one client hammering on purpose
    return {"Authorization": f"Bearer {make_token(('composer', 'approver', 'admin')).token}"}


@SCHEMA.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_every_operation_answers_without_500_and_as_documented(case, app, fuzz_headers):  # type: ignore[no-untyped-def]
    response = case.call(app=app, headers=fuzz_headers)
    not_ready = case.path.endswith("/readyz") and response.status_code == 503  # no gateway runs here: documented
    assert response.status_code < 500 or not_ready, response.text
    if not_ready:  # its body is the health report, checked in test_readyz.py
        return
    case.validate_response(response, checks=[status_code_conformance, content_type_conformance,
                                             response_schema_conformance])


def test_the_document_is_openapi_3_with_every_contract_path(app):  # type: ignore[no-untyped-def]
    with app.test_request_context():
        spec = build_spec()
    assert spec["openapi"].startswith("3.")
    for path in ("/api/v1/alerts", "/api/v1/alerts/{alert_id}/submit", "/api/v1/alerts/{alert_id}/approve",
                 "/api/v1/alerts/{alert_id}/cancel", "/api/v1/alerts/{alert_id}",
                 "/api/v1/alerts/{alert_id}/deliveries",
                 "/api/v1/alerts/{alert_id}/replies", "/api/v1/targets/preview", "/api/v1/contacts",
                 "/api/v1/groups", "/api/v1/zones", "/api/v1/healthz", "/api/v1/readyz", "/api/v1/metrics"):
        assert path in spec["paths"], path
    create = spec["paths"]["/api/v1/alerts"]["post"]
    body_schema = create["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/AlertCreate"}
    assert "422" in create["responses"] and "Problem" in spec["components"]["schemas"]


def test_openapi_json_is_served_without_a_token(client):  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.get_json()["info"]["title"] == "Sirena API"
