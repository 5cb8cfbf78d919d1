"""Services that change a communication: send, status, assign, link, start — each rule pinned."""

import threading

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from inbox.delivery import LocmemSmsBackend
from inbox.errors import ConversationChanged, NotPermitted, ReplyNotAllowed
from inbox.models import AuditEvent, Channel, Communication, Message
from inbox.selectors import assignee_candidates
from inbox.services import (
    ReplyContent,
    Seen,
    apply_inbound,
    assign,
    link_to_patient,
    send_reply,
    set_status,
    start_communication,
)
from tests.factories import (
    CareTeamMemberFactory,
    CommunicationFactory,
    ContactFactory,
    DocumentFactory,
    InboundAddressFactory,
    MessageFactory,
    PatientContactMethodFactory,
    PatientFactory,
    SendingLineFactory,
    UnrecognizedCommunicationFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _outboxes(local_outboxes):
    pass


@pytest.fixture
def email_comm(patient):
    communication = CommunicationFactory(
        patient=patient,
        counterpart="maria@mail.example",
        inbound_address=InboundAddressFactory(address="care@clinic.example"),
    )
    MessageFactory(
        communication=communication,
        email_message_id="<first@mail.example>",
        sender_address="maria@mail.example",
    )
    return communication


def test_send_closes_by_default_and_delivers_a_threaded_email(nurse, email_comm):
    message = send_reply(user=nurse, communication=email_comm, content=ReplyContent(body="See you Monday."))
    email_comm.refresh_from_db()
    message.refresh_from_db()
    assert email_comm.status == Communication.Status.CLOSED
    assert email_comm.last_message_preview == "See you Monday."
    assert message.delivery_status == Message.DeliveryStatus.SENT
    (sent,) = mail.outbox
    assert sent.to == ["maria@mail.example"]
    assert sent.reply_to == ["care@clinic.example"]
    assert sent.extra_headers["In-Reply-To"] == "<first@mail.example>"
    assert sent.extra_headers["References"] == "<first@mail.example>"
    assert sent.extra_headers["Message-ID"] == message.email_message_id
    assert set(AuditEvent.objects.filter(communication=email_comm).values_list("action", flat=True)) == {
        AuditEvent.Action.MESSAGE_SENT,
        AuditEvent.Action.STATUS_CHANGED,
    }


def test_send_and_keep_open_leaves_it_open(nurse, email_comm):
    send_reply(user=nurse, communication=email_comm, content=ReplyContent(body="Will check."), close=False)
    email_comm.refresh_from_db()
    assert email_comm.status == Communication.Status.OPEN


def test_send_and_keep_open_reopens_a_closed_communication(nurse, email_comm):
    set_status(user=nurse, communication=email_comm, status=Communication.Status.CLOSED)
    send_reply(
        user=nurse, communication=email_comm, content=ReplyContent(body="One more thing."), close=False
    )
    email_comm.refresh_from_db()
    assert email_comm.status == Communication.Status.OPEN
    assert AuditEvent.objects.filter(
        communication=email_comm, action=AuditEvent.Action.STATUS_CHANGED, detail__via="send"
    ).exists()


def test_a_send_from_a_stale_view_is_refused_and_sends_nothing(nurse, colleague, email_comm):
    seen = Seen(last_message_id=email_comm.messages.get().pk, status=email_comm.status, assignee_id=None)
    colleague_reply = send_reply(
        user=colleague, communication=email_comm, content=ReplyContent(body="Yes, come in at 3."), seen=seen
    )
    with pytest.raises(ConversationChanged) as refused:
        send_reply(user=nurse, communication=email_comm, content=ReplyContent(body="Come at 4."), seen=seen)
    assert refused.value.changes.messages == [colleague_reply]
    assert refused.value.changes.status == Communication.Status.CLOSED  # Cara's Send and Close
    assert not Message.objects.filter(communication=email_comm, author=nurse).exists()
    assert len(mail.outbox) == 1  # only Cara's reply went out
    # Having seen the change, the nurse sends: nothing is in the way any more.
    now = Seen(last_message_id=colleague_reply.pk, status=Communication.Status.CLOSED, assignee_id=None)
    send_reply(user=nurse, communication=email_comm, content=ReplyContent(body="Come at 4."), seen=now)
    assert Message.objects.filter(communication=email_comm, author=nurse).count() == 1


def test_two_writers_who_saw_the_same_state_sending_at_once_send_one_reply(nurse, colleague, email_comm):
    """The check runs under the communication's lock: the second send waits for the first, then sees it."""
    seen = Seen(last_message_id=email_comm.messages.get().pk, status=email_comm.status, assignee_id=None)
    start = threading.Barrier(2)
    outcomes = []

    def write(user, body):
        start.wait()
        try:
            send_reply(user=user, communication=email_comm, content=ReplyContent(body=body), seen=seen)
            outcomes.append("sent")
        except ConversationChanged:
            outcomes.append("refused")
        finally:
            connection.close()

    writers = [
        threading.Thread(target=write, args=(user, f"Reply from {user.username}"))
        for user in (nurse, colleague)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=30)
    assert sorted(outcomes) == ["refused", "sent"]
    assert Message.objects.filter(communication=email_comm, direction=Message.Direction.OUTBOUND).count() == 1


def test_reply_on_unrecognized_is_refused_and_changes_nothing(lead):
    communication = UnrecognizedCommunicationFactory()
    with pytest.raises(ReplyNotAllowed, match="is not linked to a patient"):
        send_reply(user=lead, communication=communication, content=ReplyContent(body="Hello"))
    assert not Message.objects.filter(communication=communication).exists()
    assert mail.outbox == []


def test_script_in_reply_html_is_removed(nurse, email_comm):
    message = send_reply(
        user=nurse,
        communication=email_comm,
        content=ReplyContent(body_html='<p onclick="x()">Hi <b>there</b><script>alert(1)</script></p>'),
    )
    assert message.body_html == "<p>Hi <b>there</b></p>"
    assert "alert" not in message.body_text


def test_secure_email_sends_only_a_link(nurse, email_comm):
    message = send_reply(
        user=nurse,
        communication=email_comm,
        content=ReplyContent(body="Your lab result is normal.", is_secure=True),
    )
    (sent,) = mail.outbox
    assert "lab result" not in sent.body
    assert "/secure/" in sent.body
    assert message.is_secure


def test_secure_is_refused_for_sms(nurse, patient):
    communication = CommunicationFactory(
        patient=patient, channel=Channel.SMS, counterpart="+15550102030", sending_line=SendingLineFactory()
    )
    with pytest.raises(ReplyNotAllowed, match="only be sent by email"):
        send_reply(user=nurse, communication=communication, content=ReplyContent(body="x", is_secure=True))


def test_sms_reply_goes_out_on_the_communication_line(nurse, patient):
    line = SendingLineFactory(number="+15550100001", label="Main clinic")
    communication = CommunicationFactory(
        patient=patient, channel=Channel.SMS, counterpart="+15550102030", sending_line=line
    )
    send_reply(user=nurse, communication=communication, content=ReplyContent(body="On our way"))
    assert LocmemSmsBackend.outbox[-1]["to"] == "+15550102030"
    assert LocmemSmsBackend.outbox[-1]["from"] == "+15550100001"


def test_sms_to_an_opted_out_number_is_refused(nurse, patient):
    PatientContactMethodFactory(patient=patient, kind="phone", value="+15550102030", is_opted_out=True)
    communication = CommunicationFactory(
        patient=patient, channel=Channel.SMS, counterpart="+15550102030", sending_line=SendingLineFactory()
    )
    with pytest.raises(ReplyNotAllowed, match="opted out"):
        send_reply(user=nurse, communication=communication, content=ReplyContent(body="Hi"))
    assert LocmemSmsBackend.outbox == []


def test_an_empty_reply_is_refused(nurse, email_comm):
    with pytest.raises(ReplyNotAllowed, match="Write a message"):
        send_reply(user=nurse, communication=email_comm, content=ReplyContent(body="   "))


def test_a_user_without_access_cannot_send(other_nurse, email_comm):
    with pytest.raises(NotPermitted):
        send_reply(user=other_nurse, communication=email_comm, content=ReplyContent(body="Hi"))
    assert mail.outbox == []


def test_upload_becomes_a_patient_document_and_is_attached(nurse, email_comm, patient):
    upload = SimpleUploadedFile("care-plan.pdf", b"%PDF-1.4 plan", content_type="application/pdf")
    message = send_reply(
        user=nurse, communication=email_comm, content=ReplyContent(body="Plan attached", uploads=(upload,))
    )
    (attachment,) = message.attachments.all()
    assert attachment.document.patient == patient
    assert attachment.document.uploaded_by == nurse
    assert mail.outbox[0].attachments[0][0] == "care-plan.pdf"


def test_oversize_upload_is_refused_with_a_clear_error(nurse, email_comm, settings):
    settings.MAX_UPLOAD_BYTES = 10
    upload = SimpleUploadedFile("big.pdf", b"x" * 11, content_type="application/pdf")
    with pytest.raises(ReplyNotAllowed, match="larger than the 10\xa0bytes limit"):
        send_reply(user=nurse, communication=email_comm, content=ReplyContent(body="x", uploads=(upload,)))
    assert not Message.objects.filter(direction="out").exists()


def test_disallowed_upload_type_is_refused(nurse, email_comm):
    upload = SimpleUploadedFile("run.exe", b"MZ", content_type="application/x-msdownload")
    with pytest.raises(ReplyNotAllowed, match="not an allowed file type"):
        send_reply(user=nurse, communication=email_comm, content=ReplyContent(body="x", uploads=(upload,)))


def test_another_patients_document_cannot_be_attached(nurse, email_comm):
    foreign = DocumentFactory(patient=PatientFactory())
    with pytest.raises(ReplyNotAllowed, match="does not belong"):
        send_reply(
            user=nurse, communication=email_comm, content=ReplyContent(body="x", document_ids=(foreign.pk,))
        )


def test_inbound_reopens_a_closed_communication(email_comm):
    email_comm.status = Communication.Status.CLOSED
    email_comm.save()
    message = MessageFactory(communication=email_comm, body_text="One more question")
    apply_inbound(email_comm, message)
    email_comm.refresh_from_db()
    assert email_comm.status == Communication.Status.OPEN
    assert email_comm.last_message_preview == "One more question"


def test_an_auto_reply_does_not_reopen(email_comm):
    email_comm.status = Communication.Status.CLOSED
    email_comm.save()
    apply_inbound(email_comm, MessageFactory(communication=email_comm, is_auto_reply=True))
    email_comm.refresh_from_db()
    assert email_comm.status == Communication.Status.CLOSED


def test_status_can_be_changed_by_hand_and_is_audited(nurse, email_comm):
    set_status(user=nurse, communication=email_comm, status="closed")
    set_status(user=nurse, communication=email_comm, status="open")
    email_comm.refresh_from_db()
    assert email_comm.status == "open"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.STATUS_CHANGED).count() == 2


