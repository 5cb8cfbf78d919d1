"""Django admin's user forms refuse an email address another user has, whatever its case (as the Admin Portal does)."""

import pytest
from django.urls import reverse

from adminportal.models import User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="admin", is_staff=True, is_superuser=True))
    return client


def _add(admin_client, username: str, email: str):
    return admin_client.post(
        reverse("admin:adminportal_user_add"),
        {
            "username": username,
            "usable_password": "false",
            "first_name": "Nora",
            "last_name": "Blake",
            "email": email,
            "role": "",
            "title": "",
            "time_zone": "America/New_York",
        },
    )


def test_it_creates_a_user_with_a_new_email(admin_client):
    response = _add(admin_client, "nblake", "nora.blake@example.org")
    assert response.status_code == 302
    assert User.objects.get(username="nblake").email == "nora.blake@example.org"


def test_it_refuses_a_new_user_with_an_email_another_user_has_in_any_case(admin_client):
    UserFactory(username="first", email="nora.blake@example.org")
    response = _add(admin_client, "nblake", "Nora.Blake@Example.ORG")
    assert response.status_code == 200
    assert "Another user already has the email address Nora.Blake@Example.ORG." in response.content.decode()
    assert not User.objects.filter(username="nblake").exists()


def test_it_refuses_changing_a_user_to_an_email_another_user_has(admin_client):
    UserFactory(username="first", email="nora.blake@example.org")
    other = UserFactory(username="second", email="second@example.org")
    url = reverse("admin:adminportal_user_change", args=[other.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "password"}
    data.update(
        email="NORA.BLAKE@example.org",
        time_zone=other.time_zone,
        date_joined_0=other.date_joined.strftime("%Y-%m-%d"),
        date_joined_1=other.date_joined.strftime("%H:%M:%S"),
    )
    data.pop("date_joined", None)
    data.pop("last_login", None)
    for many in ("groups", "user_permissions", "regions"):
        data[many] = [item.pk for item in data.get(many, [])]
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "Another user already has the email address" in response.content.decode()
    other.refresh_from_db()
    assert other.email == "second@example.org"


def test_it_keeps_a_users_own_email_and_allows_several_without_one(admin_client):
    from adminportal.admin import UserChangeForm, UserCreationForm

    user = UserFactory(username="first", email="nora.blake@example.org")
    UserFactory(username="blank", email="")
    form = UserChangeForm(instance=user, data={"email": "Nora.Blake@example.org"})
    form.is_valid()
    assert "email" not in form.errors
    creation = UserCreationForm(data={"username": "another", "usable_password": "false", "email": ""})
    creation.is_valid()
    assert "email" not in creation.errors
