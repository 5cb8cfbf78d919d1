"""Who may send from a sending line (``inbox.selectors.sending_lines_usable_by``): a line without explicit senders is
open to every Inbox user, a line with senders only to them, a user's own direct line always to its owner. The reply
box, the new-SMS picker and the send services all follow it; a refused send stores nothing."""

import pytest
from django.urls import reverse
from guardian.shortcuts import assign_perm

from inbox.errors import NotPermitted
from inbox.models import AuditEvent, Channel, Communication, Message
from inbox.selectors import active_sending_lines, can_send_from_line
from inbox.services import ReplyContent, send_reply, start_communication
from tests.factories import CommunicationFactory, PatientContactMethodFactory, SendingLineFactory, UserFactory

HX = {"HTTP_HX_REQUEST": "true"}
SEND = "inbox.send_from_line"


@pytest.fixture
def main(db):
    return SendingLineFactory(number="+15550100001", label="Main clinic")


@pytest.fixture
def cardiology(db):
    return SendingLineFactory(number="+15550100002", label="Cardiology")


@pytest.fixture
def reachable(patient):
    PatientContactMethodFactory(patient=patient, kind="phone", value="+15550102030")
    return patient


def _sms(patient, line):
    return CommunicationFactory(
        patient=patient, channel=Channel.SMS, counterpart="+15550102030", sending_line=line
    )


# --- The rule ----------------------------------------------------------------------------------------------------


def test_a_line_without_senders_is_open_to_everyone(nurse, other_nurse, lead, main, cardiology):
    for user in (nurse, other_nurse, lead):
        assert list(active_sending_lines(user)) == [cardiology, main]  # label order


def test_a_line_with_senders_is_only_theirs(nurse, other_nurse, lead, main, cardiology):
    assign_perm(SEND, nurse, cardiology)
    assign_perm(SEND, lead, cardiology)
    assert list(active_sending_lines(nurse)) == [cardiology, main]
    assert list(active_sending_lines(lead)) == [cardiology, main]
    assert list(active_sending_lines(other_nurse)) == [main]
    assert not can_send_from_line(other_nurse, cardiology)


def test_the_owner_may_always_use_their_direct_line(nurse, other_nurse, main):
    direct = SendingLineFactory(number="+15550100009", label="Nora direct", owner=nurse)
    assign_perm(SEND, other_nurse, direct)  # restricted to someone else
    assert direct in active_sending_lines(nurse)
    assert direct in active_sending_lines(other_nurse)
    assert not can_send_from_line(UserFactory(role="care-nurse"), direct)


def test_an_unrestricted_direct_line_stays_shared(nurse, other_nurse):
    """Backward compatible: owning a line makes inbound SMS to it yours; it does not hide it from colleagues."""
    direct = SendingLineFactory(label="Nora direct", owner=nurse)
    assert direct in active_sending_lines(other_nurse)


def test_a_deactivated_senders_grant_still_restricts_the_line(nurse, other_nurse, cardiology):
    assign_perm(SEND, nurse, cardiology)
    nurse.is_active = False
    nurse.save(update_fields=["is_active"])
    assert cardiology not in active_sending_lines(other_nurse)
    assert not active_sending_lines(nurse).exists()  # a deactivated user may send from nothing


def test_inactive_lines_are_never_offered(nurse, main):
    main.is_active = False
    main.save(update_fields=["is_active"])
    assert not active_sending_lines(nurse).exists()


def test_anonymous_users_may_use_no_line(main):
    from django.contrib.auth.models import AnonymousUser

    assert not active_sending_lines(AnonymousUser()).exists()
    assert not can_send_from_line(AnonymousUser(), main)


def test_the_picker_query_count_does_not_grow_with_grants(nurse, other_nurse, django_assert_num_queries):
    for _ in range(5):
        assign_perm(SEND, other_nurse, SendingLineFactory())
    with django_assert_num_queries(1):
        list(active_sending_lines(nurse))


# --- The send services -------------------------------------------------------------------------------------------


def test_a_reply_on_a_restricted_line_is_refused_and_stores_nothing(nurse, other_nurse, patient, cardiology):
    assign_perm(SEND, other_nurse, cardiology)
    communication = _sms(patient, cardiology)
    with pytest.raises(NotPermitted, match="You may not send from the line Cardiology"):
        send_reply(user=nurse, communication=communication, content=ReplyContent(body="On our way"))
    assert not Message.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.MESSAGE_SENT).exists()
    communication.refresh_from_db()
    assert communication.status == Communication.Status.OPEN


def test_a_granted_sender_may_reply(nurse, patient, cardiology):
    assign_perm(SEND, nurse, cardiology)
    message = send_reply(
        user=nurse, communication=_sms(patient, cardiology), content=ReplyContent(body="On our way")
    )
    assert message.sender_address == "+15550100002"


def test_the_owner_may_reply_on_their_restricted_direct_line(nurse, other_nurse, patient):
    direct = SendingLineFactory(number="+15550100009", owner=nurse)
    assign_perm(SEND, other_nurse, direct)
    message = send_reply(user=nurse, communication=_sms(patient, direct), content=ReplyContent(body="Hi"))
    assert message.sender_address == "+15550100009"


