"""The reply box through HTTP: Send and Close (the default), Send and keep Open, sanitised email HTML, secure
email, the SMS sending line, attachments (documents and uploads with their limits), and refusals that change
nothing: Unrecognized, empty, no access."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from inbox.models import AuditEvent, Channel, Communication, Message
from tests.factories import (
    CommunicationFactory,
    DocumentFactory,
    MessageFactory,
    PatientFactory,
    SendingLineFactory,
    UnrecognizedCommunicationFactory,
)

HX = {"HTTP_HX_REQUEST": "true"}


def reply_url(communication) -> str:
    return reverse("careportal:communication_reply", args=[communication.pk])


@pytest.fixture
def email(nurse, patient):
    communication = CommunicationFactory(patient=patient, assignee=nurse, counterpart="maria@mail.example")
    MessageFactory(communication=communication, email_message_id="<first@mail.example>")
    return communication


def outbound(communication):
    return communication.messages.filter(direction=Message.Direction.OUTBOUND)


def test_send_closes_by_default_and_returns_the_fresh_conversation(client, nurse, email):
    client.force_login(nurse)
    response = client.post(reply_url(email), {"body_html": "<p>See you <b>Monday</b>.</p>"}, **HX)
    assert response.status_code == 200
    email.refresh_from_db()
    assert email.status == Communication.Status.CLOSED
    (message,) = outbound(email)
    assert message.body_html == "<p>See you <b>Monday</b>.</p>" and message.body_text == "See you Monday."
    html = response.content.decode()
    assert html.lstrip().startswith('<div class="conversation"') and "data-sent" in html
    assert "See you <b>Monday</b>." in html
    assert response["HX-Trigger"] == f'{{"inbox:changed": {{"ids": [{email.pk}]}}}}'
    assert AuditEvent.objects.filter(action=AuditEvent.Action.MESSAGE_SENT, communication=email).exists()


def test_send_and_keep_open_leaves_it_open(client, nurse, email):
    client.force_login(nurse)
    response = client.post(reply_url(email), {"body_html": "<p>Will check.</p>", "close": "0"}, **HX)
    assert response.status_code == 200
    email.refresh_from_db()
    assert email.status == Communication.Status.OPEN
    assert outbound(email).count() == 1


def test_script_in_reply_html_never_reaches_the_page_or_the_database(client, nurse, email):
    client.force_login(nurse)
    body = '<p onmouseover="x()">Hello</p><script>alert("pwned")</script><a href="javascript:evil()">link</a>'
    html = client.post(reply_url(email), {"body_html": body}, **HX).content.decode()
    message = outbound(email).get()
    assert "<script" not in message.body_html and "javascript:" not in message.body_html
    assert "onmouseover" not in message.body_html
    assert 'alert("pwned")' not in html and "javascript:evil" not in html and "onmouseover" not in html


def test_a_refused_send_redisplays_the_draft_sanitised_with_a_clear_message(client, nurse, patient):
    unknown = UnrecognizedCommunicationFactory(assignee=nurse)
    unknown.candidate_patients.add(patient)
    client.force_login(nurse)
    # Secure email needs a patient: refused even when the unlinked recipient is confirmed.
    data = {
        "body_html": "<p>Hi</p><script>bad()</script>",
        "is_secure": "on",
        "confirm_unlinked_recipient": "1",
    }
    response = client.post(reply_url(unknown), data, **HX)
    assert response.status_code == 422
    assert response["HX-Retarget"] == "#reply-box" and response["HX-Reswap"] == "outerHTML"
    assert "A secure email needs a patient" in response.content.decode()
    assert not outbound(unknown).exists()
    unknown.refresh_from_db()
    assert unknown.status == Communication.Status.OPEN


def test_an_empty_reply_is_refused(client, nurse, email):
    client.force_login(nurse)
    response = client.post(reply_url(email), {"body_html": "<p> </p>"}, **HX)
    assert response.status_code == 422
    assert "Write a message or attach a file before sending." in response.content.decode()
    assert not outbound(email).exists()


def test_a_malformed_document_id_is_refused_clearly(client, nurse, email):
    client.force_login(nurse)
    response = client.post(reply_url(email), {"body": "Hi", "document": ["x"]}, **HX)
    assert response.status_code == 422
    assert "Choose documents from the list." in response.content.decode()
    assert not outbound(email).exists()


def test_an_sms_draft_comes_back_after_a_refusal(client, nurse, patient):
    line = SendingLineFactory()
    sms = CommunicationFactory(
        patient=patient, channel=Channel.SMS, sending_line=line, counterpart="+15550102030"
    )
    client.force_login(nurse)
    response = client.post(reply_url(sms), {"body": "x" * 1601}, **HX)
    assert response.status_code == 422
    assert "An SMS can hold at most 1600 characters." in response.content.decode()
    assert ("x" * 1601) in response.content.decode()


def test_secure_email_reply_is_marked_secure(client, nurse, email):
    client.force_login(nurse)
    client.post(reply_url(email), {"body_html": "<p>Your results</p>", "is_secure": "on"}, **HX)
    assert outbound(email).get().is_secure


def test_secure_is_ignored_outside_email(client, nurse, patient):
    line = SendingLineFactory()
    sms = CommunicationFactory(
        patient=patient, channel=Channel.SMS, sending_line=line, counterpart="+15550102030"
    )
    client.force_login(nurse)
    response = client.post(reply_url(sms), {"body": "Hi", "is_secure": "on"}, **HX)
    assert response.status_code == 200
    assert not outbound(sms).get().is_secure


def test_sms_reply_uses_the_picked_line_when_the_communication_has_none(client, nurse, patient):
    SendingLineFactory(label="Main")
    cardiology = SendingLineFactory(label="Cardiology")
    sms = CommunicationFactory(patient=patient, channel=Channel.SMS, counterpart="+15550102030")
    client.force_login(nurse)
    html = client.get(reverse("careportal:communication", args=[sms.pk]), **HX).content.decode()
    assert 'name="sending_line"' in html and "Cardiology" in html
    client.post(reply_url(sms), {"body": "Hi", "sending_line": cardiology.pk}, **HX)
    sms.refresh_from_db()
    assert sms.sending_line == cardiology


def test_a_patient_document_can_be_attached(client, nurse, email):
    document = DocumentFactory(patient=email.patient, name="care-plan.pdf")
    client.force_login(nurse)
    response = client.post(reply_url(email), {"body": "Attached.", "document": [document.pk]}, **HX)
    assert response.status_code == 200
    assert outbound(email).get().attachments.get().document == document


def test_another_patients_document_is_refused(client, nurse, email):
    foreign = DocumentFactory(patient=PatientFactory())
    client.force_login(nurse)
    response = client.post(reply_url(email), {"body": "Attached.", "document": [foreign.pk]}, **HX)
    assert response.status_code == 422
    assert "does not belong to this patient" in response.content.decode()
    assert not outbound(email).exists()


def test_an_upload_becomes_a_patient_document(client, nurse, email):
    client.force_login(nurse)
    upload = SimpleUploadedFile("notes.pdf", b"%PDF-1.4 hello", content_type="application/pdf")
    response = client.post(reply_url(email), {"body": "See attached", "uploads": [upload]}, **HX)
    assert response.status_code == 200
    attachment = outbound(email).get().attachments.get()
    assert attachment.document.patient == email.patient and attachment.filename == "notes.pdf"


def test_an_oversize_upload_is_refused_with_the_limit_and_nothing_is_sent(client, nurse, email, settings):
    settings.MAX_UPLOAD_BYTES = 1024 * 1024
    client.force_login(nurse)
    upload = SimpleUploadedFile("scan.pdf", b"x" * (1024 * 1024 + 1), content_type="application/pdf")
    response = client.post(reply_url(email), {"body": "Scan", "uploads": [upload]}, **HX)
    assert response.status_code == 422
    assert "“scan.pdf” is larger than the 1.0\xa0MB limit." in response.content.decode()
    assert not outbound(email).exists()
    assert not email.patient.documents.exists()


def test_an_upload_of_a_forbidden_type_is_refused(client, nurse, email):
    client.force_login(nurse)
    upload = SimpleUploadedFile("run.exe", b"MZ", content_type="application/x-msdownload")
    response = client.post(reply_url(email), {"body": "Here", "uploads": [upload]}, **HX)
    assert response.status_code == 422
    assert "is not an allowed file type" in response.content.decode()


def test_without_htmx_a_reply_redirects_back_to_the_list(client, nurse, email):
    client.force_login(nurse)
    next_url = f"/inbox/my/assigned/?c={email.pk}"
    response = client.post(reply_url(email), {"body": "Hi", "next": next_url})
    assert response.status_code == 302 and response["Location"] == next_url
    response = client.post(reply_url(email), {"body": "Hi", "next": "https://evil.example/"})
    assert response["Location"] == f"/inbox/my/assigned/?c={email.pk}"


def test_without_htmx_a_refusal_is_flashed(client, nurse, patient):
    unknown = UnrecognizedCommunicationFactory(assignee=nurse)
    client.force_login(nurse)
    response = client.post(reply_url(unknown), {"body": "Hi"}, follow=True)
    assert f"{unknown.counterpart} is not linked to a patient." in response.content.decode()


def test_reply_rejects_get(client, nurse, email):
    client.force_login(nurse)
    assert client.get(reply_url(email), **HX).status_code == 405


def test_reply_by_a_user_without_access_is_404_and_sends_nothing(client, other_nurse, email):
    client.force_login(other_nurse)
    response = client.post(reply_url(email), {"body": "Hi"}, **HX)
    assert response.status_code == 404 and b"Lopez" not in response.content
    assert not outbound(email).exists()


def test_reply_needs_sign_in(client, email):
    response = client.post(reply_url(email), {"body": "Hi"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
