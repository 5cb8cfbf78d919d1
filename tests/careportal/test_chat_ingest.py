"""Filing chat messages through the ingestion pipeline (``inbox.ingest.chat``): one chat per patient (or contact),
idempotent by client id, and a bad item keeps its error on the raw row instead of filing anything."""

import pytest

from inbox.ingest import pipeline
from inbox.models import AuditEvent, Channel, Communication, Message, RawInbound
from inbox.tasks import sweep_unprocessed
from tests.factories import (
    ChatCommunicationFactory,
    ContactFactory,
    FeatureSettingFactory,
    PatientFactory,
    RawInboundFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _team_always_answering(db):
    FeatureSettingFactory(key="chat_business_hours", is_enabled=False)


def chat_item(patient_id, text="Hello", *, contact_id=None, client="00000000-0000-4000-8000-000000000001"):
    return RawInboundFactory(
        source=RawInbound.Source.CHAT,
        provider_id=f"{patient_id}:{client}",
        payload={"patient_id": patient_id, "contact_id": contact_id, "client_id": client, "text": text},
        envelope={"remote_addr": "203.0.113.9", "user_agent": "Mobile Safari", "reply_channel": ""},
    )


def test_the_pipeline_files_a_chat_item_as_an_inbound_chat_message(patient):
    raw = chat_item(patient.pk, "  Can I refill my prescription?  ")
    assert pipeline.process(raw.pk) == "processed"
    raw.refresh_from_db()
    message = raw.message
    assert message.body_text == "Can I refill my prescription?"
    assert (message.direction, message.provider, message.provider_id) == (
        Message.Direction.INBOUND,
        Message.Provider.CHAT,
        raw.provider_id,
    )
    assert message.created_at == raw.received_at
    assert message.communication.channel == Channel.CHAT
    event = AuditEvent.objects.get(action=AuditEvent.Action.MESSAGE_RECEIVED)
    assert (event.actor_label, event.ip, event.user_agent) == ("patient", "203.0.113.9", "Mobile Safari")
    assert event.detail["via"] == "chat_page" and event.detail["new_communication"] is True


def test_processing_a_chat_item_twice_files_one_message(patient):
    raw = chat_item(patient.pk)
    pipeline.process(raw.pk)
    RawInbound.objects.filter(pk=raw.pk).update(processed_at=None)  # as if the worker died before marking it
    assert pipeline.process(raw.pk) == "processed"
    assert Message.objects.count() == 1


def test_every_message_of_a_patient_joins_their_one_chat(patient):
    for n in range(3):
        pipeline.process(
            chat_item(patient.pk, f"Message {n}", client=f"00000000-0000-4000-8000-00000000000{n}").pk
        )
    assert Communication.objects.get().messages.count() == 3


def test_a_contacts_messages_make_their_own_chat(patient):
    mother = ContactFactory(patient=patient)
    pipeline.process(chat_item(patient.pk).pk)
    pipeline.process(
        chat_item(patient.pk, contact_id=mother.pk, client="00000000-0000-4000-8000-000000000002").pk
    )
    assert set(Communication.objects.values_list("contact", flat=True)) == {None, mother.pk}


def test_an_existing_chat_is_joined_not_duplicated(patient):
    conversation = ChatCommunicationFactory(patient=patient)
    pipeline.process(chat_item(patient.pk).pk)
    assert Communication.objects.get() == conversation


@pytest.mark.parametrize(
    "payload, error",
    [
        ({"contact_id": None, "text": "Hi"}, "names no patient"),
        ({"patient_id": "12", "text": "Hi"}, "names no patient"),
        ({"patient_id": 999999, "text": "Hi"}, "Patient 999999 does not exist."),
        ({"patient_id": "PATIENT", "text": "   "}, "has no text"),
        ({"patient_id": "PATIENT", "contact_id": "x", "text": "Hi"}, "invalid contact"),
        (
            {"patient_id": "PATIENT", "contact_id": "OTHER_CONTACT", "text": "Hi"},
            "is not a contact of patient",
        ),
        ({"patient_id": "PATIENT", "text": "x" * 4001}, "longer than 4000"),
    ],
)
def test_a_bad_chat_item_keeps_its_error_and_files_nothing(patient, payload, error):
    other_contact = ContactFactory(patient=PatientFactory())
    swap = {"PATIENT": patient.pk, "OTHER_CONTACT": other_contact.pk}
    payload = {
        key: swap.get(value, value) if isinstance(value, str) else value for key, value in payload.items()
    }
    raw = RawInboundFactory(source=RawInbound.Source.CHAT, provider_id="bad:1", payload=payload)
    assert pipeline.process(raw.pk) == "failed"
    raw.refresh_from_db()
    assert error in raw.error and raw.attempts == 1 and raw.processed_at is None
    assert not Message.objects.exists() and not Communication.objects.exists()


def test_an_unprocessed_chat_item_is_picked_up_by_the_sweeper(patient, settings):
    settings.INBOUND_SWEEP_GRACE_SECONDS = 0
    raw = chat_item(patient.pk)
    assert sweep_unprocessed() == 1
    raw.refresh_from_db()
    assert raw.processed_at is not None and raw.message is not None
