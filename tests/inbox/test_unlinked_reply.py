"""Item 16: a reply to an Unrecognized communication (a sender linked to no patient) goes only behind an explicit
confirmation naming the recipient, text only, with an audit event that names the unlinked recipient."""

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile

from inbox.delivery import LocmemSmsBackend
from inbox.errors import NotPermitted, ReplyNotAllowed, UnlinkedRecipientNotConfirmed
from inbox.models import AuditEvent, Channel, Communication, Message
from inbox.services import ReplyContent, send_reply
from tests.factories import DocumentFactory, SendingLineFactory, UnrecognizedCommunicationFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _outboxes(local_outboxes):
    pass


@pytest.fixture
def unknown_sms(nurse):
    return UnrecognizedCommunicationFactory(
        channel=Channel.SMS, counterpart="+15550109999", assignee=nurse,
        sending_line=SendingLineFactory(number="+15550100001", label="Main clinic"),
    )  # fmt: skip


def _sent(communication):
    return Message.objects.filter(communication=communication, direction=Message.Direction.OUTBOUND)


def test_an_unconfirmed_reply_to_an_unlinked_sender_is_refused_naming_the_recipient(nurse, unknown_sms):
    with pytest.raises(UnlinkedRecipientNotConfirmed) as refused:
        send_reply(user=nurse, communication=unknown_sms, content=ReplyContent(body="Who is this?"))
    assert refused.value.recipient == "+15550109999"
    assert "+15550109999 is not linked to a patient" in str(refused.value)
    assert not _sent(unknown_sms).exists() and LocmemSmsBackend.outbox == []
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.MESSAGE_SENT).exists()


def test_a_confirmed_reply_goes_to_the_raw_number_and_is_audited_as_to_an_unlinked_sender(nurse, unknown_sms):
    message = send_reply(
        user=nurse, communication=unknown_sms, content=ReplyContent(body="Could you tell us your name?"),
        confirm_unlinked_recipient=True,
    )  # fmt: skip
    assert message.recipient_address == "+15550109999"
    assert LocmemSmsBackend.outbox[0]["to"] == "+15550109999"
    assert LocmemSmsBackend.outbox[0]["body"] == "Could you tell us your name?"
    event = AuditEvent.objects.get(action=AuditEvent.Action.MESSAGE_SENT, communication=unknown_sms)
    assert event.actor == nurse and event.patient is None
    assert event.detail["unlinked_recipient"] == "+15550109999"
    unknown_sms.refresh_from_db()
    assert unknown_sms.is_unrecognized and unknown_sms.status == Communication.Status.CLOSED


def test_a_confirmed_email_reply_goes_to_the_sender_address(nurse):
    unknown = UnrecognizedCommunicationFactory(counterpart="pharmacy@mail.example", assignee=nurse)
    send_reply(
        user=nurse, communication=unknown, content=ReplyContent(body_html="<p>Please fax the refill.</p>"),
        confirm_unlinked_recipient=True, close=False,
    )  # fmt: skip
    (email,) = mail.outbox
    assert email.to == ["pharmacy@mail.example"]
    unknown.refresh_from_db()
    assert unknown.status == Communication.Status.OPEN


@pytest.mark.parametrize(
    "content, reason",
    [
        (ReplyContent(body="Hi", is_secure=True), "A secure email needs a patient"),
        (ReplyContent(body="Hi", document_ids=(1,)), "Attachments are the patient's documents"),
        (
            ReplyContent(body="Hi", uploads=(SimpleUploadedFile("a.txt", b"hello", "text/plain"),)),
            "Attachments are the patient's documents",
        ),
    ],
)
def test_a_confirmed_reply_to_an_unlinked_sender_is_text_only(nurse, content, reason):
    unknown = UnrecognizedCommunicationFactory(counterpart="pharmacy@mail.example", assignee=nurse)
    DocumentFactory()
    with pytest.raises(ReplyNotAllowed, match=reason):
        send_reply(user=nurse, communication=unknown, content=content, confirm_unlinked_recipient=True)
    assert not _sent(unknown).exists() and mail.outbox == []


def test_the_confirmation_does_not_open_a_communication_the_user_may_not_see(other_nurse, unknown_sms):
    with pytest.raises(NotPermitted):
        send_reply(
            user=other_nurse, communication=unknown_sms, content=ReplyContent(body="Hi"),
            confirm_unlinked_recipient=True,
        )  # fmt: skip
    assert not _sent(unknown_sms).exists()


def test_the_confirmation_changes_nothing_on_a_linked_communication(nurse, patient):
    from tests.factories import CommunicationFactory

    linked = CommunicationFactory(patient=patient, assignee=nurse, counterpart="maria@mail.example")
    send_reply(
        user=nurse, communication=linked, content=ReplyContent(body="Hi"), confirm_unlinked_recipient=True
    )
    event = AuditEvent.objects.get(action=AuditEvent.Action.MESSAGE_SENT, communication=linked)
    assert "unlinked_recipient" not in event.detail
