"""Replying on the secure message page: the reply is stored raw first, then the ingestion pipeline files it as a
secure inbound message that reopens the communication, is audited as the patient's and is published on commit."""

import pytest

from inbox.ingest.pipeline import process
from inbox.models import AuditEvent, Communication, Message, RawInbound
from inbox.secure import make_token
from tests.careportal.secure_support import (
    ADDRESS,
    MASKED,
    secure_conversation,
    url,
    verify,
)
from tests.factories import ContactFactory, SecureMessageFactory

pytestmark = pytest.mark.django_db(transaction=True)  # the reply is filed on commit of its raw item

NONCE = "n" * 24


@pytest.fixture
def message(nurse, patient):
    return secure_conversation(nurse, patient)


@pytest.fixture
def verified(client, message):
    verify(client, message)
    return client


def secure_replies():
    return Message.objects.filter(provider=Message.Provider.SECURE_PORTAL)


def test_a_reply_is_stored_raw_first_and_lands_as_a_secure_inbound_message(verified, message, patient):
    communication = message.communication
    assert communication.status == Communication.Status.CLOSED
    token = make_token(message)  # one link: a token made a second later is signed differently
    response = verified.post(url("reply", token), {"text": "Thank you! Should I repeat it?", "nonce": NONCE})
    assert response.status_code == 302
    assert response["Location"] == url("thread", token)

    raw = RawInbound.objects.get(source=RawInbound.Source.SECURE_REPLY)
    assert raw.payload["communication_id"] == communication.pk
    assert raw.payload["text"] == "Thank you! Should I repeat it?"
    assert raw.payload["sender_address"] == ADDRESS
    assert raw.processed_at is not None and raw.error == ""

    reply = secure_replies().get()
    assert raw.message == reply
    assert reply.communication == communication
    assert reply.direction == Message.Direction.INBOUND
    assert reply.is_secure is True
    assert reply.sender_address == ADDRESS
    assert reply.sender_name == patient.full_name
    assert reply.body_text == "Thank you! Should I repeat it?"
    assert reply.body_html == "<p>Thank you! Should I repeat it?</p>"
    assert reply.subject == "Lab results from Tuesday"
    assert reply.delivery_status == Message.DeliveryStatus.RECEIVED

    communication.refresh_from_db()
    assert communication.status == Communication.Status.OPEN
    assert communication.channel == "email"
    assert communication.last_message_direction == Message.Direction.INBOUND
    assert communication.last_message_preview == "Thank you! Should I repeat it?"


def test_the_reply_shows_in_the_thread_with_a_confirmation(verified, message):
    response = verified.post(url("reply", message), {"text": "See you Monday", "nonce": NONCE}, follow=True)
    page = response.content.decode()
    assert "Your reply was sent securely to your care team." in page
    assert "See you Monday" in page


def test_the_reply_is_audited_as_the_patient(verified, message):
    verified.post(
        url("reply", message), {"text": "Thanks", "nonce": NONCE}, REMOTE_ADDR="198.51.100.7",
        HTTP_USER_AGENT="PatientPhone/1.0",
    )  # fmt: skip
    reply = secure_replies().get()
    event = AuditEvent.objects.get(action=AuditEvent.Action.MESSAGE_RECEIVED)
    assert event.actor is None
    assert event.actor_label == f"patient {MASKED}"
    assert event.communication == message.communication
    assert event.patient == message.communication.patient
    assert event.object_id == str(reply.pk)
    assert event.detail["via"] == "secure_page" and event.detail["secure"] is True
    assert (event.ip, event.user_agent) == ("198.51.100.7", "PatientPhone/1.0")


def test_the_change_is_published_after_commit(verified, message, monkeypatch):
    published = []
    monkeypatch.setattr("inbox.events._send", lambda groups, event: published.append((groups, event)))
    verified.post(url("reply", message), {"text": "Thanks", "nonce": NONCE})
    communication = message.communication
    assert (
        [f"communication.{communication.pk}", "inbox.live"],
        {"type": "communication.changed", "communication_id": communication.pk, "kind": "message"},
    ) in published


def test_a_double_submit_gives_one_message(verified, message):
    for _ in range(3):
        assert (
            verified.post(url("reply", message), {"text": "Only once please", "nonce": NONCE}).status_code
            == 302
        )
    assert RawInbound.objects.filter(source=RawInbound.Source.SECURE_REPLY).count() == 1
    assert secure_replies().count() == 1


def test_a_different_text_with_a_reused_form_is_not_lost(verified, message):
    verified.post(url("reply", message), {"text": "First", "nonce": NONCE})
    verified.post(url("reply", message), {"text": "Second", "nonce": NONCE})
    assert sorted(secure_replies().values_list("body_text", flat=True)) == ["First", "Second"]


