"""Notifications per trigger (assignment, inbound, @mention), never to someone who cannot see the communication, and
internal notes: stored on the conversation, never delivered, never shown to the patient, status and list untouched."""

import pytest
from django.core import mail

from careportal.models import CareTeamMember
from inbox import tasks
from inbox.errors import NotPermitted, ReplyNotAllowed
from inbox.models import AuditEvent, Channel, Communication, Message, Notification
from inbox.notifications import mentions_in, notifications_for, unread_count
from inbox.services import ReplyContent, add_internal_note, assign, send_reply
from tests.careportal.secure_support import secure_conversation, url, verify
from tests.factories import (
    ChatCommunicationFactory,
    CommunicationFactory,
    MessageFactory,
    PatientContactMethodFactory,
    PatientFactory,
    SendingLineFactory,
    UnrecognizedCommunicationFactory,
)
from tests.inbox.ingest_support import (  # noqa: F401  (eager_celery, hook_secrets: autouse fixtures)
    eager_celery,
    hook_secrets,
    receive_sms,
)

pytestmark = pytest.mark.django_db

MARIA = "+15550102030"


@pytest.fixture
def sms(patient):
    return CommunicationFactory(
        patient=patient,
        channel=Channel.SMS,
        counterpart=MARIA,
        sending_line=SendingLineFactory(label="Main clinic"),
    )


def notes_of(user, kind=None):
    qs = Notification.objects.filter(user=user)
    return list(qs.filter(kind=kind) if kind else qs)


# --- Assignment ---------------------------------------------------------------------------------------------------