def test_picking_a_restricted_line_for_a_lineless_sms_is_refused(nurse, other_nurse, patient, cardiology):
    assign_perm(SEND, other_nurse, cardiology)
    communication = _sms(patient, None)
    with pytest.raises(NotPermitted, match="Cardiology"):
        send_reply(
            user=nurse,
            communication=communication,
            content=ReplyContent(body="Hi", sending_line=cardiology),
        )
    communication.refresh_from_db()
    assert communication.sending_line is None and not Message.objects.exists()


def test_email_replies_are_not_affected(nurse, other_nurse, patient, cardiology):
    assign_perm(SEND, other_nurse, cardiology)
    email = CommunicationFactory(patient=patient, counterpart="maria@mail.example")
    send_reply(user=nurse, communication=email, content=ReplyContent(body="Hi", sending_line=cardiology))
    assert Message.objects.filter(communication=email).count() == 1


def test_starting_an_sms_on_a_restricted_line_is_refused_and_creates_nothing(
    nurse, other_nurse, reachable, cardiology
):
    assign_perm(SEND, other_nurse, cardiology)
    with pytest.raises(NotPermitted, match="You may not send from the line Cardiology"):
        start_communication(
            user=nurse,
            patient=reachable,
            channel=Channel.SMS,
            content=ReplyContent(body="Hi", sending_line=cardiology),
        )
    assert not Communication.objects.exists() and not Message.objects.exists()
    assert not AuditEvent.objects.exists()


def test_starting_an_sms_on_an_open_line_works(nurse, reachable, main):
    created = start_communication(
        user=nurse, patient=reachable, channel=Channel.SMS, content=ReplyContent(body="Hi", sending_line=main)
    )
    assert created.sending_line == main and created.messages.count() == 1


# --- Pages -------------------------------------------------------------------------------------------------------


def test_the_new_sms_picker_lists_only_permitted_lines(client, nurse, lead, reachable, main, cardiology):
    assign_perm(SEND, lead, cardiology)
    client.force_login(nurse)
    html = client.get(
        reverse("careportal:communication_new"), {"patient": reachable.pk}, HTTP_HX_TARGET="new-body", **HX
    ).content.decode()
    assert "Main clinic · +15550100001" in html and "Cardiology" not in html

    client.force_login(lead)
    html = client.get(
        reverse("careportal:communication_new"), {"patient": reachable.pk}, HTTP_HX_TARGET="new-body", **HX
    ).content.decode()
    assert "Cardiology · +15550100002" in html


def test_posting_a_restricted_line_in_the_new_sms_form_is_refused(
    client, nurse, other_nurse, reachable, cardiology
):
    assign_perm(SEND, other_nurse, cardiology)
    client.force_login(nurse)
    data = {"patient": reachable.pk, "channel": "sms", "phone": "+15550102030", "sending_line": cardiology.pk}
    response = client.post(reverse("careportal:communication_new"), {**data, "body": "Hi"}, **HX)
    assert response.status_code == 422
    assert "Choose an active sending line." in response.content.decode()
    assert not Communication.objects.exists()


def test_the_reply_box_lists_only_permitted_lines(client, nurse, other_nurse, patient, main, cardiology):
    assign_perm(SEND, other_nurse, cardiology)
    sms = _sms(patient, None)
    client.force_login(nurse)
    html = client.get(reverse("careportal:communication", args=[sms.pk]), **HX).content.decode()
    assert 'name="sending_line"' in html and "Main clinic" in html and "Cardiology" not in html

    response = client.post(
        reverse("careportal:communication_reply", args=[sms.pk]),
        {"body": "Hi", "sending_line": cardiology.pk},
        **HX,
    )
    assert response.status_code == 422
    sms.refresh_from_db()
    assert sms.sending_line is None and not Message.objects.exists()


def test_replying_on_a_restricted_line_shows_a_clear_message(client, nurse, other_nurse, patient, cardiology):
    assign_perm(SEND, other_nurse, cardiology)
    sms = _sms(patient, cardiology)
    client.force_login(nurse)
    response = client.post(reverse("careportal:communication_reply", args=[sms.pk]), {"body": "Hi"}, **HX)
    assert response.status_code == 422
    assert "You may not send from the line Cardiology" in response.content.decode()
    assert not Message.objects.exists()


def test_a_chat_invitation_by_sms_goes_out_on_a_line_the_user_may_use(
    nurse, other_nurse, reachable, main, cardiology
):
    from careportal.chat import send_chat_invite

    assign_perm(SEND, other_nurse, cardiology)  # Cardiology sorts first, but the nurse may not use it
    message = send_chat_invite(user=nurse, patient=reachable, channel=Channel.SMS)
    assert message.communication.sending_line == main and message.sender_address == "+15550100001"


def test_a_chat_invitation_by_sms_is_refused_when_no_line_is_usable(
    nurse, other_nurse, reachable, cardiology
):
    from careportal.chat import send_chat_invite
    from inbox.errors import ReplyNotAllowed

    assign_perm(SEND, other_nurse, cardiology)
    with pytest.raises(ReplyNotAllowed, match="no active sending line"):
        send_chat_invite(user=nurse, patient=reachable, channel=Channel.SMS)
    assert not Communication.objects.exists()