def test_each_rendering_of_the_form_has_its_own_nonce(verified, message):
    first = verified.get(url("thread", message)).content.decode()
    second = verified.get(url("thread", message)).content.decode()
    nonce = 'name="nonce" value="'
    assert first.split(nonce)[1][:20] != second.split(nonce)[1][:20]


def test_processing_the_same_raw_item_again_changes_nothing(verified, message):
    verified.post(url("reply", message), {"text": "Thanks", "nonce": NONCE})
    raw = RawInbound.objects.get(source=RawInbound.Source.SECURE_REPLY)
    assert process(raw.pk) == "already processed"
    RawInbound.objects.filter(pk=raw.pk).update(processed_at=None)
    assert process(raw.pk) == "processed"
    assert secure_replies().count() == 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.MESSAGE_RECEIVED).count() == 1


def test_script_in_a_reply_never_reaches_html(verified, message):
    text = '<script>alert("x")</script><img src=x onerror=alert(1)> Is this OK?'
    verified.post(url("reply", message), {"text": text, "nonce": NONCE})
    reply = secure_replies().get()
    assert reply.body_text == text
    assert "<script" not in reply.body_html and "<img" not in reply.body_html
    assert "&lt;script&gt;" in reply.body_html
    page = verified.get(url("thread", message)).content.decode()
    assert '<script>alert("x")' not in page and "<img src=x" not in page


def test_an_empty_reply_is_refused_and_stores_nothing(verified, message):
    response = verified.post(url("reply", message), {"text": "   ", "nonce": NONCE})
    assert response.status_code == 200
    assert "Write a message before sending." in response.content.decode()
    assert not RawInbound.objects.exists()


def test_a_reply_without_a_valid_nonce_is_refused_and_keeps_the_text(verified, message):
    response = verified.post(url("reply", message), {"text": "Keep me", "nonce": "short"})
    assert response.status_code == 200
    assert "Keep me" in response.content.decode()
    assert not RawInbound.objects.exists()


def test_a_reply_that_is_too_long_is_refused(verified, message):
    response = verified.post(url("reply", message), {"text": "x" * 10_001, "nonce": NONCE})
    assert response.status_code == 200
    assert "at most 10,000 characters" in response.content.decode()


def test_without_a_verified_session_nothing_is_stored_and_the_draft_waits(client, message):
    token = make_token(message)
    response = client.post(url("reply", token), {"text": "Written before the session ended", "nonce": NONCE})
    assert response.status_code == 302
    assert response["Location"] == url("start", token)
    assert not RawInbound.objects.exists()
    verify(client, message)
    page = client.get(url("thread", token)).content.decode()
    assert "Written before the session ended</textarea>" in page


def test_a_session_for_one_communication_cannot_reply_to_another(verified, message, nurse, patient):
    other = secure_conversation(nurse, patient, address="maria.work@mail.example")
    response = verified.post(url("reply", other), {"text": "Sneaky", "nonce": NONCE})
    assert response.status_code == 302
    assert not RawInbound.objects.exists()


def test_a_database_outage_keeps_the_text_and_says_so(verified, message, monkeypatch):
    from django.db import OperationalError

    def down(**kwargs):
        raise OperationalError("database is down")

    monkeypatch.setattr("inbox.ingest.raw.store_raw", down)
    response = verified.post(url("reply", message), {"text": "Please keep this", "nonce": NONCE})
    assert response.status_code == 503
    page = response.content.decode()
    assert "could not send your reply" in page and "Please keep this" in page


def test_it_rejects_get_on_reply(verified, message):
    assert verified.get(url("reply", message)).status_code == 405


def test_a_reply_from_a_contacts_address_is_filed_under_the_contacts_name(client, nurse, patient):
    mother = ContactFactory(patient=patient, first_name="Rosa", last_name="Lopez", email="rosa@mail.example")
    message = secure_conversation(nurse, patient)
    communication = message.communication
    communication.contact, communication.counterpart = mother, mother.email
    communication.save()
    to_mother = SecureMessageFactory(communication=communication, author=nurse)
    verify(client, to_mother)
    client.post(url("reply", to_mother), {"text": "Thanks, I'll tell her.", "nonce": NONCE})
    reply = secure_replies().get()
    assert (reply.sender_name, reply.sender_address) == ("Rosa Lopez", "rosa@mail.example")


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"communication_id": "1", "text": "hi", "sender_address": ADDRESS},
        {"communication_id": 1, "text": "  ", "sender_address": ADDRESS},
        {"communication_id": 1, "text": "hi", "sender_address": "nobody"},
        {"communication_id": 999999, "text": "hi", "sender_address": ADDRESS},
    ],
)
def test_a_malformed_secure_reply_is_kept_with_its_error(message, payload):
    raw = RawInbound.objects.create(
        source=RawInbound.Source.SECURE_REPLY, provider_id="secure:bad", payload=payload
    )
    assert process(raw.pk) == "failed"
    raw.refresh_from_db()
    assert raw.error and raw.processed_at is None and raw.attempts == 1
    assert not secure_replies().exists()
