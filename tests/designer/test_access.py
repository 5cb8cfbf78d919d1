"""Who may use the Designer: users whose *published* role holds the Designer policy. Everyone else gets 403,
anonymous visitors the sign-in page, and a wrong method 405."""

import pytest
from django.urls import reverse

from designer.models import ConfigVersion, MenuItem, Policy, PolicyGrant
from tests.factories import DraftConfigVersionFactory, RoleFactory

GET_PAGES = [
    ("designer:home", {}),
    ("designer:draft", {}),
    ("designer:role_new", {}),
    ("designer:role_edit", {"key": "care-nurse"}),
    ("designer:template_new", {}),
    ("designer:template_edit", {"key": "greeting"}),
    ("designer:version", {"number": 1}),
]
POST_ONLY = [
    ("designer:draft_open", {}),
    ("designer:draft_publish", {}),
    ("designer:draft_discard", {}),
    ("designer:role_remove", {"key": "care-nurse"}),
    ("designer:template_remove", {"key": "greeting"}),
    ("designer:template_preview", {}),
    ("designer:version_restore", {"number": 1}),
]
ALL = GET_PAGES + POST_ONLY


@pytest.mark.parametrize(("name", "kwargs"), ALL)
def test_anonymous_visitors_are_sent_to_sign_in(client, published_config, name, kwargs):
    url = reverse(name, kwargs=kwargs)
    response = client.get(url) if (name, kwargs) in GET_PAGES else client.post(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(("name", "kwargs"), ALL)
def test_it_is_refused_to_a_user_whose_role_lacks_the_designer_policy(client, lead, name, kwargs):
    client.force_login(lead)
    url = reverse(name, kwargs=kwargs)
    response = client.get(url) if (name, kwargs) in GET_PAGES else client.post(url)
    assert response.status_code == 403


@pytest.mark.parametrize(("name", "kwargs"), POST_ONLY)
def test_post_only_endpoints_reject_get(client, designer, name, kwargs):
    client.force_login(designer)
    assert client.get(reverse(name, kwargs=kwargs)).status_code == 405


@pytest.mark.parametrize(
    ("name", "kwargs"), [("designer:home", {}), ("designer:draft", {}), ("designer:version", {"number": 1})]
)
def test_read_only_pages_reject_post(client, designer, name, kwargs):
    client.force_login(designer)
    assert client.post(reverse(name, kwargs=kwargs)).status_code == 405


def test_the_designer_policy_only_counts_in_the_published_version(client, outsider, published_config):
    draft = DraftConfigVersionFactory()
    RoleFactory(
        version=draft, key="front-desk", name="Front Desk", menu=[MenuItem.HOME], policies=[Policy.DESIGNER]
    )
    client.force_login(outsider)
    assert client.get(reverse("designer:home")).status_code == 403


def test_an_inactive_role_gives_no_designer_access(client, designer, published_config):
    _, roles = published_config
    roles["designer"].is_active = False
    roles["designer"].save()
    client.force_login(designer)
    assert client.get(reverse("designer:home")).status_code == 403


def test_revoking_the_policy_in_the_published_version_takes_effect_on_the_next_request(
    client, designer, published_config
):
    client.force_login(designer)
    assert client.get(reverse("designer:home")).status_code == 200
    PolicyGrant.objects.filter(
        role__key="designer", role__version__status=ConfigVersion.Status.PUBLISHED
    ).delete()
    assert client.get(reverse("designer:home")).status_code == 403


def test_the_sidebar_shows_designer_only_to_designers(client, designer, nurse):
    client.force_login(designer)
    response = client.get(reverse("careportal:home"))
    assert [item["key"] for item in response.context["sidebar"]] == ["home", "designer"]
    assert b'data-nav="designer"' in response.content
    client.force_login(nurse)
    assert b'data-nav="designer"' not in client.get(reverse("careportal:home")).content
