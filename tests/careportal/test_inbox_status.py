"""The manual Open/Closed switch beside the reply box."""

import pytest
from django.urls import reverse

from inbox.models import AuditEvent, Communication
from tests.factories import (
    CommunicationFactory,
)

HX = {"HTTP_HX_REQUEST": "true"}


def url(name, communication):
    return reverse(f"careportal:{name}", args=[communication.pk])


@pytest.fixture
def communication(nurse, patient):
    return CommunicationFactory(patient=patient, assignee=nurse)


def test_closing_by_hand_returns_the_header_and_the_switch_and_refreshes_the_row(
    client, nurse, communication
):
    client.force_login(nurse)
    response = client.post(url("communication_status", communication), {"status": "closed"}, **HX)
    assert response.status_code == 200
    communication.refresh_from_db()
    assert communication.status == Communication.Status.CLOSED
    html = response.content.decode()
    assert html.lstrip().startswith('<header id="conversation-header"')
    assert 'id="reply-status" class="status-switch" hx-swap-oob="true"' in html
    assert 'value="closed" class="seg is-on" aria-pressed="true"' in html
    assert '"inbox:changed"' in response["HX-Trigger"]
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.STATUS_CHANGED, communication=communication
    ).exists()


def test_reopening_by_hand(client, nurse, patient):
    closed = CommunicationFactory(patient=patient, status=Communication.Status.CLOSED)
    client.force_login(nurse)
    client.post(url("communication_status", closed), {"status": "open"}, **HX)
    closed.refresh_from_db()
    assert closed.status == Communication.Status.OPEN


def test_an_unknown_status_is_refused_and_changes_nothing(client, nurse, communication):
    client.force_login(nurse)
    response = client.post(url("communication_status", communication), {"status": "snoozed"}, **HX)
    assert response.status_code == 422
    assert "Choose Open or Closed." in response.content.decode()
    communication.refresh_from_db()
    assert communication.status == Communication.Status.OPEN


def test_status_without_htmx_redirects(client, nurse, communication):
    client.force_login(nurse)
    response = client.post(url("communication_status", communication), {"status": "closed"})
    assert response.status_code == 302


def test_status_rejects_get(client, nurse, communication):
    client.force_login(nurse)
    assert client.get(url("communication_status", communication), **HX).status_code == 405


def test_status_by_a_user_without_access_is_404_and_changes_nothing(client, other_nurse, communication):
    client.force_login(other_nurse)
    response = client.post(url("communication_status", communication), {"status": "closed"}, **HX)
    assert response.status_code == 404 and b"Lopez" not in response.content
    communication.refresh_from_db()
    assert communication.status == Communication.Status.OPEN


def test_status_needs_sign_in(client, communication):
    response = client.post(url("communication_status", communication), {"status": "closed"})
    assert response["Location"].startswith(reverse("login"))
