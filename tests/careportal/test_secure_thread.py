"""The thread on the secure message page: a verified session reads its own communication (never internal notes,
never another communication), downloads the care team's attachments, and every view is audited."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inbox.models import AuditEvent, Message, RawInbound
from inbox.secure import make_token
from tests.careportal.secure_support import (
    ADDRESS,
    MASKED,
    SECRET_TEXT,
    SUBJECT,
    secure_conversation,
    url,
    verify,
)
from tests.factories import AttachmentFactory, MessageFactory, PatientFactory

pytestmark = pytest.mark.django_db

VIEWED = AuditEvent.Action.COMMUNICATION_VIEWED


@pytest.fixture
def message(nurse, patient):
    return secure_conversation(nurse, patient)


@pytest.fixture
def verified(client, message):
    verify(client, message)
    return client


def test_a_verified_session_sees_the_thread_both_ways(verified, message):
    response = verified.get(url("thread", message))
    assert response.status_code == 200
    page = response.content.decode()
    assert SUBJECT in page
    assert "Are my lab results back?" in page
    assert SECRET_TEXT in page
    assert page.index("Are my lab results back?") < page.index(SECRET_TEXT)
    assert f"Verified as <strong>{MASKED}</strong>" in page
    assert "no-store" in response["Cache-Control"]


def test_staff_are_shown_by_first_name_and_title(verified, message, nurse):
    page = verified.get(url("thread", message)).content.decode()
    assert "Nora, RN" in page
    assert nurse.last_name not in page
    assert nurse.username not in page


def test_times_are_shown_in_the_patients_time_zone(verified, message, patient):
    patient.time_zone = "Asia/Tokyo"
    patient.save()
    sent = dt.datetime(2026, 3, 2, 1, 30, tzinfo=dt.UTC)
    Message.objects.filter(pk=message.pk).update(created_at=sent)
    page = verified.get(url("thread", message)).content.decode()
    assert "Mar 2, 2026 · 10:30 AM" in page


def test_without_a_verified_session_it_asks_for_a_code(client, message):
    token = make_token(message)
    response = client.get(url("thread", token))
    assert response.status_code == 302
    assert response["Location"] == url("start", token)
    assert SECRET_TEXT not in client.get(response["Location"]).content.decode()
    assert not AuditEvent.objects.filter(action=VIEWED).exists()


def test_a_session_verified_for_one_communication_cannot_see_another(verified, message, nurse, patient):
    other = secure_conversation(nurse, patient, address="maria.work@mail.example")
    other.body_text = "Another private message"
    other.save()
    response = verified.get(url("thread", other))
    assert response.status_code == 302
    assert "Another private message" not in verified.get(url("thread", other), follow=True).content.decode()


def test_the_session_lasts_thirty_minutes(verified, message):
    session = verified.session
    key = str(message.communication.pk)
    session["secure_access"] = {key: (timezone.now() - dt.timedelta(seconds=1)).timestamp()}
    session.save()
    response = verified.get(url("thread", message))
    assert response.status_code == 302
    assert "please confirm it’s you" in verified.get(response["Location"]).content.decode()


def test_signing_out_ends_the_session(verified, message):
    token = make_token(message)
    response = verified.post(url("sign_out", token))
    assert response.status_code == 302
    assert verified.get(url("thread", token)).status_code == 302


def test_internal_notes_are_never_shown(verified, message, nurse):
    MessageFactory(
        communication=message.communication, direction=Message.Direction.OUTBOUND, author=nurse,
        is_internal_note=True, body_text="Staff only: check her potassium", body_html="<p>Staff only: check her potassium</p>",
    )  # fmt: skip
    page = verified.get(url("thread", message)).content.decode()
    assert "potassium" not in page


def test_script_in_a_message_never_reaches_the_page(verified, message):
    MessageFactory(
        communication=message.communication,
        body_text="hello",
        body_html='<p onclick="steal()">hello</p><script>alert(1)</script><img src=x onerror=alert(2)>',
    )
    page = verified.get(url("thread", message)).content.decode()
    assert "<p>hello</p>" in page
    assert "alert(" not in page and "onerror" not in page and "onclick" not in page


def test_every_view_is_audited_as_the_patient(verified, message):
    verified.get(url("thread", message), REMOTE_ADDR="198.51.100.7", HTTP_USER_AGENT="PatientPhone/1.0")
    verified.get(url("thread", message))
    events = AuditEvent.objects.filter(action=VIEWED).order_by("id")
    assert events.count() == 2
    first = events.first()
    assert first.actor is None
    assert first.actor_label == f"patient {MASKED}"
    assert first.detail == {"via": "secure_page"}
    assert first.communication == message.communication
    assert first.patient == message.communication.patient
    assert (first.ip, first.user_agent) == ("198.51.100.7", "PatientPhone/1.0")


def test_it_rejects_post_on_the_thread(verified, message):
    assert verified.post(url("thread", message)).status_code == 405


# --- Attachments -----------------------------------------------------------------------------------------------


def test_the_care_teams_attachments_download_with_safe_headers(verified, message):
    attachment = AttachmentFactory(message=message)
    page = verified.get(url("thread", message)).content.decode()
    link = url("attachment", message, attachment_pk=attachment.pk)
    assert "lab-results.pdf" in page
    response = verified.get(link)
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert 'filename="lab-results.pdf"' in response["Content-Disposition"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"] == "application/pdf"
    assert b"".join(response.streaming_content) == b"%PDF-1.4 synthetic"
    event = AuditEvent.objects.get(action=AuditEvent.Action.ATTACHMENT_DOWNLOADED)
    assert (event.actor_label, event.object_id, event.detail) == (
        f"patient {MASKED}",
        str(attachment.pk),
        {"via": "secure_page"},
    )


def test_an_unsafe_type_downloads_as_octet_stream(verified, message):
    attachment = AttachmentFactory(message=message, content_type="text/html")
    response = verified.get(url("attachment", message, attachment_pk=attachment.pk))
    assert response["Content-Type"] == "application/octet-stream"


def test_attachments_need_a_verified_session(client, message):
    attachment = AttachmentFactory(message=message)
    response = client.get(url("attachment", message, attachment_pk=attachment.pk))
    assert response.status_code == 302
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.ATTACHMENT_DOWNLOADED).exists()


def test_attachments_of_other_communications_internal_notes_or_inbound_messages_are_not_found(
    verified, message, nurse, patient
):
    elsewhere = secure_conversation(nurse, PatientFactory(), address="someone@mail.example")
    note = MessageFactory(
        communication=message.communication, direction=Message.Direction.OUTBOUND, is_internal_note=True
    )
    inbound = MessageFactory(communication=message.communication, sender_address=ADDRESS)
    for owner in (elsewhere, note, inbound):
        attachment = AttachmentFactory(message=owner, document__patient=owner.communication.patient)
        assert verified.get(url("attachment", message, attachment_pk=attachment.pk)).status_code == 404
    assert verified.get(url("attachment", message, attachment_pk=999999)).status_code == 404


def test_it_rejects_post_on_an_attachment(verified, message):
    attachment = AttachmentFactory(message=message)
    assert verified.post(url("attachment", message, attachment_pk=attachment.pk)).status_code == 405


def test_a_reply_not_yet_filed_shows_as_sending_escaped(verified, message):
    RawInbound.objects.create(
        source=RawInbound.Source.SECURE_REPLY,
        provider_id="secure:pending",
        payload={"communication_id": message.communication.pk, "text": "<b>On its way</b>"},
    )
    page = verified.get(url("thread", message)).content.decode()
    assert "Sending…" in page
    assert "&lt;b&gt;On its way&lt;/b&gt;" in page


def test_the_thread_takes_the_same_number_of_queries_however_long_it_is(verified, message, nurse):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert verified.get(url("thread", message)).status_code == 200
        return len(captured)

    short = queries()
    for n in range(8):
        reply = MessageFactory(
            communication=message.communication, direction=Message.Direction.OUTBOUND, author=nurse,
            body_text=f"Follow-up {n}",
        )  # fmt: skip
        AttachmentFactory(message=reply)
    assert queries() == short
