"""The rest of the unstorable-input rule (``inbox_project.unstorable``) for pages: lone surrogates cannot arrive in a
query string or form (Django decodes them as U+FFFD), uploaded file names and types are storable, and a stored header
(the User-Agent of an audit event) is cleaned rather than refused."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from inbox.models import Attachment, AuditEvent, Message
from tests.factories import CommunicationFactory, MessageFactory

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}
ENCODED_SURROGATE = "%ED%A0%80"  # UTF-8 bytes of U+D800, which no valid UTF-8 holds


@pytest.fixture
def communication(nurse, patient):
    communication = CommunicationFactory(patient=patient, assignee=nurse)
    MessageFactory(communication=communication, body_text="Can I take it with food?")
    return communication


def test_an_encoded_lone_surrogate_in_the_query_string_is_decoded_as_replacement_characters(client, nurse):
    client.force_login(nurse)
    url = reverse("careportal:inbox_rows", kwargs={"inbox": "my", "folder": "assigned"})
    response = client.get(f"{url}?q=Maria{ENCODED_SURROGATE}", **HX)
    assert response.status_code == 200
    assert response.wsgi_request.GET["q"] == "Maria\ufffd\ufffd\ufffd"


def test_an_encoded_lone_surrogate_in_a_form_is_decoded_too_and_the_reply_is_storable(
    client, nurse, communication
):
    client.force_login(nurse)
    response = client.post(
        reverse("careportal:communication_reply", args=[communication.pk]),
        f"body=Yes{ENCODED_SURROGATE}+with+food",
        content_type="application/x-www-form-urlencoded",
        **HX,
    )
    assert response.status_code != 400
    assert response.wsgi_request.POST["body"] == "Yes\ufffd\ufffd\ufffd with food"


def test_a_nul_in_an_uploaded_file_name_never_reaches_the_attachment(client, nurse, communication):
    client.force_login(nurse)
    client.post(
        reverse("careportal:communication_reply", args=[communication.pk]),
        {"body": "The form", "uploads": [SimpleUploadedFile("scan\x00.pdf", b"%PDF-1.4", "application/pdf")]},
        **HX,
    )
    names = list(
        Attachment.objects.filter(message__communication=communication).values_list("filename", flat=True)
    )
    assert names == ["scan.pdf"]


def test_an_upload_whose_type_holds_a_nul_is_refused_and_nothing_is_sent(client, nurse, communication):
    client.force_login(nurse)
    response = client.post(
        reverse("careportal:communication_reply", args=[communication.pk]),
        {"body": "The form", "uploads": [SimpleUploadedFile("scan.pdf", b"%PDF-1.4", "application/pdf\x00")]},
        **HX,
    )
    assert response.status_code == 400
    assert (
        "cannot contain NUL" in response.content.decode() and "(field: uploads)" in response.content.decode()
    )
    assert not Message.objects.filter(
        communication=communication, direction=Message.Direction.OUTBOUND
    ).exists()


def test_a_nul_in_a_form_field_is_named(client, nurse, communication):
    client.force_login(nurse)
    response = client.post(
        reverse("careportal:communication_reply", args=[communication.pk]), {"body": "Yes\x00"}, **HX
    )
    assert response.status_code == 400
    assert response.content.decode().endswith("(field: body)")


def test_a_nul_in_the_user_agent_is_dropped_from_the_audit_event(client, nurse, patient):
    client.force_login(nurse)
    client.get(reverse("careportal:patient_detail", args=[patient.pk]), HTTP_USER_AGENT="Phone\x00/1.0")
    event = AuditEvent.objects.get(action=AuditEvent.Action.PATIENT_VIEWED)
    assert event.user_agent == "Phone/1.0"
