"""Inbound SMS: (patient, line) communications, unrecognized numbers, direct lines, keywords, MMS media, and
Twilio status callbacks for outbound SMS."""

import pytest
import requests
from django.utils import timezone

from inbox.errors import ReplyNotAllowed
from inbox.ingest import sms as sms_ingest
from inbox.ingest.pipeline import process
from inbox.ingest.raw import store_raw
from inbox.ingest.sms import download_media as real_download_media
from inbox.ingest.status import status_provider_id
from inbox.models import AuditEvent, Channel, Communication, Message, RawInbound
from inbox.services import ReplyContent, send_reply
from tests.factories import (
    CommunicationFactory,
    ContactFactory,
    MessageFactory,
    PatientContactMethodFactory,
    PatientFactory,
    SendingLineFactory,
)
from tests.inbox.ingest_support import (  # noqa: F401  (eager_celery, hook_secrets: autouse fixtures)
    eager_celery,
    hook_secrets,
    receive_sms,
    sms_filing,
)

# Every test runs twice: filed one by one (eager mode, the sweeper) and by the worker's batch drain.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sms_filing")]

MARIA = "+15550102030"


@pytest.fixture
def line(db):
    return SendingLineFactory(number="+15550100000", label="Main clinic")


@pytest.fixture
def maria_phone(patient):
    return PatientContactMethodFactory(patient=patient, kind="phone", value=MARIA)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    def refuse(url, **kwargs):
        raise AssertionError(f"network access in a test: {url}")

    monkeypatch.setattr(sms_ingest, "download_media", refuse)


def test_sms_from_a_recognized_number_joins_the_patient_line_communication_and_reopens(
    patient, maria_phone, line
):
    existing = CommunicationFactory(
        channel=Channel.SMS, patient=patient, sending_line=line, counterpart=MARIA,
        status=Communication.Status.CLOSED, closed_at=timezone.now(),
    )  # fmt: skip
    raw = receive_sms(sender=MARIA, to=line.number, body="Running late")
    existing.refresh_from_db()
    assert raw.message.communication == existing
    assert existing.status == Communication.Status.OPEN
    assert existing.last_message_preview == "Running late"
    assert raw.message.provider == Message.Provider.TWILIO and raw.message.recipient_address == line.number


def test_first_sms_from_a_recognized_number_creates_its_line_communication(patient, maria_phone, line):
    first = receive_sms(sender=MARIA, to=line.number, body="One").message.communication
    second = receive_sms(sender=MARIA, to=line.number, body="Two").message.communication
    assert first == second
    assert (first.channel, first.patient, first.sending_line, first.is_unrecognized) == (
        Channel.SMS, patient, line, False,
    )  # fmt: skip
    assert first.messages.count() == 2


def test_each_sending_line_makes_its_own_communication(patient, maria_phone, line):
    other_line = SendingLineFactory(number="+15550100009")
    a = receive_sms(sender=MARIA, to=line.number).message.communication
    b = receive_sms(sender=MARIA, to=other_line.number).message.communication
    assert a != b and {a.sending_line, b.sending_line} == {line, other_line}


def test_sms_from_a_contact_links_the_contact(patient, line):
    caregiver = ContactFactory(patient=patient, phone="+15550109999")
    communication = receive_sms(sender="+15550109999", to=line.number).message.communication
    assert (communication.patient, communication.contact) == (patient, caregiver)


def test_an_sms_is_shown_with_the_name_of_who_sent_it_when_they_are_recognized(patient, maria_phone, line):
    caregiver = ContactFactory(patient=patient, phone="+15550109999", first_name="Rosa", last_name="Lopez")
    assert receive_sms(sender=MARIA, to=line.number, body="a").message.sender_name == patient.full_name
    assert receive_sms(sender=caregiver.phone, to=line.number, body="b").message.sender_name == "Rosa Lopez"
    assert (
        receive_sms(sender="+15550107777", to=line.number, body="c").message.sender_name == ""
    )  # the number


def test_sms_from_another_number_of_the_patient_joins_and_replies_go_to_it(patient, maria_phone, line):
    PatientContactMethodFactory(patient=patient, kind="phone", value="+15550104444")
    first = receive_sms(sender=MARIA, to=line.number).message.communication
    second = receive_sms(sender="+15550104444", to=line.number).message.communication
    assert first == second
    second.refresh_from_db()
    assert second.counterpart == "+15550104444"


def test_inbound_sms_from_unknown_number_is_its_own_unrecognized_communication(line):
    first = receive_sms(sender="+15550107777", to=line.number, body="Hello?").message.communication
    second = receive_sms(sender="+15550107777", to=line.number, body="Anyone?").message.communication
    assert first != second
    for communication in (first, second):
        assert communication.is_unrecognized and communication.patient is None
        assert communication.sending_line == line and communication.counterpart == "+15550107777"


