"""Send, status, assign, link through the API: the page's services, their rules, their audit events; bad input is a
400 problem and changes nothing; a refused action is a 422 problem with the service's own message."""

import pytest

from careportal.models import PatientContactMethod
from inbox.models import AuditEvent, Communication, Message
from inbox.services import set_status
from tests.factories import (
    CareTeamMemberFactory,
    CommunicationFactory,
    ContactFactory,
    DocumentFactory,
    MessageFactory,
    MessageTemplateFactory,
    PatientFactory,
    SendingLineFactory,
    UnrecognizedCommunicationFactory,
)

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"


@pytest.fixture
def communication(patient):
    communication = CommunicationFactory(patient=patient)
    MessageFactory(communication=communication)
    return communication


def snapshot(communication):
    communication.refresh_from_db()
    return (
        communication.status,
        communication.assignee_id,
        communication.patient_id,
        communication.messages.count(),
        AuditEvent.objects.count(),
    )


# --- Send ------------------------------------------------------------------------------------------------


def test_send_closes_by_default_and_is_audited(api, api_user, communication):
    response = api.post(
        f"/api/v1/communications/{communication.pk}/send/", {"body": "See you Monday."}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["message"]["body_text"] == "See you Monday."
    assert body["message"]["author"] == {"id": api_user.pk, "name": "EHR Sync"}
    assert body["communication"]["status"] == "closed"
    message = Message.objects.get(pk=body["message"]["id"])
    assert message.direction == "out" and message.communication_id == communication.pk
    actions = set(
        AuditEvent.objects.filter(actor=api_user, communication=communication).values_list(
            "action", flat=True
        )
    )
    assert actions == {AuditEvent.Action.MESSAGE_SENT, AuditEvent.Action.STATUS_CHANGED}


def test_send_with_if_match_goes_out_only_if_nothing_changed_since_that_version(api, communication, nurse):
    url = f"/api/v1/communications/{communication.pk}"
    etag = api.get(f"{url}/").headers["ETag"]
    sent = api.post(f"{url}/send/", {"body": "First."}, format="json", HTTP_IF_MATCH=etag)
    assert sent.status_code == 201, sent.content
    # The same version again: the reply just sent changed it, so a second writer holding it is refused.
    before = snapshot(communication)
    stale = api.post(f"{url}/send/", {"body": "Overlapping."}, format="json", HTTP_IF_MATCH=etag)
    assert stale.status_code == 412 and stale.headers["Content-Type"] == PROBLEM
    assert (
        stale.json()["type"].endswith("precondition-failed") and "Nothing was sent" in stale.json()["detail"]
    )
    assert snapshot(communication) == before
    # A colleague's status change also makes a version stale; the current version sends.
    etag = api.get(f"{url}/").headers["ETag"]
    set_status(user=nurse, communication=communication, status="open")
    assert api.post(f"{url}/send/", {"body": "x"}, format="json", HTTP_IF_MATCH=etag).status_code == 412
    etag = api.get(f"{url}/").headers["ETag"]
    assert api.post(f"{url}/send/", {"body": "Now."}, format="json", HTTP_IF_MATCH=etag).status_code == 201


def test_send_and_keep_open(api, communication):
    response = api.post(
        f"/api/v1/communications/{communication.pk}/send/",
        {"body": "More soon.", "close": False},
        format="json",
    )
    assert response.status_code == 201
    communication.refresh_from_db()
    assert communication.status == "open"


def test_send_securely_by_email_with_a_patient_document(api, communication, patient):
    document = DocumentFactory(patient=patient)
    response = api.post(
        f"/api/v1/communications/{communication.pk}/send/",
        {"body": "Your results.", "is_secure": True, "document_ids": [document.pk]},
        format="json",
    )
    assert response.status_code == 201, response.content
    message = response.json()["message"]
    assert message["is_secure"] is True
    assert [a["filename"] for a in message["attachments"]] == [document.name]
    assert message["attachments"][0]["download_url"].endswith(
        f"/attachments/{message['attachments'][0]['id']}/"
    )


def test_send_fills_a_published_template(api, communication, published_config):
    version, _ = published_config
    template = MessageTemplateFactory(
        version=version, channel="email", subject="For {{ patient.first_name }}",
        body="Hello {{ patient.first_name }}, this is {{ user.full_name }}.",
    )  # fmt: skip
    response = api.post(
        f"/api/v1/communications/{communication.pk}/send/", {"template": template.pk}, format="json"
    )
    assert response.status_code == 201, response.content
    message = response.json()["message"]
    assert message["body_text"] == "Hello Maria, this is EHR Sync."
    assert message["subject"] == "For Maria"


def test_send_sms_on_the_chosen_sending_line(api, patient):
    line = SendingLineFactory(label="Main line")
    sms = CommunicationFactory(patient=patient, channel="sms", counterpart="+15550102030", subject="")
    response = api.post(
        f"/api/v1/communications/{sms.pk}/send/", {"body": "Reminder", "sending_line": line.pk}, format="json"
    )
    assert response.status_code == 201, response.content
    sms.refresh_from_db()
    assert sms.sending_line_id == line.pk
    assert response.json()["message"]["sender_address"] == line.number


def test_an_unknown_sending_line_is_said_in_the_inboxs_words(api, communication):
    response = api.post(
        f"/api/v1/communications/{communication.pk}/send/", {"body": "Hi", "sending_line": 999}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "No active sending line you may send from has the id 999."


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"body": 12, "close": "perhaps"}, "close"),
        ({"document_ids": ["x"]}, "document_ids"),
        ({"sending_line": 999999}, "sending_line"),
        ({"template": 999999}, "template"),
        ({"body": "a\x00b"}, "body"),
    ],
)
def test_send_with_bad_input_is_400_and_sends_nothing(api, communication, body, field):
    before = snapshot(communication)
    response = api.post(f"/api/v1/communications/{communication.pk}/send/", body, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert field in response.json()["errors"]
    assert snapshot(communication) == before


def test_send_that_is_not_json_is_a_415_problem(api, communication):
    before = snapshot(communication)
    response = api.post(
        f"/api/v1/communications/{communication.pk}/send/",
        "body=hi",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 415
    assert response["Content-Type"] == PROBLEM
    assert snapshot(communication) == before


def test_send_on_an_unrecognized_communication_is_refused_with_the_services_reason(api, api_user):
    unrecognized = UnrecognizedCommunicationFactory(assignee=api_user)
    before = snapshot(unrecognized)
    response = api.post(f"/api/v1/communications/{unrecognized.pk}/send/", {"body": "Hi"}, format="json")
    assert response.status_code == 422
    assert response["Content-Type"] == PROBLEM
    assert response.json()["detail"] == (
        f"{unrecognized.counterpart} is not linked to a patient. Link it first, or confirm that the reply goes to "
        f"{unrecognized.counterpart}."
    )
    assert snapshot(unrecognized) == before


def test_secure_sms_is_refused(api, patient):
    sms = CommunicationFactory(patient=patient, channel="sms", counterpart="+15550102030")
    response = api.post(
        f"/api/v1/communications/{sms.pk}/send/", {"body": "Hi", "is_secure": True}, format="json"
    )
    assert response.status_code == 422
    assert response.json()["detail"] == "Secure messages can only be sent by email."


def test_another_patients_document_cannot_be_attached(api, communication):
    foreign = DocumentFactory(patient=PatientFactory())
    before = snapshot(communication)
    response = api.post(
        f"/api/v1/communications/{communication.pk}/send/",
        {"body": "Hi", "document_ids": [foreign.pk]},
        format="json",
    )
    assert response.status_code == 422
    assert "does not belong to this patient" in response.json()["detail"]
    assert "lab-results" not in response.content.decode()
    assert snapshot(communication) == before


# --- Status ----------------------------------------------------------------------------------------------


def test_set_status_is_audited(api, api_user, communication):
    response = api.post(
        f"/api/v1/communications/{communication.pk}/status/", {"status": "closed"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["status"] == "closed"
    event = AuditEvent.objects.get(actor=api_user, action=AuditEvent.Action.STATUS_CHANGED)
    assert event.communication_id == communication.pk and event.detail["via"] == "manual"


@pytest.mark.parametrize("body", [{"status": "maybe"}, {}, {"status": None}])
def test_bad_status_is_400_and_changes_nothing(api, communication, body):
    before = snapshot(communication)
    response = api.post(f"/api/v1/communications/{communication.pk}/status/", body, format="json")
    assert response.status_code == 400
    assert "status" in response.json()["errors"]
    assert snapshot(communication) == before


# --- Assign ----------------------------------------------------------------------------------------------


def test_assign_and_unassign(api, api_user, communication, nurse):
    candidates = api.get(f"/api/v1/communications/{communication.pk}/assignees/").json()
    assert {"id": nurse.pk, "name": nurse.full_name} in candidates
    response = api.post(
        f"/api/v1/communications/{communication.pk}/assign/", {"assignee": nurse.pk}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["assignee"]["id"] == nurse.pk
    response = api.post(
        f"/api/v1/communications/{communication.pk}/assign/", {"assignee": None}, format="json"
    )
    assert response.json()["assignee"] is None
    assert AuditEvent.objects.filter(actor=api_user, action=AuditEvent.Action.ASSIGNMENT_CHANGED).count() == 2


def test_assigning_someone_without_access_is_refused(api, communication, other_nurse):
    before = snapshot(communication)
    response = api.post(
        f"/api/v1/communications/{communication.pk}/assign/", {"assignee": other_nurse.pk}, format="json"
    )
    assert response.status_code == 422
    assert "no access to this patient" in response.json()["detail"]
    assert snapshot(communication) == before


@pytest.mark.parametrize("body", [{"assignee": "abc"}, {}, {"assignee": 999999}])
def test_bad_assignee_is_400_and_changes_nothing(api, communication, body):
    before = snapshot(communication)
    response = api.post(f"/api/v1/communications/{communication.pk}/assign/", body, format="json")
    assert response.status_code == 400
    assert "assignee" in response.json()["errors"]
    assert snapshot(communication) == before


# --- Link ------------------------------------------------------------------------------------------------


@pytest.fixture
def unrecognized(api_user, patient):
    communication = UnrecognizedCommunicationFactory(
        assignee=api_user, channel="sms", counterpart="+15550107777", subject=""
    )
    communication.candidate_patients.add(patient)
    MessageFactory(communication=communication, body_text="Who is this?")
    return communication


def test_unrecognized_detail_lists_only_visible_candidates(api, unrecognized, patient):
    hidden = PatientFactory(first_name="Hidden", last_name="Person")
    unrecognized.candidate_patients.add(hidden)
    body = api.get(f"/api/v1/communications/{unrecognized.pk}/").json()
    assert body["candidates"] == [{"id": patient.pk, "name": patient.full_name}]
    assert "Hidden" not in str(body)


def test_link_and_remember_adds_the_contact_method(api, api_user, unrecognized, patient):
    response = api.post(
        f"/api/v1/communications/{unrecognized.pk}/link/",
        {"patient": patient.pk, "remember": True},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["patient"]["id"] == patient.pk
    assert response.json()["is_unrecognized"] is False
    assert PatientContactMethod.objects.filter(patient=patient, kind="phone", value="+15550107777").exists()
    event = AuditEvent.objects.get(actor=api_user, action=AuditEvent.Action.LINKED)
    assert event.detail["remembered"] == "+15550107777"


def test_link_to_a_contact_implies_its_patient(api, unrecognized, patient):
    contact = ContactFactory(patient=patient)
    response = api.post(
        f"/api/v1/communications/{unrecognized.pk}/link/", {"contact": contact.pk}, format="json"
    )
    assert response.status_code == 200
    unrecognized.refresh_from_db()
    assert (unrecognized.patient_id, unrecognized.contact_id) == (patient.pk, contact.pk)


def test_linking_to_a_patient_the_caller_may_not_see_is_400_and_reveals_nothing(api, unrecognized):
    hidden = PatientFactory(first_name="Hidden", last_name="Person")
    before = snapshot(unrecognized)
    response = api.post(
        f"/api/v1/communications/{unrecognized.pk}/link/", {"patient": hidden.pk}, format="json"
    )
    assert response.status_code == 400
    assert "patient" in response.json()["errors"]
    assert "Hidden" not in response.content.decode()
    assert snapshot(unrecognized) == before


@pytest.mark.parametrize("body", [{}, {"patient": "x"}, {"remember": "sometimes"}])
def test_bad_link_is_400_and_changes_nothing(api, unrecognized, body):
    before = snapshot(unrecognized)
    response = api.post(f"/api/v1/communications/{unrecognized.pk}/link/", body, format="json")
    assert response.status_code == 400
    assert snapshot(unrecognized) == before


def test_linking_an_already_linked_communication_is_refused(api, communication, patient):
    response = api.post(
        f"/api/v1/communications/{communication.pk}/link/", {"patient": patient.pk}, format="json"
    )
    assert response.status_code == 422
    assert response.json()["detail"] == "This communication is already linked to a patient."


def test_contact_of_another_patient_is_refused(api, unrecognized, patient, api_user):
    other = PatientFactory()
    CareTeamMemberFactory(patient=other, user=api_user)
    contact = ContactFactory(patient=other)
    before = snapshot(unrecognized)
    response = api.post(
        f"/api/v1/communications/{unrecognized.pk}/link/",
        {"patient": patient.pk, "contact": contact.pk},
        format="json",
    )
    assert response.status_code == 400
    assert snapshot(unrecognized) == before
    assert Communication.objects.get(pk=unrecognized.pk).is_unrecognized
