"""The Designer overview: the published version, the open draft and the version history."""

from django.urls import reverse

from designer.models import ConfigVersion
from tests.factories import ConfigVersionFactory, DraftConfigVersionFactory


def test_it_shows_the_published_version_and_offers_to_open_a_draft(client, designer, published_config):
    version, _ = published_config
    client.force_login(designer)
    response = client.get(reverse("designer:home"))
    assert response.status_code == 200
    assert f"Published v{version.number}".encode() in response.content
    assert b'data-testid="open-draft"' in response.content
    assert b"No draft open" in response.content


def test_it_offers_to_continue_an_open_draft_instead(client, designer, published_config):
    draft = DraftConfigVersionFactory(number=50)
    client.force_login(designer)
    response = client.get(reverse("designer:home"))
    assert f"Continue draft v{draft.number}".encode() in response.content
    assert b'data-testid="open-draft"' not in response.content


def test_history_lists_versions_with_author_time_and_summary(client, designer, published_config):
    ConfigVersionFactory(
        number=40,
        status=ConfigVersion.Status.ARCHIVED,
        author=designer,
        change_summary="Added role Billing (billing)",
    )
    client.force_login(designer)
    response = client.get(reverse("designer:home"))
    content = response.content.decode()
    assert 'data-version="40"' in content
    assert "Added role Billing (billing)" in content
    assert "Devin Shah" in content
    assert 'data-testid="restore-40"' in content


def test_restore_is_disabled_while_a_draft_is_open(client, designer, published_config):
    ConfigVersionFactory(number=40, status=ConfigVersion.Status.ARCHIVED)
    DraftConfigVersionFactory(number=41)
    client.force_login(designer)
    content = client.get(reverse("designer:home")).content.decode()
    assert 'disabled title="Publish or discard draft v41 first" data-testid="restore-40"' in content


def test_a_version_page_shows_its_roles_templates_and_summary(client, designer, published_config):
    version, _ = published_config
    version.change_summary = "Added role Team Lead (team-lead)"
    version.save()
    client.force_login(designer)
    response = client.get(reverse("designer:version", args=[version.number]))
    assert response.status_code == 200
    assert b"Team Lead" in response.content
    assert b"Added role Team Lead (team-lead)" in response.content


def test_an_unknown_version_is_404(client, designer):
    client.force_login(designer)
    assert client.get(reverse("designer:version", args=[999])).status_code == 404