def test_sms_from_a_number_shared_by_two_patients_keeps_both_candidates(patient, line):
    sibling = PatientFactory()
    PatientContactMethodFactory(patient=patient, kind="phone", value="+15550106666")
    PatientContactMethodFactory(patient=sibling, kind="phone", value="+15550106666")
    communication = receive_sms(sender="+15550106666", to=line.number).message.communication
    assert communication.is_unrecognized
    assert set(communication.candidate_patients.all()) == {patient, sibling}


def test_sms_to_a_direct_line_is_auto_assigned_to_its_owner(nurse, maria_phone):
    direct = SendingLineFactory(number="+15550100055", owner=nurse)
    communication = receive_sms(sender=MARIA, to=direct.number).message.communication
    assert communication.assignee == nurse


def test_unrecognized_sms_to_a_direct_line_is_assigned_to_its_owner(nurse):
    direct = SendingLineFactory(number="+15550100055", owner=nurse)
    communication = receive_sms(sender="+15550107777", to=direct.number).message.communication
    assert communication.is_unrecognized and communication.assignee == nurse


@pytest.mark.django_db(transaction=True)
def test_stop_opts_out_and_a_reply_is_refused_until_start(nurse, patient, maria_phone, line):
    stop = receive_sms(sender=MARIA, to=line.number, body=" stop ")
    maria_phone.refresh_from_db()
    assert maria_phone.is_opted_out
    communication = stop.message.communication
    assert stop.message.body_text == "stop"  # the keyword is shown in the conversation
    with pytest.raises(ReplyNotAllowed, match="opted out"):
        send_reply(user=nurse, communication=communication, content=ReplyContent(body="Hi"))
    receive_sms(sender=MARIA, to=line.number, body="START")
    maria_phone.refresh_from_db()
    assert not maria_phone.is_opted_out
    send_reply(user=nurse, communication=communication, content=ReplyContent(body="Welcome back"))
    assert communication.messages.count() == 3


@pytest.mark.parametrize("word", ["STOPALL", "Unsubscribe", "CANCEL", "end", "QUIT", "Stop."])
def test_stop_synonyms_opt_out_contacts_and_contact_methods(patient, maria_phone, line, word):
    caregiver = ContactFactory(patient=PatientFactory(), phone=MARIA)
    receive_sms(sender=MARIA, to=line.number, body=word)
    maria_phone.refresh_from_db()
    caregiver.refresh_from_db()
    assert maria_phone.is_opted_out and caregiver.is_opted_out


@pytest.mark.parametrize("word", ["YES", "unstop"])
def test_start_synonyms_opt_back_in(patient, maria_phone, line, word):
    maria_phone.is_opted_out = True
    maria_phone.save()
    receive_sms(sender=MARIA, to=line.number, body=word)
    maria_phone.refresh_from_db()
    assert not maria_phone.is_opted_out


def test_help_is_recorded_and_shown(patient, maria_phone, line):
    raw = receive_sms(sender=MARIA, to=line.number, body="HELP")
    maria_phone.refresh_from_db()
    assert raw.message.body_text == "HELP" and not maria_phone.is_opted_out
    event = AuditEvent.objects.get(action=AuditEvent.Action.MESSAGE_RECEIVED)
    assert event.detail["keyword"] == "HELP" and event.actor_label == f"{patient.full_name} <{MARIA}>"


def test_a_sentence_containing_stop_is_not_a_keyword(patient, maria_phone, line):
    receive_sms(sender=MARIA, to=line.number, body="Should I stop the pills?")
    maria_phone.refresh_from_db()
    assert not maria_phone.is_opted_out


def test_sms_to_an_unknown_line_is_kept_with_an_error(maria_phone):
    raw = receive_sms(sender=MARIA, to="+15550109876")
    assert raw.processed_at is None and raw.attempts == 1
    assert "+15550109876" in raw.error and "not an active sending line" in raw.error
    assert Message.objects.count() == 0


def test_the_same_message_sid_twice_gives_one_message(patient, maria_phone, line):
    first = receive_sms(sender=MARIA, to=line.number, sid="SM" + "1" * 32)
    other = RawInbound.objects.create(source=RawInbound.Source.TWILIO_SMS, payload=first.payload)
    process(other.pk)
    other.refresh_from_db()
    assert other.message == first.message
    assert Message.objects.filter(provider_id="SM" + "1" * 32).count() == 1


def _mms(**media):
    return {"NumMedia": str(len(media)), **{k: v for pair in media.values() for k, v in pair.items()}}


def test_mms_media_is_downloaded_into_attachments(monkeypatch, maria_phone, line):
    calls = []

    def fake_download(url, *, max_bytes):
        calls.append(url)
        return b"\xff\xd8 jpeg bytes", "image/jpeg"

    monkeypatch.setattr(sms_ingest, "download_media", fake_download)
    extra = _mms(a={"MediaUrl0": "https://api.twilio.com/media/ME1", "MediaContentType0": "image/jpeg"})
    message = receive_sms(sender=MARIA, to=line.number, body="", **extra).message
    (attachment,) = message.attachments.all()
    assert calls == ["https://api.twilio.com/media/ME1"]
    assert (attachment.filename, attachment.content_type, attachment.size) == ("mms-1.jpg", "image/jpeg", 13)
    with attachment.file.open("rb") as fh:
        assert fh.read() == b"\xff\xd8 jpeg bytes"


