"""The reply box on an Unrecognized communication (item 16): Send asks to confirm the recipient by name (nothing is
sent, the draft stays); the confirmed form sends; text only; without access it is a 404."""

import pytest
from django.urls import reverse

from inbox.models import AuditEvent, Channel, Message
from tests.factories import SendingLineFactory, UnrecognizedCommunicationFactory

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def unknown(nurse):
    return UnrecognizedCommunicationFactory(
        channel=Channel.SMS, counterpart="+15550109999", assignee=nurse,
        sending_line=SendingLineFactory(number="+15550100001", label="Main clinic"),
    )  # fmt: skip


def _url(communication) -> str:
    return reverse("careportal:communication_reply", args=[communication.pk])


def _sent(communication):
    return Message.objects.filter(communication=communication, direction=Message.Direction.OUTBOUND)


def test_the_reply_box_offers_a_text_reply_beside_link(client, nurse, unknown):
    client.force_login(nurse)
    html = client.get(f"/inbox/my/assigned/?c={unknown.pk}").content.decode()
    assert 'id="reply-form"' in html and "Link to patient" in html
    assert "SMS to +15550109999" in html  # the editor names the raw number
    assert "Attach a file" not in html and "Use a template" not in html


def test_send_asks_to_confirm_naming_the_recipient_and_sends_nothing(client, nurse, unknown):
    client.force_login(nurse)
    response = client.post(_url(unknown), {"body": "Who is this, please?", "close": "0"}, **HX)
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#reply-collision" and response["HX-Reswap"] == "outerHTML"
    html = response.content.decode()
    assert "Send to +15550109999 (not linked to a patient)?" in html
    assert 'name="confirm_unlinked_recipient" value="1"' in html
    assert 'name="close" value="0"' in html  # the confirmation sends the way the writer chose
    assert not _sent(unknown).exists()


def test_the_confirmed_send_goes_and_is_audited(client, nurse, unknown):
    client.force_login(nurse)
    data = {"body": "Who is this, please?", "confirm_unlinked_recipient": "1"}
    response = client.post(_url(unknown), data, **HX)
    assert response.status_code == 200
    assert "data-sent" in response.content.decode()
    (message,) = _sent(unknown)
    assert message.recipient_address == "+15550109999" and message.body_text == "Who is this, please?"
    event = AuditEvent.objects.get(action=AuditEvent.Action.MESSAGE_SENT, communication=unknown)
    assert event.detail["unlinked_recipient"] == "+15550109999"


def test_without_htmx_an_unconfirmed_send_is_refused_with_the_reason(client, nurse, unknown):
    client.force_login(nurse)
    response = client.post(_url(unknown), {"body": "Hi"}, follow=True)
    assert "+15550109999 is not linked to a patient." in response.content.decode()
    assert not _sent(unknown).exists()


def test_a_nurse_without_access_gets_404_even_confirmed(client, other_nurse, unknown):
    client.force_login(other_nurse)
    response = client.post(_url(unknown), {"body": "Hi", "confirm_unlinked_recipient": "1"}, **HX)
    assert response.status_code == 404
    assert not _sent(unknown).exists()


def test_it_rejects_get(client, nurse, unknown):
    client.force_login(nurse)
    assert client.get(_url(unknown), **HX).status_code == 405
