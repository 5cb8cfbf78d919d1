"""Property-based run of the Inbox API against its own OpenAPI schema (schemathesis, in-process WSGI app).

Every operation gets a bounded number of generated requests (``MAX_EXAMPLES``), authenticated with a seeded
integration's token; each answer must not be a server error and must match the schema (status code, body and
content type — problems included). Data is seeded so that generated ids can hit real rows."""

import json

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import bearer_client
from tests.factories import (
    AttachmentFactory,
    CommunicationFactory,
    MessageFactory,
    MessageTemplateFactory,
    PatientContactMethodFactory,
    SendingLineFactory,
    UnrecognizedCommunicationFactory,
)

MAX_EXAMPLES = 25
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]


def _openapi() -> dict:
    """The schema /api/schema/ serves, built the same way (no request or database needed)."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    import inbox_project.urls  # noqa: F401 (the URLconf, fully imported before the generator walks it)

    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


class _WSGIApp:
    """The in-process WSGI app, built at the first request, so its middleware sees the tests' settings (plain
    HTTP) rather than the ones in force at import."""

    handler = None

    def __call__(self, environ, start_response):
        if self.handler is None:
            self.handler = WSGIHandler()
        # As Django's test client does: the request must not close the test's database connection.
        signals.request_started.disconnect(close_old_connections)
        signals.request_finished.disconnect(close_old_connections)
        try:
            result = self.handler(environ, start_response)
            body = list(result)
            if hasattr(result, "close"):
                result.close()
            return body
        finally:
            signals.request_started.connect(close_old_connections)
            signals.request_finished.connect(close_old_connections)


schema = schemathesis.openapi.from_dict(_openapi())
schema.app = _WSGIApp()


@pytest.fixture
def api_headers(db, api_user, patient, published_config, settings):
    """Seeded rows (so generated ids can hit them) and the integration's token."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"api-read": "100000/minute", "api-write": "100000/minute"},
    }
    version, _ = published_config
    SendingLineFactory(label="Main line")
    MessageTemplateFactory(version=version, channel="any", name="Hello")
    PatientContactMethodFactory(patient=patient, kind="phone", value="+15550102030")
    for index in range(3):
        communication = CommunicationFactory(patient=patient, assignee=api_user if index == 0 else None)
        message = MessageFactory(communication=communication)
        AttachmentFactory(message=message)
    UnrecognizedCommunicationFactory(assignee=api_user, counterpart="+15550109999", channel="sms")
    client = bearer_client(api_user, name="schemathesis")
    return {"Authorization": f"Bearer {client.raw_token}"}


def test_the_served_schema_is_the_one_tested(api):
    answer = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert answer.status_code == 200
    assert answer.json() == _openapi()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
    derandomize=True,
)
def test_api_conforms_to_its_schema(case, api_headers):
    case.call_and_validate(headers=api_headers, checks=CHECKS)


def test_every_operation_is_documented_with_examples():
    """Each operation has a summary, and examples of its success (except a file download) and of its problems."""
    for path, operations in _openapi()["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), (method, path)
            examples = {
                code
                for code, response in operation["responses"].items()
                for content in response.get("content", {}).values()
                if content.get("examples")
            }
            assert {"401", "403", "429"} <= examples, (method, path)
            if "attachments" not in path:
                assert any(code.startswith("2") for code in examples), (method, path)
            if method == "post":
                body = operation["requestBody"]["content"]["application/json"]
                assert body.get("examples"), (method, path)
