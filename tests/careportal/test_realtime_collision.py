"""The reply box's collision guard: the form carries what the user saw (newest message, status, assignee); when
someone else wrote or changed the conversation since, Send answers 409 with what changed and "Send anyway", sends
nothing, and leaves the draft alone."""

import re

import pytest
from django.urls import reverse

from inbox.folders import Folder
from inbox.models import Communication, Message
from inbox.services import ReplyContent, assign, send_reply, set_status
from tests.careportal.realtime_support import HX, element, folder_url
from tests.factories import CommunicationFactory, MessageFactory

DRAFT = "Take half a tablet tonight and call us tomorrow."


@pytest.fixture
def communication(patient, nurse):
    communication = CommunicationFactory(
        patient=patient, assignee=nurse, channel="sms", counterpart="+15550102030"
    )
    MessageFactory(
        communication=communication, body_text="Can I take it with food?", sender_name="Maria Lopez"
    )
    return communication


def seen_on_page(client, communication) -> dict:
    """The hidden fields the reply form sends, as the page renders them."""
    page = client.get(folder_url(Folder.ASSIGNED_TO_ME, f"c={communication.pk}"))
    html = page.content.decode()
    fields = dict(re.findall(r'<input type="hidden"[^>]*name="(seen_\w+)"[^>]*value="([^"]*)"', html))
    assert set(fields) == {"seen_message_id", "seen_status", "seen_assignee"}
    assert html.count('form="reply-form"') == 3 and 'id="reply-form"' in html
    return fields


def reply(client, communication, seen: dict, **extra):
    data = {"body": DRAFT, "close": "0", **seen, **extra}
    return client.post(reverse("careportal:communication_reply", args=[communication.pk]), data, **HX)


def sent_by(user, communication):
    return communication.messages.filter(author=user, direction=Message.Direction.OUTBOUND)


@pytest.mark.django_db(transaction=True)
def test_a_colleagues_reply_since_the_page_was_opened_stops_the_send_and_says_what_changed(
    client, nurse, colleague, communication
):
    client.force_login(nurse)
    seen = seen_on_page(client, communication)
    theirs = send_reply(
        user=colleague, communication=communication, content=ReplyContent(body="With food is fine.")
    )

    response = reply(client, communication, seen)
    assert response.status_code == 409
    assert response["HX-Retarget"] == "#reply-collision" and response["HX-Reswap"] == "outerHTML"
    html = response.content.decode()
    warning = element(html, "reply-collision")
    assert "Cara Colleague sent" in warning and "With food is fine." in warning
    assert "Cara Colleague closed it." in warning  # Send and Close
    assert 'name="override" value="1"' in warning and 'data-testid="send-anyway"' in warning
    assert 'name="close" value="0"' in warning  # "Send anyway" repeats the button the user pressed
    # What the page shows is brought up to date out of band; the reply box and its draft are not in the answer.
    assert f'id="message-{theirs.pk}"' in element(html, "messages")
    assert 'hx-swap-oob="true"' in element(html, "conversation-header")
    assert "reply-box" not in html and DRAFT not in html
    assert not sent_by(nurse, communication).exists()

    response = reply(client, communication, seen, override="1")
    assert response.status_code == 200
    assert sent_by(nurse, communication).get().body_text == DRAFT


@pytest.mark.django_db(transaction=True)
def test_status_assignment_and_a_new_inbound_message_each_count(client, nurse, colleague, communication):
    client.force_login(nurse)
    seen = seen_on_page(client, communication)
    set_status(user=colleague, communication=communication, status=Communication.Status.CLOSED)
    assert "Cara Colleague closed it." in element(
        reply(client, communication, seen).content.decode(), "reply-collision"
    )

    seen = seen_on_page(client, communication)
    assign(user=colleague, communication=communication, assignee=colleague)
    warning = element(reply(client, communication, seen).content.decode(), "reply-collision")
    assert "Now assigned to Cara Colleague by Cara Colleague." in warning

    seen = seen_on_page(client, communication)
    MessageFactory(
        communication=communication, body_text="Also, I ran out of tablets.", sender_name="Maria Lopez"
    )
    warning = element(reply(client, communication, seen).content.decode(), "reply-collision")
    assert "Maria Lopez wrote" in warning and "I ran out of tablets" in warning
    assert not sent_by(nurse, communication).exists()


@pytest.mark.django_db(transaction=True)
def test_my_own_changes_elsewhere_do_not_count(client, nurse, communication):
    client.force_login(nurse)
    seen = seen_on_page(client, communication)
    set_status(user=nurse, communication=communication, status=Communication.Status.CLOSED)  # in another tab
    send_reply(user=nurse, communication=communication, content=ReplyContent(body="First part."), close=False)
    assert reply(client, communication, seen).status_code == 200
    assert sent_by(nurse, communication).count() == 2


@pytest.mark.django_db(transaction=True)
def test_up_to_date_fields_send_at_once(client, nurse, colleague, communication):
    client.force_login(nurse)
    send_reply(user=colleague, communication=communication, content=ReplyContent(body="Hello"), close=False)
    seen = seen_on_page(client, communication)  # the push (or a reload) brought the page up to date
    assert reply(client, communication, seen).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_without_javascript_nothing_is_sent_and_the_user_is_told(client, nurse, colleague, communication):
    client.force_login(nurse)
    seen = seen_on_page(client, communication)
    set_status(user=colleague, communication=communication, status=Communication.Status.CLOSED)
    url = reverse("careportal:communication_reply", args=[communication.pk])
    response = client.post(url, {"body": DRAFT, **seen}, follow=True)
    assert "changed this conversation while you were writing" in response.content.decode()
    assert not sent_by(nurse, communication).exists()


@pytest.mark.django_db(transaction=True)
def test_the_guard_answers_only_people_who_may_see_the_communication(client, other_nurse, communication):
    client.force_login(other_nurse)
    seen = {"seen_message_id": "0", "seen_status": "closed", "seen_assignee": ""}
    assert reply(client, communication, seen).status_code == 404
    assert reply(client, communication, seen, override="1").status_code == 404
