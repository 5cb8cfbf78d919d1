"""The secure message link: only a genuine, current link to an outbound secure message opens the page, and the
first page says where the code will go without showing anything of the message."""

import time
from unittest import mock

import pytest
from django.core import signing
from django.urls import reverse

from careportal.models import PatientContactMethod
from inbox.models import Message
from inbox.secure import SALT, TOKEN_MAX_AGE, make_token, secure_notice
from tests.careportal.secure_support import (
    ADDRESS,
    MASKED,
    SECRET_TEXT,
    SUBJECT,
    secure_conversation,
    url,
    verify,
)
from tests.factories import MessageFactory

pytestmark = pytest.mark.django_db

NOT_VALID = "This link is not valid or has expired"


@pytest.fixture
def message(nurse, patient):
    return secure_conversation(nurse, patient)


def assert_shows_nothing(response):
    page = response.content.decode()
    assert NOT_VALID in page
    for private in (SECRET_TEXT, SUBJECT, ADDRESS, MASKED, "Send me a code"):
        assert private not in page


def test_it_says_where_the_code_will_go_without_showing_the_message(client, message):
    response = client.get(url("start", message))
    assert response.status_code == 200
    page = response.content.decode()
    assert "You have a secure message" in page
    assert MASKED in page
    assert "Send me a code" in page
    for private in (SECRET_TEXT, SUBJECT, ADDRESS, "Maria", "Lopez"):
        assert private not in page
    assert "no-store" in response["Cache-Control"]


def test_it_is_not_the_staff_portal(client, message):
    page = client.get(url("start", message)).content.decode()
    assert 'class="sidebar"' not in page
    assert "css/patient.css" in page
    assert "<style" not in page and "style=" not in page


def test_the_link_in_the_notice_email_opens_the_page(client, message, settings):
    settings.PUBLIC_BASE_URL = "https://inbox.clinic.example"
    text, _ = secure_notice(message)
    link = next(word for word in text.split() if word.startswith("https://"))
    path = link.removeprefix("https://inbox.clinic.example")
    assert client.get(path).status_code == 200


def test_the_link_carries_no_address_or_content(message):
    token = make_token(message)
    decoded = signing.loads(token, salt=SALT)
    assert decoded == {"m": message.pk}
    assert ADDRESS not in token and "maria" not in token.lower()


def test_a_forged_link_is_a_friendly_404(client, message):
    response = client.get(reverse("secure:start", args=["not-a-real-token"]))
    assert response.status_code == 404
    assert_shows_nothing(response)


def test_an_altered_link_is_a_friendly_404(client, message):
    token = make_token(message)
    other = signing.dumps({"m": message.pk + 1}, salt=SALT)
    tampered = other.split(":")[0] + ":" + token.split(":", 1)[1]
    response = client.get(reverse("secure:start", args=[tampered]))
    assert response.status_code == 404
    assert_shows_nothing(response)


def test_a_link_signed_for_another_purpose_is_refused(client, message):
    token = signing.dumps({"m": message.pk}, salt="another-salt")
    assert client.get(reverse("secure:start", args=[token])).status_code == 404


def test_an_expired_link_is_gone(client, message):
    issued = time.time() - TOKEN_MAX_AGE - 60
    with mock.patch("django.core.signing.time.time", return_value=issued):
        token = make_token(message)
    for name in ("start", "verify", "thread"):
        response = client.get(url(name, token))
        assert response.status_code == 410
        assert_shows_nothing(response)


def test_a_link_to_a_message_that_is_not_a_secure_outbound_one_is_refused(client, message):
    plain = MessageFactory(
        communication=message.communication, direction=Message.Direction.OUTBOUND, recipient_address=ADDRESS
    )
    inbound = MessageFactory(communication=message.communication, is_secure=True, recipient_address=ADDRESS)
    note = MessageFactory(
        communication=message.communication, direction=Message.Direction.OUTBOUND, is_secure=True,
        is_internal_note=True, recipient_address=ADDRESS,
    )  # fmt: skip
    for other in (plain, inbound, note):
        assert client.get(url("start", other)).status_code == 404


def test_a_link_to_a_deleted_message_id_is_refused(client):
    token = signing.dumps({"m": 987654}, salt=SALT)
    assert client.get(reverse("secure:start", args=[token])).status_code == 404


def test_an_address_no_longer_on_file_is_refused(client, message):
    PatientContactMethod.objects.filter(value=ADDRESS).delete()
    response = client.get(url("start", message))
    assert response.status_code == 403
    assert "no longer on file" in response.content.decode()
    assert client.post(url("send_code", message)).status_code == 403


def test_a_verified_session_goes_straight_to_the_thread(client, message):
    verify(client, message)
    token = make_token(message)
    response = client.get(url("start", token))
    assert response.status_code == 302
    assert response["Location"] == url("thread", token)


def test_it_rejects_post(client, message):
    assert client.post(url("start", message)).status_code == 405