def test_unknown_status_is_refused(nurse, email_comm):
    with pytest.raises(ReplyNotAllowed):
        set_status(user=nurse, communication=email_comm, status="snoozed")


def test_assignee_list_holds_only_users_with_access(nurse, other_nurse, lead, outsider, patient, email_comm):
    inactive = UserFactory(role="care-nurse", is_active=False)
    CareTeamMemberFactory(patient=patient, user=inactive)
    CareTeamMemberFactory(patient=patient, user=outsider)  # on the team, but the role has no Inbox
    assert set(assignee_candidates(email_comm)) == {nurse, lead}


def test_assign_reassign_unassign(nurse, lead, email_comm):
    assign(user=lead, communication=email_comm, assignee=nurse)
    email_comm.refresh_from_db()
    assert email_comm.assignee == nurse
    assign(user=lead, communication=email_comm, assignee=None)
    email_comm.refresh_from_db()
    assert email_comm.assignee is None
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ASSIGNMENT_CHANGED).count() == 2


def test_assigning_a_user_without_access_is_refused(lead, other_nurse, email_comm):
    with pytest.raises(NotPermitted, match="no access"):
        assign(user=lead, communication=email_comm, assignee=other_nurse)
    email_comm.refresh_from_db()
    assert email_comm.assignee is None


