"""Two designers editing one draft do not silently overwrite each other: every edit carries the draft revision it
was built from, and a stale one is refused with a clear message and changes nothing."""

import pytest
from django.urls import reverse

from designer import services
from designer.models import ConfigVersion


@pytest.fixture
def draft(designer, published_config):
    return services.open_draft(user=designer)[0]


def test_each_edit_bumps_the_revision(designer, draft):
    start = draft.revision
    services.create_role(user=designer, draft=draft, revision=start, name="Billing", key="billing")
    services.save_template(
        user=designer,
        draft=draft,
        revision=start + 1,
        key=None,
        name="Hello",
        channel="sms",
        subject="",
        body="Hi",
    )
    assert ConfigVersion.objects.get(pk=draft.pk).revision == start + 2


def test_a_save_built_from_a_stale_revision_is_refused_and_changes_nothing(
    client, designer, other_designer, draft
):
    page_revision = draft.revision
    # Dana saves first, from the same page state.
    services.update_role(
        user=other_designer,
        draft=draft,
        revision=page_revision,
        key="front-desk",
        name="Reception",
        is_active=True,
        menu={"home"},
        policies=set(),
    )
    client.force_login(designer)

    response = client.post(
        reverse("designer:role_edit", args=["front-desk"]),
        {"revision": page_revision, "name": "Front Office", "is_active": "on", "menu": ["home", "inbox"]},
    )

    assert response.status_code == 409
    assert (
        "Someone else changed this draft while you were editing it. Nothing was saved"
        in response.content.decode()
    )
    role = draft.roles.get(key="front-desk")
    assert role.name == "Reception"
    assert list(role.menu_items.values_list("item", flat=True)) == ["home"]
    assert ConfigVersion.objects.get(pk=draft.pk).revision == page_revision + 1


def test_the_conflict_page_keeps_what_the_designer_typed(client, designer, other_designer, draft):
    stale = draft.revision
    services.create_role(user=other_designer, draft=draft, revision=stale, name="Billing", key="billing")
    client.force_login(designer)
    response = client.post(
        reverse("designer:template_new"),
        {"revision": stale, "name": "Reminder", "channel": "sms", "body": "See you"},
    )
    assert response.status_code == 409
    assert b'value="Reminder"' in response.content
    assert not ConfigVersion.objects.get(pk=draft.pk).templates.filter(name="Reminder").exists()


def test_an_edit_after_the_draft_was_published_is_refused(designer, other_designer, draft):
    revision = draft.revision
    services.publish_draft(user=other_designer, draft=draft, revision=revision)
    with pytest.raises(services.NoOpenDraft):
        services.create_role(user=designer, draft=draft, revision=revision + 1, name="Late", key="late")
    assert not ConfigVersion.objects.get(pk=draft.pk).roles.filter(key="late").exists()


def test_a_refused_edit_rolls_back_its_revision_claim(designer, draft):
    with pytest.raises(services.InvalidChange):
        services.create_role(user=designer, draft=draft, revision=draft.revision, name="", key="empty")
    assert ConfigVersion.objects.get(pk=draft.pk).revision == draft.revision