def test_mms_media_over_the_limit_is_not_stored_and_noted(monkeypatch, maria_phone, line):
    def too_big(url, *, max_bytes):
        raise sms_ingest.MediaTooLarge(max_bytes + 1)

    monkeypatch.setattr(sms_ingest, "download_media", too_big)
    extra = _mms(a={"MediaUrl0": "https://api.twilio.com/media/ME2", "MediaContentType0": "video/mp4"})
    raw = receive_sms(sender=MARIA, to=line.number, body="Video", **extra)
    assert raw.message.attachments.count() == 0
    assert "“mms-1.mp4”" in raw.message.body_text and "larger than" in raw.message.body_text


def test_mms_download_failure_is_retried_then_filed_with_a_note(monkeypatch, maria_phone, line):
    def broken(url, *, max_bytes):
        raise requests.ConnectionError("twilio unreachable")

    monkeypatch.setattr(sms_ingest, "download_media", broken)
    extra = _mms(a={"MediaUrl0": "https://api.twilio.com/media/ME3", "MediaContentType0": "image/png"})
    raw = receive_sms(sender=MARIA, to=line.number, body="Photo", **extra)
    assert raw.processed_at is None and "could not be downloaded yet" in raw.error
    process(raw.pk)
    process(raw.pk)
    raw.refresh_from_db()
    assert raw.processed_at is not None and raw.attempts == 3
    assert raw.message.body_text.startswith("Photo\n\nAttachment “mms-1.png” was not stored")


def test_download_media_sends_the_twilio_credentials_and_stops_at_the_limit(monkeypatch, settings):
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = "ACabc", "secret"
    seen = {}

    class FakeResponse:
        headers = {"Content-Type": "image/gif"}

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def raise_for_status(self):
            pass

        def iter_content(self, size):
            yield b"a" * 600
            yield b"b" * 600

    def fake_get(url, **kwargs):
        seen.update(kwargs, url=url)
        return FakeResponse()

    monkeypatch.setattr(requests, "get", fake_get)
    download = real_download_media
    assert download("https://api.twilio.com/m", max_bytes=2000) == (b"a" * 600 + b"b" * 600, "image/gif")
    assert seen["auth"] == ("ACabc", "secret") and seen["timeout"] and seen["stream"] is True
    with pytest.raises(sms_ingest.MediaTooLarge):
        download("https://api.twilio.com/m", max_bytes=1000)
    with pytest.raises(requests.RequestException):
        download("http://169.254.169.254/latest", max_bytes=1000)


# --- status callbacks ------------------------------------------------------------------------------------


@pytest.fixture
def outbound_sms(patient, line):
    communication = CommunicationFactory(
        channel=Channel.SMS, patient=patient, sending_line=line, counterpart=MARIA
    )
    return MessageFactory(
        communication=communication, direction=Message.Direction.OUTBOUND, provider_id="SMout0001",
        delivery_status=Message.DeliveryStatus.SENT,
    )  # fmt: skip


def receive_status(sid: str, status: str, **extra) -> RawInbound:
    payload = {"MessageSid": sid, "MessageStatus": status, **extra}
    row, _ = store_raw(
        source=RawInbound.Source.TWILIO_STATUS, provider_id=status_provider_id(payload), payload=payload
    )
    process(row.pk)
    row.refresh_from_db()
    return row


def test_status_callback_marks_the_outbound_sms_delivered(outbound_sms):
    raw = receive_status("SMout0001", "delivered")
    outbound_sms.refresh_from_db()
    assert outbound_sms.delivery_status == Message.DeliveryStatus.DELIVERED
    assert raw.processed_at is not None and raw.message == outbound_sms


@pytest.mark.parametrize("status", ["undelivered", "failed"])
def test_failure_callback_keeps_the_twilio_error(outbound_sms, status):
    receive_status("SMout0001", status, ErrorCode="30006", ErrorMessage="Landline or unreachable carrier")
    outbound_sms.refresh_from_db()
    assert outbound_sms.delivery_status == status
    assert outbound_sms.delivery_error == "Twilio error 30006 Landline or unreachable carrier"


def test_a_late_sent_callback_does_not_undo_delivered(outbound_sms):
    receive_status("SMout0001", "delivered")
    receive_status("SMout0001", "sent")
    outbound_sms.refresh_from_db()
    assert outbound_sms.delivery_status == Message.DeliveryStatus.DELIVERED


def test_callback_for_an_unknown_sid_is_kept_for_a_retry(outbound_sms):
    raw = receive_status("SMnotyet", "delivered")
    assert raw.processed_at is None and raw.attempts == 1 and "SMnotyet" in raw.error
