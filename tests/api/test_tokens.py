"""API tokens: hashed at rest, shown once, revocable at once, last use recorded at most once a minute; the Admin
Portal → Integrations page that creates, lists and revokes them (administrators only, audited)."""

import datetime as dt
import hashlib

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from adminportal.models import ApiToken
from inbox.api import tokens
from inbox.models import AuditEvent
from tests.api.conftest import bearer_client

pytestmark = pytest.mark.django_db


def test_a_token_is_stored_only_as_its_sha256(api_user, administrator):
    token, raw = tokens.create_token(actor=administrator, user=api_user, name="EHR sync")
    assert raw.startswith("cit_") and len(raw) > 40
    assert token.secret_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert token.prefix == raw[:12]
    stored = (
        ApiToken.objects.filter(pk=token.pk).values_list(*[f.attname for f in ApiToken._meta.fields]).get()
    )
    assert raw not in [str(value) for value in stored]
    event = AuditEvent.objects.get(action=AuditEvent.Action.SETTING_CHANGED)
    assert event.detail["change"] == "api_token.created" and raw not in str(event.detail)


def test_two_tokens_never_share_a_secret(api_user):
    assert (
        tokens.create_token(actor=None, user=api_user, name="a")[1]
        != tokens.create_token(actor=None, user=api_user, name="b")[1]
    )


def test_a_token_is_only_for_a_user_whose_role_holds_inbox_api(nurse, administrator):
    with pytest.raises(tokens.TokenError, match="Inbox API"):
        tokens.create_token(actor=administrator, user=nurse, name="nope")
    with pytest.raises(tokens.TokenError, match="Name"):
        tokens.create_token(actor=administrator, user=nurse, name="  ")
    assert not ApiToken.objects.exists()


def test_a_revoked_token_is_refused_at_once(api_user, administrator):
    client = bearer_client(api_user)
    assert client.get("/api/v1/inboxes/").status_code == 200
    tokens.revoke_token(actor=administrator, token=ApiToken.objects.get(), request=None)
    response = client.get("/api/v1/inboxes/")
    assert response.status_code == 401
    assert response.json()["detail"] == "The token is not valid or has been revoked."
    assert AuditEvent.objects.filter(detail__change="api_token.revoked").count() == 1
    tokens.revoke_token(
        actor=administrator, token=ApiToken.objects.get(), request=None
    )  # twice: no new event
    assert AuditEvent.objects.filter(detail__change="api_token.revoked").count() == 1


def test_a_deactivated_users_token_is_refused(api_user):
    client = bearer_client(api_user)
    api_user.is_active = False
    api_user.save()
    assert client.get("/api/v1/inboxes/").status_code == 401


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer a b", "Bearer cit_wrong", "Bearer " + "x" * 300, "Bearer caf\u00e9"]
)
def test_malformed_or_unknown_tokens_are_401(api_user, header):
    bearer_client(api_user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header.encode("utf-8").decode("latin-1"))
    response = client.get("/api/v1/inboxes/")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


def test_a_bad_token_never_falls_back_to_the_session(api_user):
    client = APIClient()
    client.force_login(api_user)
    client.credentials(HTTP_AUTHORIZATION="Bearer cit_wrong")
    assert client.get("/api/v1/inboxes/").status_code == 401


def test_last_use_is_recorded_at_most_once_a_minute(api_user):
    client = bearer_client(api_user)
    token = ApiToken.objects.get()
    assert token.last_used_at is None
    client.get("/api/v1/inboxes/")
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    client.get("/api/v1/inboxes/")
    token.refresh_from_db()
    assert token.last_used_at == first  # within the minute: no write
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - dt.timedelta(minutes=2))
    client.get("/api/v1/inboxes/")
    token.refresh_from_db()
    assert token.last_used_at > first - dt.timedelta(seconds=1)
    assert timezone.now() - token.last_used_at < dt.timedelta(seconds=5)


# --- Admin Portal → Integrations ---------------------------------------------------------------------------


def test_the_page_creates_a_token_and_shows_it_once(client, administrator, api_user):
    client.force_login(administrator)
    response = client.post(
        "/admin-portal/integrations/tokens/", {"token-user": api_user.pk, "token-name": "EHR sync"}
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    raw = response.context["new_token"]["raw"]
    assert raw.encode() in response.content
    page = client.get("/admin-portal/integrations/")
    assert raw.encode() not in page.content  # never again
    assert ApiToken.objects.get().prefix.encode() in page.content
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/inboxes/").status_code == 200


def test_the_page_offers_only_users_holding_inbox_api_and_refuses_others(
    client, administrator, api_user, nurse
):
    client.force_login(administrator)
    page = client.get("/admin-portal/integrations/")
    choices = list(page.context["token_form"].fields["user"].queryset)
    assert choices == [api_user]
    response = client.post(
        "/admin-portal/integrations/tokens/", {"token-user": nurse.pk, "token-name": "sneaky"}
    )
    assert response.status_code == 422
    assert b"Choose a user whose role holds Inbox API." in response.content
    assert not ApiToken.objects.exists()


def test_the_page_revokes_a_token_and_audits_it(client, administrator, api_user):
    token, _ = tokens.create_token(actor=administrator, user=api_user, name="EHR sync")
    client.force_login(administrator)
    response = client.post(f"/admin-portal/integrations/tokens/{token.pk}/revoke/")
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    event = AuditEvent.objects.get(detail__change="api_token.revoked")
    assert event.actor_id == administrator.pk and event.ip == "127.0.0.1"


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/admin-portal/integrations/"), ("post", "/admin-portal/integrations/tokens/"),
     ("post", "/admin-portal/integrations/webhooks/")],
)  # fmt: skip
def test_the_page_is_for_administrators_only(client, nurse, api_user, method, path):
    assert getattr(client, method)(path).status_code == 302  # anonymous: to the sign-in page
    client.force_login(api_user)  # even an Inbox API user may not mint tokens
    assert getattr(client, method)(path).status_code == 403
    assert not ApiToken.objects.exists()


def test_revoking_needs_post_and_an_administrator(client, administrator, api_user):
    token, _ = tokens.create_token(actor=administrator, user=api_user, name="EHR sync")
    client.force_login(administrator)
    assert client.get(f"/admin-portal/integrations/tokens/{token.pk}/revoke/").status_code == 405
    client.force_login(api_user)
    assert client.post(f"/admin-portal/integrations/tokens/{token.pk}/revoke/").status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is None
