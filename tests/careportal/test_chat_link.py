"""The signed chat link and the patient's chat page: valid, forged and expired links, the thread the patient sees
(never internal notes), the form fallback that stores raw first, and file downloads."""

import time
from types import SimpleNamespace

import pytest
from django.core import signing
from django.urls import reverse

from careportal import chat
from inbox import secure
from inbox.models import AuditEvent, Channel, Message, RawInbound
from tests.factories import (
    AttachmentFactory,
    ChatCommunicationFactory,
    CommunicationFactory,
    ContactFactory,
    MessageFactory,
    PatientContactMethodFactory,
    PatientFactory,
    SecureMessageFactory,
)

pytestmark = pytest.mark.django_db

WEEK = 7 * 24 * 3600


def token_made_seconds_ago(monkeypatch, seconds, patient, contact=None):
    """A token signed ``seconds`` ago (the signer reads ``time.time()`` from its own module)."""
    with monkeypatch.context() as patched:
        patched.setattr(signing, "time", SimpleNamespace(time=lambda: time.time() - seconds))
        return chat.make_chat_token(patient, contact=contact)


def page_url(token):
    return reverse("chat:page", kwargs={"token": token})


# --- Tokens ----------------------------------------------------------------------------------------------------


def test_a_token_names_the_patient_and_reads_back(patient):
    claims = chat.read_chat_token(chat.make_chat_token(patient))
    assert claims == chat.ChatClaims(patient_id=patient.pk, contact_id=None)


def test_a_token_for_a_contact_names_the_contact(patient):
    mother = ContactFactory(patient=patient)
    claims = chat.read_chat_token(chat.make_chat_token(patient, contact=mother))
    assert claims == chat.ChatClaims(patient_id=patient.pk, contact_id=mother.pk)


def test_a_token_cannot_name_another_patients_contact(patient):
    with pytest.raises(ValueError):
        chat.make_chat_token(patient, contact=ContactFactory())


def test_a_token_keeps_names_and_addresses_out_of_the_url(patient):
    PatientContactMethodFactory(patient=patient, value="maria.lopez@mail.example")
    token = chat.make_chat_token(patient)
    assert "maria" not in token.lower() and "lopez" not in token.lower()


def test_a_token_works_for_seven_days(monkeypatch, patient):
    token = token_made_seconds_ago(monkeypatch, WEEK - 60, patient)
    assert chat.read_chat_token(token).patient_id == patient.pk


def test_a_token_older_than_seven_days_has_expired(monkeypatch, patient):
    token = token_made_seconds_ago(monkeypatch, WEEK + 60, patient)
    with pytest.raises(chat.ChatLinkExpired):
        chat.read_chat_token(token)


@pytest.mark.parametrize(
    "token",
    ["", "nonsense", "eyJwIjoxfQ:1tXyZ:abc", "ünïcode:☃", "a" * 5000],
)
def test_a_forged_token_is_not_valid(token):
    with pytest.raises(chat.ChatLinkInvalid) as caught:
        chat.read_chat_token(token)
    assert not isinstance(caught.value, chat.ChatLinkExpired)


def test_an_altered_token_is_not_valid(patient):
    token = chat.make_chat_token(patient)
    with pytest.raises(chat.ChatLinkInvalid):
        chat.read_chat_token(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))


def test_a_token_signed_for_something_else_is_not_valid(patient):
    secure_token = secure.make_token(
        SecureMessageFactory(communication=CommunicationFactory(patient=patient))
    )
    other_salt = signing.dumps({"p": patient.pk}, salt="careportal.other")
    for token in (secure_token, other_salt, signing.dumps({"p": patient.pk})):
        with pytest.raises(chat.ChatLinkInvalid):
            chat.read_chat_token(token)


@pytest.mark.parametrize("claims", [{"p": "1"}, {"p": True}, {"p": 0}, [1], {"p": 1, "c": "x"}, {}])
def test_a_signed_token_with_malformed_claims_is_not_valid(claims):
    with pytest.raises(chat.ChatLinkInvalid):
        chat.read_chat_token(signing.dumps(claims, salt=chat.SALT))


def test_opening_a_link_finds_the_patients_chat(patient):
    conversation = ChatCommunicationFactory(patient=patient)
    CommunicationFactory(patient=patient, channel=Channel.SMS)
    session = chat.open_chat(chat.make_chat_token(patient))
    assert (session.patient, session.contact, session.communication) == (patient, None, conversation)


def test_a_contacts_link_opens_the_contacts_own_chat(patient):
    mother = ContactFactory(patient=patient, first_name="Rosa")
    ChatCommunicationFactory(patient=patient)
    theirs = ChatCommunicationFactory(patient=patient, contact=mother)
    session = chat.open_chat(chat.make_chat_token(patient, contact=mother))
    assert session.communication == theirs
    assert session.first_name == "Rosa"


