"""The REST API keeps its own contract: schemathesis (the OpenAPI conformance tool a
consumer would run) tests the live server against the OpenAPI document it serves,
with all checks, for every role with API access, and finds nothing.

Bounded: a few examples per operation (the coverage phase adds the boundary and
invalid values it derives from the document: ranges, enums, patterns, missing
and malformed tokens, undeclared methods).
"""
import os

import pytest
import requests

MAX_EXAMPLES = int(os.environ.get("CONFORMANCE_MAX_EXAMPLES", "10"))


def _token(base, username, password="Demo@2026"):
    resp = requests.post(base + "/api/v1/security/login", timeout=30,
                         json={"username": username, "password": password, "provider": "db"})
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


def run_schemathesis(base, token):
    """Run schemathesis' engine (what `st run --checks all` runs) against `base`;
    return its failures as readable lines, and the number of cases it generated."""
    import schemathesis
    from schemathesis.config import SchemathesisConfig
    from schemathesis.engine import Status, events, from_schema

    config = SchemathesisConfig.from_dict({
        "seed": 21,
        "headers": {"Authorization": "Bearer " + token},
        "generation": {"max-examples": MAX_EXAMPLES},
        "checks": {"enabled": True},
        # (no max-time: with one, the engine repeats its fuzzing phase until the time is up)
    })
    schema = schemathesis.openapi.from_url(base + "/api/v1/_openapi", config=config,
                                           headers={"Authorization": "Bearer " + token})
    failures, cases, errors = [], 0, []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            cases += len(recorder.cases)
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info.failure
                        failures.append(f"{recorder.label}: {check.name}: {failure.title}: {failure.message}\n"
                                        f"    {check.failure_info.code_sample}")
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            errors.append(str(getattr(event, "value", None) or getattr(event, "exception", None)))
    return sorted(set(failures)), cases, errors


@pytest.mark.parametrize("username", ["bureau_nj", "admin", "national_32"])
def test_openapi_conformance(app, live_server, username):
    """0 failures for each role with API access: a (city) bureau, the administrator,
    and the national system's machine account (province)."""
    password = "Demo@2026"
    if username == "national_32":
        with app.app_context():
            from app.services.accounts import create_national_account

            _user, password = create_national_account("32")
    token = _token(live_server, username, password)
    failures, cases, errors = run_schemathesis(live_server, token)
    assert not errors, errors
    assert cases > 50, cases  # it did test
    assert not failures, "\n".join(failures)


def test_the_document_says_what_is_answered(client):
    """Spot checks of the document the conformance run relies on."""
    from tests.test_national import _token as login

    auth = login(client, "bureau_nj")
    spec = client.get("/api/v1/_openapi", headers=auth).get_json()
    paths = set(spec["paths"])
    assert paths == {
        "/api/v1/national_record/changes", "/api/v1/national_record/{pk}",
        "/api/v1/national_record/export", "/api/v1/security/login", "/api/v1/security/refresh",
        "/api/{version}/_openapi",
    }
    feed = spec["paths"]["/api/v1/national_record/changes"]["get"]
    params = {p["name"]: p["schema"] for p in feed["parameters"]}
    assert params["year"] == {"type": "integer", "minimum": 2000, "maximum": 2100}
    assert params["page_size"]["maximum"] == 1000
    assert set(feed["responses"]) == {"200", "400", "401", "403"}
    assert feed["security"] == [{"jwt": []}]
    record = spec["components"]["schemas"]["NationalRecord"]["properties"]
    assert record["hours"]["type"] == "number" and record["id"]["type"] == "integer"
    assert record["updated_at"]["format"] == "date-time"
    assert "api_key" not in spec["components"]["securitySchemes"]
    # Undocumented FAB routes are not exposed.
    assert client.get("/api/v1/menu/", headers=auth).status_code == 404
    assert client.get("/api/v1/national_record/", headers=auth).status_code == 404
    assert client.get("/api/v1/national_record/_info", headers=auth).status_code == 404
