"""Contract of every Inbox API endpoint: anonymous → 401, a user without the Inbox API policy → 403, a caller
without access to the patient → 404 with no patient data, all as RFC 9457 problems."""

import pytest
from rest_framework.test import APIClient

from adminportal.models import ApiToken
from inbox.api.tokens import hash_token
from tests.factories import (
    AttachmentFactory,
    CommunicationFactory,
    MessageFactory,
    PatientContactMethodFactory,
)

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


@pytest.fixture
def communication(patient):
    communication = CommunicationFactory(patient=patient, subject="Maria's refill")
    message = MessageFactory(communication=communication, body_text="Maria Lopez here, about my refill.")
    AttachmentFactory(message=message)
    PatientContactMethodFactory(patient=patient, kind="email", value="maria.lopez@mail.example")
    return communication


def endpoints(c):
    attachment = c.messages.first().attachments.first()
    base = f"/api/v1/communications/{c.pk}"
    return [
        ("get", "/api/v1/inboxes/", None),
        ("get", "/api/v1/folders/my/assigned/communications/", None),
        ("get", "/api/v1/patients/", None),
        ("get", "/api/v1/sending-lines/", None),
        ("get", "/api/v1/templates/", None),
        ("get", f"{base}/", None),
        ("get", f"{base}/attachments/{attachment.pk}/", None),
        ("get", f"{base}/assignees/", None),
        ("post", f"{base}/send/", {"body": "Hello"}),
        ("post", f"{base}/status/", {"status": "closed"}),
        ("post", f"{base}/assign/", {"assignee": None}),
        ("post", f"{base}/link/", {"patient": c.patient_id}),
    ]


PATIENT_SCOPED = slice(5, None)  # the endpoints about one communication (and so one patient)


def call(client, method, url, body):
    if method == "get":
        return client.get(url)
    return client.post(url, body, format="json")


def assert_problem(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert set(body) >= {"type", "title", "status", "detail"}
    assert body["type"].startswith("https://")
    return body


def test_every_endpoint_answers_anonymous_with_401_and_a_bearer_challenge(communication):
    client = APIClient()
    for method, url, body in endpoints(communication):
        response = call(client, method, url, body)
        assert_problem(response, 401)
        assert response["WWW-Authenticate"] == 'Bearer realm="api"', url


def test_every_endpoint_refuses_a_user_without_the_inbox_api_policy(communication, nurse):
    """The nurse is on the patient's care team, but her role does not hold Inbox API."""
    client = APIClient()
    client.force_login(nurse)
    for method, url, body in endpoints(communication):
        detail = assert_problem(call(client, method, url, body), 403)["detail"]
        assert "Inbox API" in detail


def test_a_token_stops_working_when_its_users_role_loses_the_policy(communication, nurse, api_role):
    """A token created while the role held Inbox API is refused (403) once the published role no longer does."""
    ApiToken.objects.create(
        user=nurse, name="legacy", prefix="cit_legacy", secret_hash=hash_token("cit_legacy-x")
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer cit_legacy-x")
    assert_problem(client.get("/api/v1/inboxes/"), 403)


def test_a_caller_without_access_to_the_patient_gets_404_and_no_patient_data(communication, outsider_api):
    before = communication.messages.count(), communication.status, communication.assignee_id
    for method, url, body in endpoints(communication)[PATIENT_SCOPED]:
        response = call(outsider_api, method, url, body)
        assert_problem(response, 404)
        text = response.content.decode()
        for secret in ("Maria", "Lopez", "refill", "lab-results"):
            assert secret not in text, (url, secret)
    communication.refresh_from_db()
    assert (communication.messages.count(), communication.status, communication.assignee_id) == before


def test_an_unknown_communication_is_the_same_404_as_one_the_caller_may_not_see(
    api, outsider_api, communication
):
    unknown = api.get("/api/v1/communications/999999/")
    hidden = outsider_api.get(f"/api/v1/communications/{communication.pk}/")
    assert unknown.status_code == hidden.status_code == 404
    assert unknown.json() == hidden.json()


def test_an_unknown_api_address_is_a_404_problem(api):
    assert_problem(api.get("/api/v1/no-such-thing/"), 404)
    assert_problem(api.get("/api/v1/communications/abc/"), 404)
    assert_problem(api.post("/api/v1/communications/1%0A/assign/", {}, format="json"), 404)  # a newline too


def test_a_wrong_method_is_a_405_problem(api, communication):
    assert_problem(api.post(f"/api/v1/communications/{communication.pk}/", {}, format="json"), 405)
    assert_problem(api.get(f"/api/v1/communications/{communication.pk}/send/"), 405)


def test_a_session_needs_the_csrf_token_for_changes(communication, api_user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(api_user)
    assert client.get(f"/api/v1/communications/{communication.pk}/").status_code == 200
    response = client.post(
        f"/api/v1/communications/{communication.pk}/status/", {"status": "closed"}, format="json"
    )
    assert_problem(response, 403)
    communication.refresh_from_db()
    assert communication.status == "open"


def test_the_schema_and_docs_need_a_signed_in_user(api, client):
    assert_problem(APIClient().get("/api/schema/"), 401)
    assert api.get("/api/schema/").status_code == 200
    docs = api.get("/api/docs/")
    assert docs.status_code == 200
    assert b"/static/drf_spectacular_sidecar/" in docs.content  # Swagger UI from our own static files
    assert b"cdn" not in docs.content.lower()
