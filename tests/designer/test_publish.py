"""Publishing: one transaction archives the published version and publishes the draft; a failure midway leaves the
published version untouched. The Care Portal reads only the published version."""

import pytest
from django.core.cache import cache
from django.urls import reverse

from designer import services
from designer.models import ConfigVersion, MenuItem, Policy
from designer.selectors import PUBLISHED_ROLES_CACHE_KEY, has_policy, published_version
from inbox.folders import InboxKind
from inbox.models import AuditEvent
from inbox.selectors import inboxes_for

PUBLISHED, ARCHIVED, DRAFT = (
    ConfigVersion.Status.PUBLISHED,
    ConfigVersion.Status.ARCHIVED,
    ConfigVersion.Status.DRAFT,
)


def reload(user):
    """The user as the next request sees them (role access is memoised per user object)."""
    return type(user).objects.get(pk=user.pk)


def edit_role(draft, designer, key, **changes):
    role = draft.roles.get(key=key)
    values = {
        "name": role.name,
        "is_active": role.is_active,
        "menu": set(role.menu_items.values_list("item", flat=True)),
        "policies": set(role.policy_grants.values_list("policy", flat=True)),
        **changes,
    }
    draft.refresh_from_db()
    return services.update_role(user=designer, draft=draft, revision=draft.revision, key=key, **values)


def test_publishing_archives_the_previous_version_and_publishes_the_draft(client, designer, published_config):
    version, _ = published_config
    draft, _ = services.open_draft(user=designer)
    services.create_role(user=designer, draft=draft, revision=draft.revision, name="Billing", key="billing")
    draft.refresh_from_db()
    client.force_login(designer)

    response = client.post(reverse("designer:draft_publish"), {"revision": draft.revision})

    assert response.status_code == 302
    assert response["Location"] == reverse("designer:home")
    version.refresh_from_db()
    draft.refresh_from_db()
    assert version.status == ARCHIVED
    assert draft.status == PUBLISHED
    assert draft.published_at is not None
    assert draft.author == designer
    assert "Added role Billing (billing): menu Home; policies none" in draft.change_summary
    assert published_version() == draft


def test_publishing_is_audited_with_the_change_summary(client, designer, published_config):
    version, _ = published_config
    draft, _ = services.open_draft(user=designer)
    edit_role(draft, designer, "front-desk", name="Reception")
    draft.refresh_from_db()
    client.force_login(designer)

    client.post(reverse("designer:draft_publish"), {"revision": draft.revision}, REMOTE_ADDR="10.1.2.3")

    event = AuditEvent.objects.get(action=AuditEvent.Action.CONFIG_PUBLISHED)
    assert event.actor == designer
    assert event.object_id == str(draft.pk)
    assert event.ip == "10.1.2.3"
    assert event.detail == {
        "version": draft.number,
        "previous_version": version.number,
        "changes": ["Renamed role Front Desk to Reception"],
    }


def test_a_failure_midway_through_publishing_leaves_the_published_version_untouched(
    designer, published_config, monkeypatch
):
    version, _ = published_config
    draft, _ = services.open_draft(user=designer)
    edit_role(draft, designer, "front-desk", menu={"home", "inbox"})
    draft.refresh_from_db()

    def audit_down(**kwargs):
        raise RuntimeError("audit storage failed")

    # The last step (the audit event) fails after the previous version was archived and the draft marked published.
    monkeypatch.setattr(services.audit, "record", audit_down)
    with pytest.raises(RuntimeError, match="audit storage failed"):
        services.publish_draft(user=designer, draft=draft, revision=draft.revision)

    version.refresh_from_db()
    draft.refresh_from_db()
    assert version.status == PUBLISHED
    assert draft.status == DRAFT and draft.published_at is None and draft.change_summary == ""
    assert published_version() == version
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.CONFIG_PUBLISHED).exists()


def test_publishing_with_a_stale_revision_is_refused_and_changes_nothing(client, designer, published_config):
    version, _ = published_config
    draft, _ = services.open_draft(user=designer)
    stale = draft.revision
    services.create_role(user=designer, draft=draft, revision=stale, name="Billing", key="billing")
    client.force_login(designer)

    response = client.post(reverse("designer:draft_publish"), {"revision": stale})

    assert response.status_code == 409
    assert b"Someone else changed this draft" in response.content
    version.refresh_from_db()
    assert version.status == PUBLISHED
    assert ConfigVersion.objects.get(pk=draft.pk).status == DRAFT


def test_publishing_without_a_draft_says_so(client, designer, published_config):
    client.force_login(designer)
    response = client.post(reverse("designer:draft_publish"), {"revision": 0}, follow=True)
    assert b"There is no open draft" in response.content


def test_the_first_version_can_be_published_when_nothing_is(designer, published_config):
    version, _ = published_config
    draft, _ = services.open_draft(user=designer)
    ConfigVersion.objects.filter(pk=version.pk).update(status=ARCHIVED)
    published = services.publish_draft(user=designer, draft=draft, revision=draft.revision)
    assert published.status == PUBLISHED
    assert published_version() == published


def test_a_new_role_gets_no_inbox_until_a_designer_turns_it_on(designer, published_config):
    draft, _ = services.open_draft(user=designer)
    role = services.create_role(
        user=designer, draft=draft, revision=draft.revision, name="Billing", key="billing"
    )
    assert list(role.menu_items.values_list("item", flat=True)) == [MenuItem.HOME]
    assert not role.policy_grants.exists()


