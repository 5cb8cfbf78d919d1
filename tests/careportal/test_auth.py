"""Sign-in and sign-out: Django auth, audited."""

import pytest
from django.urls import reverse

from inbox.models import AuditEvent

PASSWORD = "correct-horse-battery"


def test_sign_in_is_audited_with_where_from(client, nurse):
    response = client.post(
        reverse("login"),
        {"username": "nurse", "password": PASSWORD},
        REMOTE_ADDR="10.1.2.3",
        HTTP_USER_AGENT="pytest-browser",
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("careportal:home")
    event = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN)
    assert (event.actor, event.ip, event.user_agent) == (nurse, "10.1.2.3", "pytest-browser")


def test_failed_sign_in_is_audited_and_shows_a_clear_error(client, nurse):
    response = client.post(reverse("login"), {"username": "nurse", "password": "wrong-password"})
    assert response.status_code == 200
    assert "didn't match" in response.content.decode()
    event = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN_FAILED)
    assert event.actor is None
    assert event.detail == {"username": "nurse"}
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN).exists()


def test_sign_out_is_audited_and_needs_post(client, nurse):
    client.force_login(nurse)
    assert client.get(reverse("logout")).status_code == 405
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_OUT, actor=nurse).count() == 1


@pytest.mark.django_db
def test_portal_pages_need_sign_in(client):
    for name in ("careportal:home", "careportal:inbox", "careportal:patients"):
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