def test_a_link_whose_contact_was_removed_is_not_valid(patient):
    mother = ContactFactory(patient=patient)
    token = chat.make_chat_token(patient, contact=mother)
    mother.delete()
    with pytest.raises(chat.ChatLinkInvalid):
        chat.open_chat(token)


# --- The page ---------------------------------------------------------------------------------------------------


def test_the_page_shows_the_patients_chat_without_login(client, patient):
    conversation = ChatCommunicationFactory(patient=patient)
    MessageFactory(
        communication=conversation, body_text="Can I take ibuprofen?", provider=Message.Provider.CHAT
    )
    response = client.get(page_url(chat.make_chat_token(patient)))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Can I take ibuprofen?" in html
    assert "Hi Maria" in html
    assert "The care team is typing…" in html
    assert 'data-ws-path="/ws/chat/' in html
    assert response["Cache-Control"].startswith("max-age=0")
    assert "<script>" not in html and "style=" not in html


def test_the_page_shows_staff_replies_with_their_first_name(client, patient, nurse):
    conversation = ChatCommunicationFactory(patient=patient)
    MessageFactory(
        communication=conversation, direction=Message.Direction.OUTBOUND, author=nurse,
        body_text="Yes, with food.", delivery_status=Message.DeliveryStatus.SENT,
    )  # fmt: skip
    html = client.get(page_url(chat.make_chat_token(patient))).content.decode()
    assert "Yes, with food." in html
    assert "Nora" in html and "Nurse" not in html


def test_the_page_never_shows_internal_notes(client, patient, nurse):
    conversation = ChatCommunicationFactory(patient=patient)
    MessageFactory(
        communication=conversation, direction=Message.Direction.OUTBOUND, author=nurse, is_internal_note=True,
        body_text="Staff only: check her potassium",
    )  # fmt: skip
    html = client.get(page_url(chat.make_chat_token(patient))).content.decode()
    assert "potassium" not in html


def test_the_page_shows_only_the_chat_not_other_channels(client, patient):
    sms = CommunicationFactory(patient=patient, channel=Channel.SMS)
    MessageFactory(communication=sms, body_text="An SMS about the appointment")
    html = client.get(page_url(chat.make_chat_token(patient))).content.decode()
    assert "An SMS about the appointment" not in html
    assert "No messages yet" in html


def test_the_page_escapes_what_was_written(client, patient):
    conversation = ChatCommunicationFactory(patient=patient)
    MessageFactory(communication=conversation, body_text="<script>alert(1)</script> see https://example.org")
    html = client.get(page_url(chat.make_chat_token(patient))).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="https://example.org"' in html


def test_opening_the_page_is_audited_as_the_patient(client, patient):
    conversation = ChatCommunicationFactory(patient=patient)
    client.get(page_url(chat.make_chat_token(patient)))
    event = AuditEvent.objects.get(action=AuditEvent.Action.COMMUNICATION_VIEWED)
    assert (event.communication, event.patient, event.actor, event.actor_label) == (
        conversation,
        patient,
        None,
        "patient",
    )


def test_a_forged_link_is_a_friendly_404(client):
    response = client.get(page_url("not-a-real-link"))
    assert response.status_code == 404
    assert "This chat link is not valid" in response.content.decode()


def test_an_expired_link_is_a_friendly_410(client, monkeypatch, patient):
    ChatCommunicationFactory(patient=patient)
    response = client.get(page_url(token_made_seconds_ago(monkeypatch, WEEK + 60, patient)))
    assert response.status_code == 410
    html = response.content.decode()
    assert "This chat link has expired" in html
    assert "Maria" not in html


def test_the_page_rejects_post(client, patient):
    assert client.post(page_url(chat.make_chat_token(patient))).status_code == 405


# --- The form fallback (no WebSocket) --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_form_fallback_stores_the_message_raw_first_and_files_it(client, patient):
    token = chat.make_chat_token(patient)
    client_id = "0b7c6a8e-2f7d-4b9a-9a55-1f0f4f1b2c3d"
    response = client.post(
        reverse("chat:send", kwargs={"token": token}), {"client_id": client_id, "text": "  Hello there  "}
    )
    assert response.status_code == 302 and response["Location"] == page_url(token)
    raw = RawInbound.objects.get(source=RawInbound.Source.CHAT)
    assert raw.provider_id == f"{patient.pk}:{client_id}"
    assert raw.processed_at is not None
    message = raw.message
    assert (message.body_text, message.direction, message.provider) == (
        "Hello there",
        Message.Direction.INBOUND,
        Message.Provider.CHAT,
    )
    assert message.communication.channel == Channel.CHAT
    assert message.communication.patient == patient


