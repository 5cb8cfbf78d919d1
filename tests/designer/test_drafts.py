"""Opening, discarding and restoring drafts. A draft is a deep copy of the published version; only one is open."""

import pytest
from django.urls import reverse

from designer import services
from designer.models import ConfigVersion, MenuItem, MessageTemplate, Policy, Role
from tests.factories import ConfigVersionFactory, MessageTemplateFactory, RoleFactory

DRAFT = ConfigVersion.Status.DRAFT


def test_opening_a_draft_copies_roles_menus_policies_and_templates(client, designer, published_config):
    version, _ = published_config
    MessageTemplateFactory(
        version=version, key="greeting", name="Greeting", subject="Hi", body="Hi {{ patient.first_name }}"
    )
    client.force_login(designer)

    response = client.post(reverse("designer:draft_open"))

    assert response.status_code == 302
    assert response["Location"] == reverse("designer:draft")
    draft = ConfigVersion.objects.get(status=DRAFT)
    assert draft.number == version.number + 1
    assert draft.author == designer
    lead = draft.roles.get(key="team-lead")
    assert set(lead.menu_items.values_list("item", flat=True)) == {"home", "inbox", "patients"}
    assert set(lead.policy_grants.values_list("policy", flat=True)) == {
        "inbox_full_patient",
        "edit_patient_profile",
    }
    assert draft.roles.count() == version.roles.count()
    copied = draft.templates.get(key="greeting")
    assert (copied.name, copied.subject, copied.body) == ("Greeting", "Hi", "Hi {{ patient.first_name }}")
    # A deep copy: the published rows are untouched and distinct.
    assert Role.objects.filter(version=version).count() == draft.roles.count()
    assert not MessageTemplate.objects.filter(version=version, pk=copied.pk).exists()


def test_opening_a_second_draft_returns_the_open_one(designer, other_designer, published_config):
    first, created = services.open_draft(user=designer)
    second, created_again = services.open_draft(user=other_designer)
    assert created and not created_again
    assert first.pk == second.pk
    assert ConfigVersion.objects.filter(status=DRAFT).count() == 1


def test_the_open_draft_button_says_the_draft_is_already_open(client, designer, published_config):
    services.open_draft(user=designer)
    client.force_login(designer)
    response = client.post(reverse("designer:draft_open"), follow=True)
    assert b"is already open" in response.content


def test_the_draft_page_lists_roles_templates_and_no_changes_yet(client, designer, published_config):
    draft, _ = services.open_draft(user=designer)
    client.force_login(designer)
    response = client.get(reverse("designer:draft"))
    assert response.status_code == 200
    content = response.content.decode()
    assert f"Draft v{draft.number}" in content
    assert 'data-role="team-lead"' in content
    assert "No changes yet" in content


def test_the_draft_page_without_a_draft_goes_back_to_the_overview(client, designer):
    client.force_login(designer)
    response = client.get(reverse("designer:draft"))
    assert response.status_code == 302
    assert response["Location"] == reverse("designer:home")


def test_discarding_deletes_the_draft_and_keeps_the_published_version(client, designer, published_config):
    version, _ = published_config
    draft, _ = services.open_draft(user=designer)
    client.force_login(designer)

    response = client.post(reverse("designer:draft_discard"), {"revision": draft.revision})

    assert response.status_code == 302
    assert not ConfigVersion.objects.filter(pk=draft.pk).exists()
    assert not Role.objects.filter(version_id=draft.pk).exists()
    version.refresh_from_db()
    assert version.status == ConfigVersion.Status.PUBLISHED
    assert version.roles.count() == 4


def test_discarding_with_a_stale_revision_is_refused(client, designer, published_config):
    draft, _ = services.open_draft(user=designer)
    services.create_role(user=designer, draft=draft, revision=draft.revision, name="Billing", key="billing")
    client.force_login(designer)

    response = client.post(reverse("designer:draft_discard"), {"revision": draft.revision})

    assert response.status_code == 409
    assert b"Someone else changed this draft" in response.content
    assert ConfigVersion.objects.filter(pk=draft.pk, status=DRAFT).exists()


def test_restoring_an_archived_version_opens_a_draft_copied_from_it(client, designer, published_config):
    archived = ConfigVersionFactory(number=20, status=ConfigVersion.Status.ARCHIVED)
    RoleFactory(
        version=archived, key="legacy", name="Legacy Role", menu=[MenuItem.HOME], policies=[Policy.INBOX_API]
    )
    MessageTemplateFactory(version=archived, key="old", name="Old template")
    client.force_login(designer)

    response = client.post(reverse("designer:version_restore", args=[20]))

    assert response.status_code == 302
    assert response["Location"] == reverse("designer:draft")
    draft = ConfigVersion.objects.get(status=DRAFT)
    assert list(draft.roles.values_list("key", flat=True)) == ["legacy"]
    assert list(draft.roles.get().policy_grants.values_list("policy", flat=True)) == ["inbox_api"]
    assert list(draft.templates.values_list("key", flat=True)) == ["old"]
    archived.refresh_from_db()
    assert archived.status == ConfigVersion.Status.ARCHIVED


def test_restoring_is_refused_while_a_draft_is_open(client, designer, published_config):
    ConfigVersionFactory(number=20, status=ConfigVersion.Status.ARCHIVED)
    services.open_draft(user=designer)
    client.force_login(designer)

    response = client.post(reverse("designer:version_restore", args=[20]), follow=True)

    assert b"A draft is already open" in response.content
    assert ConfigVersion.objects.filter(status=DRAFT).count() == 1


def test_only_an_archived_version_can_be_restored(designer, published_config):
    version, _ = published_config
    with pytest.raises(services.InvalidChange, match="Only an archived version"):
        services.restore_as_draft(user=designer, version=version)


def test_a_draft_opened_at_the_same_moment_by_another_designer_is_returned(
    designer, other_designer, published_config, monkeypatch
):
    theirs, _ = services.open_draft(user=other_designer)
    # We looked for an open draft before theirs was committed: the one-draft constraint settles it.
    monkeypatch.setattr(services, "open_draft_version", lambda: None)
    mine, created = services.open_draft(user=designer)
    assert not created
    assert mine.pk == theirs.pk
    assert ConfigVersion.objects.filter(status=DRAFT).count() == 1
