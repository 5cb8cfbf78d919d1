"""Editing roles in the draft: create (Inbox off by default), rename, deactivate, toggle menu items and policies,
remove a role added in the draft. Bad input gets a clear error and changes nothing."""

from django.urls import reverse

from designer import services
from designer.models import ConfigVersion, Role


def open_draft(designer):
    draft, _ = services.open_draft(user=designer)
    return draft


def test_the_new_role_page_renders(client, designer, published_config):
    open_draft(designer)
    client.force_login(designer)
    response = client.get(reverse("designer:role_new"))
    assert response.status_code == 200
    assert b'data-testid="role-new-form"' in response.content


def test_creating_a_role_adds_it_with_home_only(client, designer, published_config):
    draft = open_draft(designer)
    client.force_login(designer)

    response = client.post(
        reverse("designer:role_new"), {"revision": draft.revision, "name": "Billing Team", "key": "billing"}
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("designer:role_edit", args=["billing"])
    role = draft.roles.get(key="billing")
    assert role.name == "Billing Team" and role.is_active
    assert list(role.menu_items.values_list("item", flat=True)) == ["home"]
    assert not role.policy_grants.exists()
    assert ConfigVersion.objects.get(pk=draft.pk).revision == draft.revision + 1


def test_creating_a_role_with_a_taken_key_is_refused(client, designer, published_config):
    draft = open_draft(designer)
    client.force_login(designer)

    response = client.post(
        reverse("designer:role_new"), {"revision": draft.revision, "name": "Nurses", "key": "care-nurse"}
    )

    assert response.status_code == 200
    assert "The draft already has a role with the key “care-nurse”." in response.content.decode()
    assert draft.roles.filter(key="care-nurse").count() == 1
    assert ConfigVersion.objects.get(pk=draft.pk).revision == draft.revision


def test_creating_a_role_with_a_bad_key_is_refused(client, designer, published_config):
    draft = open_draft(designer)
    client.force_login(designer)
    response = client.post(
        reverse("designer:role_new"), {"revision": draft.revision, "name": "X", "key": "Bad Key!"}
    )
    assert response.status_code == 200
    assert b"valid" in response.content  # the slug field's own message
    assert not draft.roles.filter(name="X").exists()


def test_the_role_page_shows_menu_items_and_policies_as_toggles(client, designer, published_config):
    open_draft(designer)
    client.force_login(designer)
    response = client.get(reverse("designer:role_edit", args=["care-nurse"]))
    content = response.content.decode()
    assert response.status_code == 200
    assert 'id="id_menu_inbox" name="menu" value="inbox" checked' in content
    assert 'id="id_policies_inbox_care_team" name="policies" value="inbox_care_team" checked' in content
    assert 'id="id_policies_designer" name="policies" value="designer">' in content


def test_saving_a_role_renames_deactivates_and_sets_menu_and_policies(client, designer, published_config):
    draft = open_draft(designer)
    client.force_login(designer)

    response = client.post(
        reverse("designer:role_edit", args=["front-desk"]),
        {
            "revision": draft.revision,
            "name": "Reception",
            "menu": ["home", "inbox"],
            "policies": ["inbox_care_team", "edit_patient_profile"],
        },
    )

    assert response.status_code == 302
    role = draft.roles.get(key="front-desk")
    assert role.name == "Reception"
    assert not role.is_active  # the Active box was not ticked
    assert set(role.menu_items.values_list("item", flat=True)) == {"home", "inbox"}
    assert set(role.policy_grants.values_list("policy", flat=True)) == {
        "inbox_care_team",
        "edit_patient_profile",
    }
    published = Role.objects.get(version__status=ConfigVersion.Status.PUBLISHED, key="front-desk")
    assert published.name == "Front Desk" and published.is_active
    assert list(published.menu_items.values_list("item", flat=True)) == ["home"]


def test_saving_a_role_with_an_unknown_menu_item_is_refused(client, designer, published_config):
    draft = open_draft(designer)
    client.force_login(designer)
    response = client.post(
        reverse("designer:role_edit", args=["front-desk"]),
        {"revision": draft.revision, "name": "Front Desk", "is_active": "on", "menu": ["home", "billing"]},
    )
    assert response.status_code == 200
    assert b"Select a valid choice" in response.content
    assert list(draft.roles.get(key="front-desk").menu_items.values_list("item", flat=True)) == ["home"]


def test_saving_a_role_without_a_name_is_refused(client, designer, published_config):
    draft = open_draft(designer)
    client.force_login(designer)
    response = client.post(
        reverse("designer:role_edit", args=["front-desk"]),
        {"revision": draft.revision, "name": "  ", "is_active": "on"},
    )
    assert response.status_code == 200
    assert draft.roles.get(key="front-desk").name == "Front Desk"


def test_an_unknown_role_is_404(client, designer, published_config):
    open_draft(designer)
    client.force_login(designer)
    assert client.get(reverse("designer:role_edit", args=["nobody"])).status_code == 404


def test_a_role_added_in_the_draft_can_be_removed(client, designer, published_config):
    draft = open_draft(designer)
    services.create_role(user=designer, draft=draft, revision=draft.revision, name="Billing", key="billing")
    draft.refresh_from_db()
    client.force_login(designer)

    response = client.post(reverse("designer:role_remove", args=["billing"]), {"revision": draft.revision})

    assert response.status_code == 302
    assert not draft.roles.filter(key="billing").exists()


def test_a_published_role_cannot_be_removed_only_deactivated(client, designer, published_config):
    draft = open_draft(designer)
    client.force_login(designer)

    response = client.post(
        reverse("designer:role_remove", args=["care-nurse"]), {"revision": draft.revision}, follow=True
    )

    assert b"deactivate it instead of removing it" in response.content
    assert draft.roles.filter(key="care-nurse").exists()


def test_role_pages_without_an_open_draft_go_back_to_the_overview(client, designer, published_config):
    client.force_login(designer)
    response = client.get(reverse("designer:role_edit", args=["care-nurse"]))
    assert response.status_code == 302
    assert response["Location"] == reverse("designer:home")
