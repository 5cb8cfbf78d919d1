"""The change summary: what the draft changes compared with the published version."""

import pytest

from designer import services
from designer.models import Policy
from tests.factories import MessageTemplateFactory


@pytest.fixture
def draft(designer, published_config):
    version, _ = published_config
    MessageTemplateFactory(version=version, key="greeting", name="Greeting", body="Hello")
    MessageTemplateFactory(version=version, key="bye", name="Goodbye", body="Bye")
    return services.open_draft(user=designer)[0]


def step(draft):
    draft.refresh_from_db()
    return draft.revision


def test_an_untouched_draft_has_no_changes(draft):
    summary = services.change_summary(draft)
    assert not summary
    assert summary.text == "No changes."


def test_it_lists_every_kind_of_change(designer, draft):
    services.create_role(user=designer, draft=draft, revision=step(draft), name="Billing", key="billing")
    services.update_role(
        user=designer,
        draft=draft,
        revision=step(draft),
        key="front-desk",
        name="Reception",
        is_active=True,
        menu={"home", "inbox"},
        policies={Policy.INBOX_CARE_TEAM},
    )
    services.update_role(
        user=designer,
        draft=draft,
        revision=step(draft),
        key="team-lead",
        name="Team Lead",
        is_active=False,
        menu={"home", "inbox", "patients"},
        policies={Policy.INBOX_FULL_PATIENT},
    )
    draft.roles.filter(key="care-nurse").delete()  # as a restore of an older version would
    services.save_template(
        user=designer,
        draft=draft,
        revision=step(draft),
        key="greeting",
        name="Greeting",
        channel="sms",
        subject="",
        body="Hi",
    )
    services.remove_template(user=designer, draft=draft, revision=step(draft), key="bye")
    services.save_template(
        user=designer,
        draft=draft,
        revision=step(draft),
        key=None,
        name="Refill",
        channel="any",
        subject="",
        body="Sent",
    )

    summary = services.change_summary(draft)

    assert [c.text for c in summary.roles] == [
        "Added role Billing (billing): menu Home; policies none",
        "Renamed role Front Desk to Reception",
        "Reception: Inbox menu item turned on",
        "Reception: granted Inbox Care Team",
        "Deactivated role Team Lead",
        "Team Lead: revoked Edit patient profile",
        "Removed role Care Team Nurse (care-nurse)",
    ]
    assert [c.text for c in summary.templates] == [
        "Changed template Greeting (channel, body)",
        "Added template Refill",
        "Removed template Goodbye",
    ]
    assert [c.tone for c in summary.roles][:2] == ["added", "changed"]


def test_the_summary_is_kept_on_the_published_version(designer, draft):
    services.update_role(
        user=designer,
        draft=draft,
        revision=step(draft),
        key="front-desk",
        name="Front Desk",
        is_active=True,
        menu={"home", "patients"},
        policies=set(),
    )
    published = services.publish_draft(user=designer, draft=draft, revision=step(draft))
    assert published.change_summary == "Front Desk: Patients menu item turned on"


def test_the_draft_page_shows_the_summary(client, designer, draft):
    services.create_role(user=designer, draft=draft, revision=step(draft), name="Billing", key="billing")
    client.force_login(designer)
    response = client.get("/designer/draft/")
    assert b"Added role Billing (billing)" in response.content
    assert b'data-testid="change-count">1<' in response.content