def test_enabling_inbox_for_a_role_shows_the_inbox_to_its_users_only_after_publish(
    client, designer, coordinator, published_config
):
    draft, _ = services.open_draft(user=designer)
    edit_role(draft, designer, "care-coordinator", menu={"home", "inbox", "patients"})
    client.force_login(coordinator)

    home = client.get(reverse("careportal:home"))
    assert [item["key"] for item in home.context["sidebar"]] == ["home", "patients"]
    assert client.get(reverse("careportal:inbox")).status_code == 404
    assert inboxes_for(reload(coordinator)) == []

    draft.refresh_from_db()
    services.publish_draft(user=designer, draft=draft, revision=draft.revision)

    home = client.get(reverse("careportal:home"))
    assert [item["key"] for item in home.context["sidebar"]] == ["home", "inbox", "patients"]
    assert client.get(reverse("careportal:inbox")).status_code == 302
    assert inboxes_for(reload(coordinator)) == [InboxKind.MY]


@pytest.mark.parametrize(
    ("policies", "inboxes"),
    [
        (set(), [InboxKind.MY]),
        ({Policy.INBOX_CARE_TEAM}, [InboxKind.MY, InboxKind.CARE_TEAM]),
        ({Policy.INBOX_FULL_PATIENT}, [InboxKind.MY, InboxKind.CARE_TEAM, InboxKind.ALL_PATIENTS]),
    ],
)
def test_published_policies_gate_the_care_team_and_all_patients_inboxes(
    designer, coordinator, published_config, policies, inboxes
):
    draft, _ = services.open_draft(user=designer)
    edit_role(draft, designer, "care-coordinator", menu={"home", "inbox"}, policies=set(policies))
    assert inboxes_for(reload(coordinator)) == []  # the draft does not count
    draft.refresh_from_db()
    services.publish_draft(user=designer, draft=draft, revision=draft.revision)
    assert inboxes_for(reload(coordinator)) == inboxes


def test_shared_inbox_policies_need_the_inbox_menu_item(designer, coordinator, published_config):
    draft, _ = services.open_draft(user=designer)
    edit_role(draft, designer, "care-coordinator", policies={Policy.INBOX_FULL_PATIENT})
    draft.refresh_from_db()
    services.publish_draft(user=designer, draft=draft, revision=draft.revision)
    assert inboxes_for(reload(coordinator)) == []


def test_the_inbox_api_flag_follows_the_published_policy(designer, coordinator, published_config):
    draft, _ = services.open_draft(user=designer)
    edit_role(draft, designer, "care-coordinator", policies={Policy.INBOX_API})
    assert not has_policy(reload(coordinator), Policy.INBOX_API)
    draft.refresh_from_db()
    services.publish_draft(user=designer, draft=draft, revision=draft.revision)
    assert has_policy(reload(coordinator), Policy.INBOX_API)

    draft, _ = services.open_draft(user=designer)
    edit_role(draft, designer, "care-coordinator", policies=set())
    draft.refresh_from_db()
    services.publish_draft(user=designer, draft=draft, revision=draft.revision)
    assert not has_policy(reload(coordinator), Policy.INBOX_API)


def test_role_access_is_read_from_the_shared_cache_which_a_publish_drops(
    designer, coordinator, published_config, django_assert_num_queries
):
    assert not has_policy(reload(coordinator), Policy.INBOX_API)  # fills the cache
    someone = reload(coordinator)
    with django_assert_num_queries(0):
        assert not has_policy(someone, Policy.INBOX_API)

    draft, _ = services.open_draft(user=designer)
    edit_role(draft, designer, "care-coordinator", policies={Policy.INBOX_API})
    assert not has_policy(reload(coordinator), Policy.INBOX_API), "editing a draft changes nothing"
    draft.refresh_from_db()
    services.publish_draft(user=designer, draft=draft, revision=draft.revision)
    assert cache.get(PUBLISHED_ROLES_CACHE_KEY) is None
    assert has_policy(reload(coordinator), Policy.INBOX_API)


def test_deactivating_a_role_takes_its_users_portal_away_after_publish(
    client, designer, nurse, published_config
):
    draft, _ = services.open_draft(user=designer)
    edit_role(draft, designer, "care-nurse", is_active=False)
    draft.refresh_from_db()
    services.publish_draft(user=designer, draft=draft, revision=draft.revision)
    client.force_login(nurse)
    assert client.get(reverse("careportal:home")).context["sidebar"] == []
    assert inboxes_for(reload(nurse)) == []


def test_publishing_a_draft_in_which_no_role_holds_the_designer_policy_is_refused(
    client, designer, published_config
):
    version, _ = published_config
    draft, _ = services.open_draft(user=designer)
    edit_role(draft, designer, "designer", policies=set())
    draft.refresh_from_db()
    client.force_login(designer)

    response = client.post(reverse("designer:draft_publish"), {"revision": draft.revision})

    assert response.status_code == 200
    assert b"lock everyone out of the Designer" in response.content
    version.refresh_from_db()
    assert version.status == PUBLISHED
    assert ConfigVersion.objects.get(pk=draft.pk).status == DRAFT
