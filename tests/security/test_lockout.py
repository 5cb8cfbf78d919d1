"""Sign-in lockout (django-axes): AXES_FAILURE_LIMIT failed sign-ins for one username from one address lock that pair
out for AXES_COOLOFF_TIME with a clear message; a successful sign-in clears the count; lockouts are audited and listed
in Django admin."""

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.urls import reverse

from inbox.models import AuditEvent
from tests.factories import UserFactory

PASSWORD = "correct-horse-battery"
LIMIT = 3


@pytest.fixture(autouse=True)
def _limit(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT


def sign_in(client, password, *, username="nurse", address="10.0.0.7"):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


def test_the_limit_of_failures_locks_the_username_from_that_address_with_a_clear_message(client, nurse):
    for _ in range(LIMIT - 1):
        refused = sign_in(client, "wrong-password")
        assert refused.status_code == 200
        assert "didn't match" in refused.content.decode()

    locked = sign_in(client, "wrong-password")

    assert locked.status_code == 429
    body = locked.content.decode()
    assert 'data-testid="locked-out"' in body
    assert "Too many failed sign-in attempts for “nurse”" in body
    assert "paused for 15 minutes" in body
    assert "_auth_user_id" not in client.session


def test_a_locked_out_user_cannot_sign_in_even_with_the_right_password(client, nurse):
    for _ in range(LIMIT):
        sign_in(client, "wrong-password")

    response = sign_in(client, PASSWORD)

    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN).exists()


def test_a_successful_sign_in_resets_the_count(client, nurse):
    for _ in range(LIMIT - 1):
        sign_in(client, "wrong-password")
    assert sign_in(client, PASSWORD).status_code == 302
    client.logout()

    for _ in range(LIMIT - 1):
        assert sign_in(client, "wrong-password").status_code == 200
    assert sign_in(client, PASSWORD).status_code == 302


def test_the_lockout_is_per_username_and_address(client, nurse, other_nurse):
    for _ in range(LIMIT):
        sign_in(client, "wrong-password")

    assert sign_in(client, PASSWORD, address="10.0.0.8").status_code == 302  # same user, another device
    client.logout()
    assert sign_in(client, PASSWORD, username="other-nurse").status_code == 302  # colleague, same address


def test_the_lockout_ends_after_the_cool_off(client, nurse, settings):
    for _ in range(LIMIT):
        sign_in(client, "wrong-password")
    assert sign_in(client, PASSWORD).status_code == 429

    from datetime import timedelta

    from django.utils import timezone

    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )

    assert sign_in(client, PASSWORD).status_code == 302


def test_a_lockout_is_audited_and_listed_in_django_admin(client, nurse):
    for _ in range(LIMIT):
        sign_in(client, "wrong-password")

    lockout = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN_FAILED, detail__locked_out=True)
    assert (lockout.actor_label, lockout.ip, lockout.detail["username"]) == ("nurse", "10.0.0.7", "nurse")
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN_FAILED).count() == LIMIT + 1
    assert AccessFailureLog.objects.filter(username="nurse", locked_out=True).exists()

    superuser = UserFactory(username="root", is_staff=True, is_superuser=True)
    admin = client.__class__()
    admin.force_login(superuser)
    listed = admin.get(reverse("admin:axes_accessattempt_changelist")).content.decode()
    assert "nurse" in listed and "10.0.0.7" in listed


def test_an_administrator_unlocks_by_deleting_the_attempt(client, nurse):
    for _ in range(LIMIT):
        sign_in(client, "wrong-password")

    AccessAttempt.objects.filter(username="nurse").delete()

    assert sign_in(client, PASSWORD).status_code == 302


def test_force_login_and_test_client_login_are_unaffected(client, nurse):
    for _ in range(LIMIT):
        sign_in(client, "wrong-password", address="127.0.0.1")

    assert client.login(username="nurse", password=PASSWORD)  # no request: not a remote sign-in attempt
    client.logout()
    client.force_login(nurse)
    assert client.get(reverse("careportal:home")).status_code == 200
