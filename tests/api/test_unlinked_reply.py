"""The Inbox API's send on an Unrecognized communication (item 16): refused (422) without
``confirm_unlinked_recipient``; with it the reply goes, text only, and is audited; the field is in the schema."""

import pytest

from inbox.models import AuditEvent, Message
from tests.factories import MessageTemplateFactory, UnrecognizedCommunicationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def unknown(api_user):
    return UnrecognizedCommunicationFactory(counterpart="pharmacy@mail.example", assignee=api_user)


def _send(api, communication, **data):
    return api.post(f"/api/v1/communications/{communication.pk}/send/", data, format="json")


def _sent(communication):
    return Message.objects.filter(communication=communication, direction=Message.Direction.OUTBOUND)


def test_without_the_confirmation_it_is_refused_naming_the_recipient(api, unknown):
    response = _send(api, unknown, body="Please fax the refill.")
    assert response.status_code == 422
    assert "pharmacy@mail.example is not linked to a patient" in response.json()["detail"]
    assert not _sent(unknown).exists()


def test_with_the_confirmation_it_is_sent_and_audited(api, api_user, unknown):
    response = _send(api, unknown, body="Please fax the refill.", confirm_unlinked_recipient=True)
    assert response.status_code == 201, response.content
    assert response.json()["message"]["recipient_address"] == "pharmacy@mail.example"
    event = AuditEvent.objects.get(action=AuditEvent.Action.MESSAGE_SENT, communication=unknown)
    assert event.actor == api_user and event.detail["unlinked_recipient"] == "pharmacy@mail.example"


@pytest.mark.parametrize(
    "extra, reason",
    [({"is_secure": True}, "A secure email needs a patient"), ({"document_ids": [5]}, "Attachments")],
)
def test_confirmed_it_is_still_text_only(api, unknown, extra, reason):
    response = _send(api, unknown, body="Hi", confirm_unlinked_recipient=True, **extra)
    assert response.status_code == 422 and reason in response.json()["detail"]
    assert not _sent(unknown).exists()


def test_a_template_is_refused_on_an_unlinked_sender(api, unknown, published_config):
    version, _ = published_config
    template = MessageTemplateFactory(version=version, channel="email")
    response = _send(api, unknown, template=template.pk, confirm_unlinked_recipient=True)
    assert response.status_code == 400
    assert "link this first" in str(response.json())
    assert not _sent(unknown).exists()


def test_an_integration_without_access_gets_404(outsider_api, unknown):
    response = _send(outsider_api, unknown, body="Hi", confirm_unlinked_recipient=True)
    assert response.status_code == 404
    assert not _sent(unknown).exists()


def test_the_schema_documents_the_confirmation(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    field = schema["components"]["schemas"]["SendRequest"]["properties"]["confirm_unlinked_recipient"]
    assert field["type"] == "boolean" and "Unrecognized" in field["description"]