@pytest.mark.django_db(transaction=True)
def test_posting_the_same_form_twice_files_one_message(client, patient):
    url = reverse("chat:send", kwargs={"token": chat.make_chat_token(patient)})
    data = {"client_id": "0b7c6a8e-2f7d-4b9a-9a55-1f0f4f1b2c3d", "text": "Hello"}
    client.post(url, data)
    client.post(url, data)
    assert RawInbound.objects.filter(source=RawInbound.Source.CHAT).count() == 1
    # One patient message (outside business hours the team's automatic reply is a second, outbound one).
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1


def test_the_form_fallback_refuses_an_empty_message(client, patient):
    url = reverse("chat:send", kwargs={"token": chat.make_chat_token(patient)})
    response = client.post(url, {"client_id": "0b7c6a8e-2f7d-4b9a-9a55-1f0f4f1b2c3d", "text": "   "})
    assert response.status_code == 400
    assert "Write a message before sending." in response.content.decode()
    assert not RawInbound.objects.exists()


def test_the_form_fallback_refuses_a_message_that_is_too_long(client, patient):
    url = reverse("chat:send", kwargs={"token": chat.make_chat_token(patient)})
    response = client.post(url, {"client_id": "0b7c6a8e-2f7d-4b9a-9a55-1f0f4f1b2c3d", "text": "x" * 4001})
    assert response.status_code == 400
    assert "at most 4,000 characters" in response.content.decode()
    assert not RawInbound.objects.exists()


def test_the_form_fallback_refuses_a_forged_link(client):
    response = client.post(reverse("chat:send", kwargs={"token": "forged"}), {"text": "Hello"})
    assert response.status_code == 404
    assert not RawInbound.objects.exists()


def test_the_form_fallback_rejects_get(client, patient):
    response = client.get(reverse("chat:send", kwargs={"token": chat.make_chat_token(patient)}))
    assert response.status_code == 405


def test_a_message_not_yet_filed_shows_as_sending(client, patient):
    RawInbound.objects.create(
        source=RawInbound.Source.CHAT, provider_id=f"{patient.pk}:0b7c6a8e-2f7d-4b9a-9a55-1f0f4f1b2c3d",
        payload={"patient_id": patient.pk, "contact_id": None, "client_id": "0b7c6a8e-2f7d-4b9a-9a55-1f0f4f1b2c3d",
                 "text": "Still on its way"},
    )  # fmt: skip
    other = PatientFactory()
    RawInbound.objects.create(
        source=RawInbound.Source.CHAT,
        provider_id=f"{other.pk}:1b7c6a8e-2f7d-4b9a-9a55-1f0f4f1b2c3d",
        payload={"patient_id": other.pk, "contact_id": None, "text": "Someone else's words"},
    )
    html = client.get(page_url(chat.make_chat_token(patient))).content.decode()
    assert "Still on its way" in html and "Sending…" in html
    assert "Someone else" not in html


# --- Files the care team sent -------------------------------------------------------------------------------------


def test_the_patient_downloads_a_file_the_care_team_sent(client, patient, nurse):
    conversation = ChatCommunicationFactory(patient=patient)
    sent = MessageFactory(communication=conversation, direction=Message.Direction.OUTBOUND, author=nurse)
    attachment = AttachmentFactory(message=sent)
    token = chat.make_chat_token(patient)
    html = client.get(page_url(token)).content.decode()
    url = reverse("chat:attachment", kwargs={"token": token, "attachment_pk": attachment.pk})
    assert url in html
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    assert b"".join(response.streaming_content) == b"%PDF-1.4 synthetic"
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.ATTACHMENT_DOWNLOADED, actor_label="patient"
    ).exists()


def test_the_patient_cannot_download_files_of_other_conversations(client, patient, nurse):
    ChatCommunicationFactory(patient=patient)
    sms = CommunicationFactory(patient=patient, channel=Channel.SMS)
    elsewhere = AttachmentFactory(
        message=MessageFactory(communication=sms, direction=Message.Direction.OUTBOUND, author=nurse)
    )
    noted = AttachmentFactory(
        message=MessageFactory(
            communication=ChatCommunicationFactory(patient=PatientFactory()), direction=Message.Direction.OUTBOUND,
            author=nurse,
        )
    )  # fmt: skip
    token = chat.make_chat_token(patient)
    for attachment in (elsewhere, noted):
        url = reverse("chat:attachment", kwargs={"token": token, "attachment_pk": attachment.pk})
        assert client.get(url).status_code == 404


def test_the_patient_cannot_download_files_of_internal_notes(client, patient, nurse):
    conversation = ChatCommunicationFactory(patient=patient)
    note = MessageFactory(
        communication=conversation, direction=Message.Direction.OUTBOUND, author=nurse, is_internal_note=True
    )
    attachment = AttachmentFactory(message=note)
    url = reverse(
        "chat:attachment", kwargs={"token": chat.make_chat_token(patient), "attachment_pk": attachment.pk}
    )
    assert client.get(url).status_code == 404
