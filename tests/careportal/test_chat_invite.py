"""Staff send a patient their chat link from the reply box (``careportal:chat_invite``): by SMS or email through the
Inbox services, only for a patient they may see; plus the link service and the include the Inbox uses."""

import re

import pytest
from django.core import mail
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import reverse

from careportal import chat
from inbox.delivery import LocmemSmsBackend
from inbox.errors import NotPermitted, ReplyNotAllowed
from inbox.models import AuditEvent, Channel, Communication, Message
from tests.factories import (
    CommunicationFactory,
    ContactFactory,
    PatientContactMethodFactory,
    PatientFactory,
    SendingLineFactory,
)

PHONE = "+15550102030"
EMAIL = "maria.lopez@mail.example"
LINK = re.compile(r"http://127\.0\.0\.1:8000/chat/([^/\s]+)/")


@pytest.fixture(autouse=True)
def _outboxes(local_outboxes, settings):
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"


@pytest.fixture
def reachable(patient):
    PatientContactMethodFactory(patient=patient, kind="phone", value=PHONE, is_primary=True)
    PatientContactMethodFactory(patient=patient, kind="email", value=EMAIL, is_primary=True)
    return patient


@pytest.fixture
def line(db):
    return SendingLineFactory(number="+15550100001", label="Main clinic")


def invite_url(patient):
    return reverse("careportal:chat_invite", kwargs={"pk": patient.pk})


def patient_of_link(text):
    token = LINK.search(text)[1]
    return chat.open_chat(token)


# --- The view: method, login, access -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_rejects_get(client, nurse, reachable):
    client.force_login(nurse)
    assert client.get(invite_url(reachable)).status_code == 405