def test_unrecognized_assignees_are_those_who_see_a_candidate(nurse, other_nurse, lead, patient):
    communication = UnrecognizedCommunicationFactory()
    communication.candidate_patients.add(patient)
    assert set(assignee_candidates(communication)) == {nurse, lead}
    no_candidates = UnrecognizedCommunicationFactory()
    assert set(assignee_candidates(no_candidates)) == {nurse, other_nurse, lead}


def test_link_makes_it_repliable_and_remembers_the_address(lead, patient):
    communication = UnrecognizedCommunicationFactory(counterpart="shared@mail.example")
    other = PatientFactory()
    communication.candidate_patients.add(patient, other)
    link_to_patient(user=lead, communication=communication, patient=patient, remember=True)
    communication.refresh_from_db()
    assert (communication.patient, communication.is_unrecognized) == (patient, False)
    assert patient.contact_methods.filter(kind="email", value="shared@mail.example").exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.LINKED)
    assert event.detail["candidates"] == sorted([patient.pk, other.pk])
    send_reply(user=lead, communication=communication, content=ReplyContent(body="Thanks, Maria"))
    assert mail.outbox[0].to == ["shared@mail.example"]


def test_link_to_a_contact_of_the_patient(lead, patient):
    contact = ContactFactory(patient=patient, email="")
    communication = UnrecognizedCommunicationFactory(counterpart="mom@mail.example")
    link_to_patient(user=lead, communication=communication, patient=patient, contact=contact, remember=True)
    contact.refresh_from_db()
    assert contact.email == "mom@mail.example"


