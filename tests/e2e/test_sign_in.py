"""A care-team nurse signs in, sees the sidebar built from her published role menu, and signs out."""

import pytest
from playwright.sync_api import expect

from inbox.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)


def test_nurse_signs_in_sees_the_sidebar_and_signs_out(page, live_server, nurse, sign_in, screenshot):
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/")
    expect(page.get_by_role("heading", name="Sign in to the Care Portal")).to_be_visible()
    screenshot("sign-in")

    sign_in("nurse")
    sidebar = page.get_by_role("navigation", name="Main")
    expect(sidebar.get_by_role("link", name="Home", exact=True)).to_be_visible()
    expect(sidebar.get_by_role("link", name="Inbox", exact=True)).to_be_visible()
    expect(sidebar.get_by_role("link", name="Patients", exact=True)).to_be_visible()
    expect(sidebar).to_contain_text("Nora Nurse")
    expect(sidebar).to_contain_text("Care Team Nurse")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Nora")
    screenshot("home-nurse")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{live_server.url}/accounts/login/")
    assert list(AuditEvent.objects.filter(actor=nurse).values_list("action", flat=True).order_by("id")) == [
        AuditEvent.Action.SIGN_IN,
        AuditEvent.Action.SIGN_OUT,
    ]


def test_a_role_without_inbox_in_its_published_menu_has_no_inbox_link(page, live_server, outsider, sign_in):
    sign_in("outsider")
    sidebar = page.get_by_role("navigation", name="Main")
    expect(sidebar.get_by_role("link", name="Home", exact=True)).to_be_visible()
    expect(sidebar.get_by_role("link", name="Inbox", exact=True)).to_have_count(0)
