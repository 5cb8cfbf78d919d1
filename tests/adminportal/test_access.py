"""Who may use the Admin Portal: users whose *published* role holds the Administrator policy. Everyone else (a
designer included) gets 403, anonymous visitors the sign-in page, and a wrong method 405."""

import pytest
from django.urls import reverse

PAGES = [
    ("adminportal:home", {}),
    ("adminportal:users", {}),
    ("adminportal:user_new", {}),
    ("adminportal:user_detail", {"pk": 1}),
    ("adminportal:user_deactivated", {"pk": 1}),
    ("adminportal:grant_search", {"pk": 1}),
    ("adminportal:settings", {}),
    ("adminportal:lines", {}),
    ("adminportal:line_edit", {"pk": 1}),
    ("adminportal:addresses", {}),
    ("adminportal:address_edit", {"pk": 1}),
    ("adminportal:audit", {}),
    ("adminportal:audit_export", {}),
    ("adminportal:ingestion", {}),
]
POST_ONLY = [
    ("adminportal:user_deactivate", {"pk": 1}),
    ("adminportal:user_reactivate", {"pk": 1}),
    ("adminportal:user_invite", {"pk": 1}),
    ("adminportal:grant_add", {"pk": 1}),
    ("adminportal:grant_remove", {"pk": 1, "patient_pk": 1}),
    ("adminportal:setting_update", {"key": "inbox_notifications"}),
    ("adminportal:ingestion_reprocess", {"pk": 1}),
]
GET_ONLY = [
    ("adminportal:home", {}),
    ("adminportal:users", {}),
    ("adminportal:user_deactivated", {"pk": 1}),
    ("adminportal:grant_search", {"pk": 1}),
    ("adminportal:settings", {}),
    ("adminportal:audit", {}),
    ("adminportal:audit_export", {}),
    ("adminportal:ingestion", {}),
]


@pytest.mark.parametrize(("name", "kwargs"), PAGES + POST_ONLY)
def test_anonymous_visitors_are_sent_to_sign_in(client, published_config, name, kwargs):
    url = reverse(name, kwargs=kwargs)
    response = client.post(url) if (name, kwargs) in POST_ONLY else client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(("name", "kwargs"), PAGES + POST_ONLY)
def test_admin_pages_are_refused_to_non_administrators(client, designer, name, kwargs):
    client.force_login(designer)
    url = reverse(name, kwargs=kwargs)
    response = client.post(url) if (name, kwargs) in POST_ONLY else client.get(url)
    assert response.status_code == 403


@pytest.mark.parametrize(("name", "kwargs"), PAGES)
def test_admin_pages_are_refused_to_a_team_lead(client, lead, name, kwargs):
    client.force_login(lead)
    assert client.get(reverse(name, kwargs=kwargs)).status_code == 403


@pytest.mark.parametrize(("name", "kwargs"), POST_ONLY)
def test_post_only_endpoints_reject_get(client, administrator, name, kwargs):
    client.force_login(administrator)
    assert client.get(reverse(name, kwargs=kwargs)).status_code == 405


@pytest.mark.parametrize(("name", "kwargs"), GET_ONLY)
def test_read_only_pages_reject_post(client, administrator, name, kwargs):
    client.force_login(administrator)
    assert client.post(reverse(name, kwargs=kwargs)).status_code == 405


def test_the_overview_shows_each_section(client, administrator):
    client.force_login(administrator)
    response = client.get(reverse("adminportal:home"))
    assert response.status_code == 200
    for text in (
        b"Users",
        b"Inbox Notifications",
        b"Sending lines",
        b"Inbound addresses",
        b"Audit log",
        b"Ingestion health",
    ):
        assert text in response.content


def test_the_sidebar_shows_admin_portal_only_to_administrators(client, administrator, designer):
    client.force_login(administrator)
    response = client.get(reverse("careportal:home"))
    assert [item["key"] for item in response.context["sidebar"]] == ["home", "adminportal"]
    client.force_login(designer)
    assert b'data-nav="adminportal"' not in client.get(reverse("careportal:home")).content