@pytest.mark.django_db
def test_it_requires_sign_in(client, reachable):
    response = client.post(invite_url(reachable), {"channel": "sms"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["other_nurse", "outsider"])
def test_it_is_a_404_for_a_user_who_may_not_see_the_patient(client, request, reachable, line, who):
    client.force_login(request.getfixturevalue(who))
    assert client.post(invite_url(reachable), {"channel": "sms"}).status_code == 404
    assert LocmemSmsBackend.outbox == [] and not Message.objects.exists()


@pytest.mark.django_db
def test_it_is_a_404_for_a_patient_that_does_not_exist(client, nurse):
    client.force_login(nurse)
    response = client.post(reverse("careportal:chat_invite", kwargs={"pk": 999999}), {"channel": "sms"})
    assert response.status_code == 404


@pytest.mark.django_db
def test_it_is_a_404_for_a_communication_the_user_may_not_see(client, nurse, reachable, line):
    hidden = CommunicationFactory(patient=PatientFactory(), channel=Channel.SMS)
    client.force_login(nurse)
    response = client.post(invite_url(reachable), {"channel": "sms", "communication": hidden.pk})
    assert response.status_code == 404
    assert not Message.objects.exists()


# --- Sending the link ----------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_texts_the_patient_their_chat_link(client, nurse, reachable, line):
    client.force_login(nurse)
    response = client.post(invite_url(reachable), {"channel": "sms"})
    assert response.status_code == 302
    assert response["Location"] == reverse("careportal:patient_detail", kwargs={"pk": reachable.pk})
    [sms] = LocmemSmsBackend.outbox
    assert (sms["to"], sms["from"]) == (PHONE, line.number)
    assert sms["body"].startswith("Hello Maria, your care team invites you to a live chat:")
    session = patient_of_link(sms["body"])
    assert (session.patient, session.contact) == (reachable, None)
    message = Message.objects.get()
    assert (message.author, message.communication.channel, message.delivery_status) == (
        nurse,
        Channel.SMS,
        Message.DeliveryStatus.SENT,
    )
    assert AuditEvent.objects.filter(action=AuditEvent.Action.MESSAGE_SENT, actor=nurse).exists()


@pytest.mark.django_db(transaction=True)
def test_it_emails_the_patient_their_chat_link(client, nurse, reachable):
    client.force_login(nurse)
    client.post(invite_url(reachable), {"channel": "email"})
    [email] = mail.outbox
    assert email.to == [EMAIL]
    assert email.subject == "Chat with your care team"
    assert patient_of_link(email.body).patient == reachable
    assert Communication.objects.get().channel == Channel.EMAIL


@pytest.mark.django_db(transaction=True)
def test_from_an_sms_conversation_the_link_is_a_reply_that_keeps_it_open(client, nurse, reachable, line):
    conversation = CommunicationFactory(
        patient=reachable, channel=Channel.SMS, sending_line=line, counterpart=PHONE, subject=""
    )
    client.force_login(nurse)
    client.post(invite_url(reachable), {"channel": "sms", "communication": conversation.pk})
    assert Communication.objects.count() == 1
    conversation.refresh_from_db()
    assert conversation.status == Communication.Status.OPEN
    assert LINK.search(conversation.messages.get().body_text)
    assert LocmemSmsBackend.outbox[0]["to"] == PHONE


@pytest.mark.django_db(transaction=True)
def test_from_a_contacts_conversation_the_link_is_for_the_contact(client, nurse, reachable):
    mother = ContactFactory(patient=reachable, first_name="Rosa", email="rosa@mail.example")
    conversation = CommunicationFactory(
        patient=reachable, contact=mother, channel=Channel.EMAIL, counterpart="rosa@mail.example"
    )
    client.force_login(nurse)
    client.post(invite_url(reachable), {"channel": "email", "communication": conversation.pk})
    [email] = mail.outbox
    assert email.to == ["rosa@mail.example"]
    assert email.body.startswith("Hello Rosa,")
    session = patient_of_link(email.body)
    assert (session.patient, session.contact) == (reachable, mother)


@pytest.mark.django_db(transaction=True)
def test_htmx_gets_the_button_back_with_what_was_sent(client, nurse, reachable, line):
    client.force_login(nurse)
    response = client.post(invite_url(reachable), {"channel": "sms"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "data-chat-invite" in html
    assert f"Chat link sent by SMS to {PHONE}." in html


@pytest.mark.django_db
def test_a_patient_without_a_phone_gets_a_clear_error_and_nothing_is_sent(client, nurse, patient, line):
    client.force_login(nurse)
    response = client.post(invite_url(patient), {"channel": "sms"}, headers={"HX-Request": "true"})
    assert "Maria Lopez has no phone number on file." in response.content.decode()
    response = client.post(invite_url(patient), {"channel": "email"}, follow=True)
    assert "Maria Lopez has no email address on file." in response.content.decode()
    assert not Message.objects.exists() and LocmemSmsBackend.outbox == []


@pytest.mark.django_db
def test_an_sms_invite_needs_an_active_sending_line(client, nurse, reachable):
    client.force_login(nurse)
    response = client.post(invite_url(reachable), {"channel": "sms"}, headers={"HX-Request": "true"})
    assert "There is no active sending line" in response.content.decode()


@pytest.mark.django_db
def test_an_unknown_channel_is_refused(client, nurse, reachable):
    client.force_login(nurse)
    response = client.post(invite_url(reachable), {"channel": "fax"}, headers={"HX-Request": "true"})
    assert "A chat invitation is sent by SMS or email." in response.content.decode()


# --- The services and the include ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_chat_link_is_only_for_users_who_may_see_the_patient(nurse, other_nurse, patient):
    session = patient_of_link(chat.chat_link_for(nurse, patient))
    assert session.patient == patient
    with pytest.raises(NotPermitted):
        chat.chat_link_for(other_nurse, patient)
    with pytest.raises(NotPermitted):
        chat.send_chat_invite(user=other_nurse, patient=patient, channel=Channel.EMAIL)


@pytest.mark.django_db
def test_the_chat_link_of_a_contacts_conversation_is_the_contacts(nurse, patient):
    mother = ContactFactory(patient=patient)
    conversation = CommunicationFactory(patient=patient, contact=mother)
    assert patient_of_link(chat.chat_link_for(nurse, conversation)).contact == mother


@pytest.mark.django_db
def test_an_unrecognized_conversation_has_no_chat_link(nurse):
    from tests.factories import UnrecognizedCommunicationFactory

    with pytest.raises(ReplyNotAllowed):
        chat.chat_link_for(nurse, UnrecognizedCommunicationFactory(assignee=nurse))


@pytest.mark.django_db
def test_the_include_renders_a_button_for_each_channel(nurse, patient):
    conversation = CommunicationFactory(patient=patient)
    request = RequestFactory().get("/inbox/c/1/")
    request.user = nurse
    html = render_to_string(
        "careportal/chat/_invite_button.html",
        {"patient": patient, "communication": conversation},
        request=request,
    )
    assert html.count(f'hx-post="{invite_url(patient)}"') == 2
    assert 'value="sms"' in html and 'value="email"' in html
    assert f'name="communication" value="{conversation.pk}"' in html
    assert "csrfmiddlewaretoken" in html


def test_the_reply_box_offers_the_invitation_where_a_patient_can_be_invited(client, nurse, reachable, line):
    sms = CommunicationFactory(patient=reachable, channel=Channel.SMS, sending_line=line, counterpart=PHONE)
    unknown = CommunicationFactory(
        patient=None, is_unrecognized=True, channel=Channel.SMS, counterpart="+15550107777"
    )
    client.force_login(nurse)
    box = client.get(
        reverse("careportal:communication", args=[sms.pk]), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert 'data-testid="chat-invite-sms"' in box and invite_url(reachable) in box
    assert "reply-form" in box and box.index("data-chat-invite") < box.index(
        'id="reply-form"'
    )  # outside the form
    unknown.assignee = nurse
    unknown.save(update_fields=["assignee"])
    box = client.get(
        reverse("careportal:communication", args=[unknown.pk]), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "data-chat-invite" not in box  # nobody to invite until it is linked