def test_link_to_an_invisible_patient_is_refused(nurse):
    communication = UnrecognizedCommunicationFactory(assignee=nurse)
    hidden = PatientFactory()
    with pytest.raises(NotPermitted):
        link_to_patient(user=nurse, communication=communication, patient=hidden)
    communication.refresh_from_db()
    assert communication.is_unrecognized


def test_link_with_a_contact_of_another_patient_is_refused(lead, patient):
    communication = UnrecognizedCommunicationFactory()
    with pytest.raises(NotPermitted, match="does not belong"):
        link_to_patient(user=lead, communication=communication, patient=patient, contact=ContactFactory())


def test_start_sms_on_a_chosen_line_reuses_the_line_communication(nurse, patient):
    PatientContactMethodFactory(patient=patient, kind="phone", value="+15550102030")
    line = SendingLineFactory()
    first = start_communication(
        user=nurse, patient=patient, channel="sms", content=ReplyContent(body="Hi", sending_line=line)
    )
    second = start_communication(
        user=nurse, patient=patient, channel="sms", content=ReplyContent(body="Again", sending_line=line)
    )
    assert first.pk == second.pk
    assert first.messages.count() == 2
    other_line = start_communication(
        user=nurse,
        patient=patient,
        channel="sms",
        content=ReplyContent(body="Hi", sending_line=SendingLineFactory()),
    )
    assert other_line.pk != first.pk


def test_start_email_to_an_address_not_on_file_is_refused(nurse, patient):
    with pytest.raises(ReplyNotAllowed, match="no such email"):
        start_communication(
            user=nurse,
            patient=patient,
            channel="email",
            to="stranger@mail.example",
            content=ReplyContent(body="Hi"),
        )
    assert not Communication.objects.exists()


def test_folder_pages_walk_the_whole_folder_once_newest_first(nurse, patient):
    import datetime as dt

    from django.utils import timezone

    from inbox.folders import Folder
    from inbox.selectors import decode_cursor, folder_page

    base = timezone.now()
    made = [
        CommunicationFactory(
            patient=patient, assignee=nurse, last_message_at=base - dt.timedelta(minutes=i // 2)
        )
        for i in range(7)
    ]  # pairs share a timestamp: the id breaks the tie
    seen, cursor = [], ""
    while True:
        page = folder_page(user=nurse, folder=Folder.ASSIGNED_TO_ME, cursor=cursor, limit=3)
        seen.extend(c.pk for c in page.rows)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    expected = [c.pk for c in sorted(made, key=lambda c: (c.last_message_at, c.pk), reverse=True)]
    assert seen == expected
    with pytest.raises(ValueError):
        decode_cursor("not-a-cursor")