def test_assigning_a_colleague_notifies_them(nurse, colleague, sms, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assign(user=nurse, communication=sms, assignee=colleague)
    [notification] = notes_of(colleague)
    assert notification.kind == Notification.Kind.ASSIGNED
    assert notification.communication == sms and not notification.is_read
    assert notification.text == "Nora Nurse assigned you the SMS with Maria Lopez"
    assert len(callbacks) >= 2  # the assignment change and the notification hint, both after commit
    assert notes_of(nurse) == []


def test_assigning_yourself_notifies_nobody(nurse, sms):
    assign(user=nurse, communication=sms, assignee=nurse)
    assert Notification.objects.count() == 0


def test_unassigning_notifies_nobody(nurse, colleague, sms):
    sms.assignee = colleague
    sms.save()
    assign(user=nurse, communication=sms, assignee=None)
    assert Notification.objects.count() == 0


def test_an_assignment_refused_for_lack_of_access_notifies_nobody(nurse, other_nurse, sms):
    with pytest.raises(NotPermitted):
        assign(user=nurse, communication=sms, assignee=other_nurse)
    assert Notification.objects.count() == 0


def test_auto_assignment_to_a_direct_line_owner_notifies_them(nurse, patient):
    PatientContactMethodFactory(patient=patient, kind="phone", value=MARIA)
    direct = SendingLineFactory(number="+15550100055", owner=nurse)
    communication = receive_sms(
        sender=MARIA, to=direct.number, body="Is my appointment at 3?"
    ).message.communication
    kinds = set(
        Notification.objects.filter(user=nurse, communication=communication).values_list("kind", flat=True)
    )
    assert Notification.Kind.ASSIGNED in kinds


# --- Inbound ------------------------------------------------------------------------------------------------------


def test_inbound_sms_notifies_the_assignee_and_the_primary_contact(nurse, colleague, patient, sms):
    PatientContactMethodFactory(patient=patient, kind="phone", value=MARIA)
    sms.assignee = colleague
    sms.save()
    receive_sms(sender=MARIA, to=sms.sending_line.number, body="My ankle is still swollen")
    [for_assignee] = notes_of(colleague, Notification.Kind.INBOUND)
    [for_primary] = notes_of(nurse, Notification.Kind.INBOUND)  # the nurse is Maria's primary contact
    assert for_assignee.text == "New SMS from Maria Lopez: My ankle is still swollen"
    assert for_assignee.message.body_text == "My ankle is still swollen"
    assert for_primary.communication == for_assignee.communication == sms


def test_inbound_on_a_communication_nobody_owns_notifies_nobody_off_primary(colleague, other_nurse):
    other_patient = PatientFactory()
    PatientContactMethodFactory(patient=other_patient, kind="phone", value="+15550109999")
    line = SendingLineFactory()
    receive_sms(sender="+15550109999", to=line.number, body="Hello")
    assert Notification.objects.count() == 0


def test_an_auto_reply_notifies_nobody(nurse, sms):
    from inbox.services import apply_inbound

    sms.assignee = nurse
    sms.save()
    message = MessageFactory(communication=sms, is_auto_reply=True, body_text="Out of office")
    apply_inbound(sms, message)
    assert Notification.objects.count() == 0


def test_no_notification_for_an_assignee_who_lost_access(nurse, other_nurse, patient, sms):
    """The assignee was taken off the care team: a new message does not reach them (access re-checked)."""
    PatientContactMethodFactory(patient=patient, kind="phone", value=MARIA)
    Communication.objects.filter(pk=sms.pk).update(assignee=other_nurse)  # assigned before losing access
    receive_sms(sender=MARIA, to=sms.sending_line.number, body="Any news?")
    assert notes_of(other_nurse) == []
    assert len(notes_of(nurse)) == 1  # the primary contact still is


def test_no_notification_for_a_deactivated_primary_contact(nurse, patient, sms):
    PatientContactMethodFactory(patient=patient, kind="phone", value=MARIA)
    nurse.is_active = False
    nurse.save()
    receive_sms(sender=MARIA, to=sms.sending_line.number, body="Any news?")
    assert Notification.objects.count() == 0


def test_notifications_about_a_communication_one_can_no_longer_see_are_hidden(nurse, sms):
    Notification.objects.create(
        user=nurse, kind="inbound", communication=sms, text="New SMS from Maria Lopez"
    )
    assert unread_count(nurse) == 1
    CareTeamMember.objects.filter(user=nurse).delete()
    assert unread_count(nurse) == 0
    assert list(notifications_for(nurse)) == []


# --- Internal notes and @mentions ------------------------------------------------------------------------------


def test_an_internal_note_is_stored_and_never_queued_for_delivery(
    nurse, sms, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr(tasks.deliver_message, "delay", lambda pk: queued.append(pk))
    before = Communication.objects.values("status", "last_message_at", "last_message_preview").get(pk=sms.pk)
    with django_capture_on_commit_callbacks(execute=True):
        note = add_internal_note(user=nurse, communication=sms, body="Called her, will come in Friday.")
    assert queued == []
    assert mail.outbox == []
    assert note.is_internal_note and note.author == nurse and note.direction == Message.Direction.OUTBOUND
    assert note.delivery_status == "" and note.provider_id == ""
    assert (
        Communication.objects.values("status", "last_message_at", "last_message_preview").get(pk=sms.pk)
        == before
    )
    event = AuditEvent.objects.get(action=AuditEvent.Action.MESSAGE_SENT, object_id=str(note.pk))
    assert event.detail == {"internal_note": True, "mentions": []} and event.actor == nurse


def test_the_delivery_task_refuses_an_internal_note_even_if_asked(nurse, sms):
    from inbox.delivery import LocmemSmsBackend

    note = add_internal_note(user=nurse, communication=sms, body="Staff only")
    LocmemSmsBackend.outbox.clear()
    assert tasks.deliver_message(note.pk) == "internal"
    assert LocmemSmsBackend.outbox == []


def test_a_note_does_not_change_the_status_or_put_the_communication_in_sent(nurse, sms):
    from inbox.folders import Folder
    from inbox.selectors import folder_communications

    sms.status = Communication.Status.CLOSED
    sms.save()
    add_internal_note(user=nurse, communication=sms, body="Closed on purpose, see chart")
    sms.refresh_from_db()
    assert sms.status == Communication.Status.CLOSED
    assert not folder_communications(user=nurse, folder=Folder.SENT).filter(pk=sms.pk).exists()


def test_a_note_is_allowed_on_an_unrecognized_communication(nurse):
    unknown = UnrecognizedCommunicationFactory(
        assignee=nurse, channel=Channel.SMS, counterpart="+15550107777"
    )
    note = add_internal_note(user=nurse, communication=unknown, body="Probably Maria's husband")
    assert note.communication == unknown and note.is_internal_note


@pytest.mark.parametrize("body", ["", "   \n "])
def test_an_empty_note_is_refused_and_nothing_is_stored(nurse, sms, body):
    with pytest.raises(ReplyNotAllowed, match="Write the note"):
        add_internal_note(user=nurse, communication=sms, body=body)
    assert not Message.objects.filter(is_internal_note=True).exists()


def test_a_note_too_long_is_refused(nurse, sms):
    with pytest.raises(ReplyNotAllowed, match="at most 4000"):
        add_internal_note(user=nurse, communication=sms, body="x" * 4001)
    assert not Message.objects.exists()


def test_someone_who_cannot_see_the_communication_cannot_add_a_note(other_nurse, sms):
    with pytest.raises(NotPermitted):
        add_internal_note(user=other_nurse, communication=sms, body="Sneaky")
    assert not Message.objects.exists()


def test_a_mention_notifies_the_colleague_and_is_highlighted(nurse, colleague, sms):
    note = add_internal_note(
        user=nurse, communication=sms, body="@cara can you call her back? Thanks @nurse."
    )
    [notification] = notes_of(colleague)
    assert notification.kind == Notification.Kind.MENTION and notification.message == note
    assert notification.text.startswith("Nora Nurse mentioned you in a note: @cara can you call")
    assert notes_of(nurse) == []  # mentioning yourself tells nobody
    assert '<span class="mention">@cara</span>' in note.body_html
    assert '<span class="mention">@nurse</span>.' in note.body_html
    event = AuditEvent.objects.get(object_id=str(note.pk))
    assert sorted(event.detail["mentions"]) == sorted([colleague.pk, nurse.pk])


def test_mentions_are_case_insensitive_and_email_addresses_are_not_mentions(nurse, colleague, sms):
    assert mentions_in(sms, "ask @CARA") == [colleague]
    assert mentions_in(sms, "she wrote to cara@mail.example") == []
    assert mentions_in(sms, "meet @ 5pm or @5pm") == []


def test_mentioning_someone_without_access_is_refused_and_nothing_is_stored(nurse, other_nurse, sms):
    with pytest.raises(NotPermitted, match=r"Otto Other \(@other-nurse\) cannot see this communication"):
        add_internal_note(user=nurse, communication=sms, body="@other-nurse please look")
    assert not Message.objects.exists()
    assert Notification.objects.count() == 0


def test_mentioning_a_user_without_inbox_is_refused(nurse, outsider, sms):
    with pytest.raises(NotPermitted, match="outsider"):
        add_internal_note(user=nurse, communication=sms, body="@outsider fyi")


def test_a_note_escapes_markup(nurse, sms):
    note = add_internal_note(user=nurse, communication=sms, body="<script>alert(1)</script> @nurse")
    assert "<script>" not in note.body_html and "&lt;script&gt;" in note.body_html


# --- Patients never see notes ---------------------------------------------------------------------------------


def test_a_note_never_shows_on_the_secure_message_page(client, nurse, patient):
    secure = secure_conversation(nurse, patient)
    add_internal_note(user=nurse, communication=secure.communication, body="Staff only: check her potassium")
    verify(client, secure)
    page = client.get(url("thread", secure)).content.decode()
    assert "Lab results" in page or "lab results" in page
    assert "potassium" not in page


def test_a_note_never_shows_on_the_live_chat_page(client, nurse, patient):
    from django.urls import reverse

    from careportal import chat

    conversation = ChatCommunicationFactory(patient=patient)
    MessageFactory(communication=conversation, body_text="Hello from Maria")
    add_internal_note(user=nurse, communication=conversation, body="Staff only: check her potassium")
    page = client.get(reverse("chat:page", kwargs={"token": chat.make_chat_token(patient)})).content.decode()
    assert "Hello from Maria" in page
    assert "potassium" not in page


def test_only_the_reply_is_queued_when_a_note_and_a_reply_are_written(
    nurse, sms, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr(tasks.deliver_message, "delay", lambda pk: queued.append(pk))
    with django_capture_on_commit_callbacks(execute=True):
        add_internal_note(user=nurse, communication=sms, body="Note first")
        reply = send_reply(user=nurse, communication=sms, content=ReplyContent(body="See you Friday"))
    assert queued == [reply.pk]
