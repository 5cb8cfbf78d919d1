"""Designer and Admin Portal in a real browser.

A designer enables Inbox for the Care Coordinator role in a draft and publishes; a coordinator who is already signed
in sees Inbox in the sidebar on the next page load. An administrator turns Inbox Notifications off, manages a user
(patient grant, deactivation with open assignments), lines, addresses, the audit log and ingestion health.
Screenshots of every Designer and Admin Portal page.
"""

import datetime as dt
import re

import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import expect

from adminportal.models import FeatureSetting, User
from designer.models import ConfigVersion, MenuItem, Policy, TemplateChannel
from inbox.models import AuditEvent, Channel
from tests.factories import (
    AuditEventFactory,
    CommunicationFactory,
    InboundAddressFactory,
    MessageTemplateFactory,
    PatientFactory,
    RawInboundFactory,
    RegionFactory,
    RoleFactory,
    SendingLineFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def organisation(published_config):
    """The demo's roles: nurses, a coordinator without Inbox, a lead, a designer and an administrator."""
    version, _ = published_config
    RoleFactory(
        version=version,
        key="care-coordinator",
        name="Care Coordinator",
        menu=[MenuItem.HOME, MenuItem.PATIENTS],
    )
    RoleFactory(
        version=version,
        key="designer",
        name="Configuration Designer",
        menu=[MenuItem.HOME],
        policies=[Policy.DESIGNER],
    )
    RoleFactory(
        version=version,
        key="administrator",
        name="Administrator",
        menu=[MenuItem.HOME],
        policies=[Policy.ADMINISTRATOR],
    )
    MessageTemplateFactory(
        version=version,
        key="appointment-reminder",
        name="Appointment reminder",
        channel=TemplateChannel.SMS,
        body="Hi {{ patient.first_name }}, this is {{ user.full_name }}. A reminder of your appointment tomorrow.",
    )
    MessageTemplateFactory(
        version=version,
        key="lab-results-ready",
        name="Lab results ready",
        channel=TemplateChannel.EMAIL,
        subject="Your lab results are ready",
        body="Hello {{ patient.first_name }}, your results are ready.",
    )
    ConfigVersion.objects.filter(pk=version.pk).update(number=1, change_summary="Initial configuration")
    return version


@pytest.fixture
def designer(organisation):
    return UserFactory(username="designer", first_name="Devin", last_name="Shah", role="designer")


@pytest.fixture
def coordinator(organisation):
    return UserFactory(
        username="coordinator", first_name="Carlos", last_name="Mendes", role="care-coordinator"
    )


@pytest.fixture
def administrator(organisation):
    return UserFactory(username="admin", first_name="Alex", last_name="Morgan", role="administrator")


def test_a_designer_enables_inbox_for_care_coordinators_and_a_coordinator_sees_it_after_publish(
    page, live_server, sign_in, screenshot, second_page, designer, coordinator
):
    coordinator_page = second_page("coordinator")
    coordinator_nav = coordinator_page.get_by_role("navigation", name="Main")
    expect(coordinator_nav.get_by_role("link", name="Patients", exact=True)).to_be_visible()
    expect(coordinator_nav.get_by_role("link", name="Inbox", exact=True)).to_have_count(0)

    sign_in("designer")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Designer").click()
    expect(page.get_by_role("heading", level=1, name="Designer")).to_be_visible()
    screenshot("designer-home")

    page.get_by_test_id("open-draft").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Draft v")
    expect(page.get_by_test_id("change-summary")).to_contain_text("No changes yet")
    screenshot("designer-draft")

    page.get_by_role("link", name="Edit Care Coordinator").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Care Coordinator")
    inbox_switch = page.locator("#id_menu_inbox")
    expect(inbox_switch).not_to_be_checked()
    screenshot("designer-role")
    page.locator('label[data-toggle="inbox"]').click()
    expect(inbox_switch).to_be_checked()
    page.get_by_test_id("save-role").click()

    expect(page.locator(".flash-success")).to_contain_text("Saved role Care Coordinator")
    expect(page.get_by_test_id("change-summary")).to_contain_text(
        "Care Coordinator: Inbox menu item turned on"
    )
    expect(page.locator('tr[data-role="care-coordinator"] [data-menu-item="inbox"]')).to_have_attribute(
        "data-on", "1"
    )

    # Still the published configuration for the coordinator: the draft changes nothing.
    coordinator_page.reload()
    expect(coordinator_nav.get_by_role("link", name="Inbox", exact=True)).to_have_count(0)

    page.get_by_test_id("new-template").click()
    page.get_by_label("Template name").fill("Follow-up check-in")
    page.locator('label:has(input[value="any"])').click()
    page.get_by_label("Subject").fill("Checking in, {{ patient.first_name }}")
    page.get_by_label("Message").fill(
        "Hi {{ patient.first_name }}, this is {{ user.full_name }}. How are you feeling?"
    )
    preview = page.get_by_test_id("template-preview")
    expect(preview).to_contain_text("Hi Maria, this is Devin Shah. How are you feeling?")
    expect(preview).to_contain_text("Checking in, Maria")
    screenshot("designer-template")
    page.get_by_label("Message").fill("Hi {{ patient.nickname }}")
    expect(preview).to_contain_text("Unknown placeholder")
    page.get_by_test_id("save-template").click()
    expect(page.get_by_test_id("form-errors")).to_contain_text("Nothing was saved")
    expect(page.locator(".cfg-error")).to_contain_text("Unknown placeholder “{{ patient.nickname }}”")
    screenshot("designer-template-error")
    page.get_by_label("Message").fill("Hi {{ patient.first_name }}, how are you feeling since your visit?")
    page.get_by_test_id("save-template").click()
    expect(page.get_by_test_id("change-summary")).to_contain_text("Added template Follow-up check-in")
    screenshot("designer-draft-changes")

    page.get_by_test_id("new-role").click()
    screenshot("designer-role-new")
    page.get_by_role("link", name="Cancel").click()

    page.get_by_test_id("publish-draft").click()
    expect(page.locator(".flash-success")).to_contain_text("Published v")
    history = page.get_by_test_id("version-history")
    expect(history).to_contain_text("Care Coordinator: Inbox menu item turned on")
    expect(history).to_contain_text("Archived")
    screenshot("designer-published")

    page.locator("tr[data-version] .cfg-name").nth(1).click()
    expect(page.get_by_test_id("restore-version")).to_be_enabled()
    screenshot("designer-version")

    # The coordinator's next page load reads the newly published version: Inbox is in the sidebar.
    coordinator_page.reload()
    expect(coordinator_nav.get_by_role("link", name="Inbox", exact=True)).to_be_visible()
    coordinator_nav.get_by_role("link", name="Inbox", exact=True).click()
    expect(coordinator_page).to_have_url(f"{live_server.url}/inbox/my/assigned/")
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CONFIG_PUBLISHED, actor=designer).count() == 1


@pytest.fixture
def clinic(organisation, nurse, patient):
    east = RegionFactory(code="east", name="East Coast")
    RegionFactory(code="central", name="Central")
    SendingLineFactory(number="+15550100001", label="Main clinic")
    SendingLineFactory(number="+15550100002", label="Cardiology")
    SendingLineFactory(number="+15550100003", owner=nurse)
    InboundAddressFactory(address="care@clinic.example", label="Care team")
    InboundAddressFactory(address="nora@clinic.example", owner=nurse)
    nurse.regions.add(east)
    UserFactory(username="maya.chen", first_name="Maya", last_name="Chen", role="care-nurse", title="RN")
    UserFactory(username="lena.park", first_name="Lena", last_name="Park", role="team-lead", title="RN, MSN")
    now = timezone.now()
    for minutes, subject in ((14, "Dizzy after new medication"), (95, "Refill request")):
        CommunicationFactory(
            patient=patient,
            assignee=nurse,
            channel=Channel.EMAIL,
            subject=subject,
            last_message_at=now - dt.timedelta(minutes=minutes),
        )
    for minutes, action in ((3, AuditEvent.Action.MESSAGE_SENT), (9, AuditEvent.Action.COMMUNICATION_VIEWED)):
        AuditEventFactory(actor=nurse, action=action, at=now - dt.timedelta(minutes=minutes), ip="10.0.4.17")
    RawInboundFactory(
        provider_id="SMfailed0001",
        error="Unknown sending line: To +15550109999 is not one of ours.",
        attempts=5,
        received_at=now - dt.timedelta(minutes=42),
    )
    RawInboundFactory(provider_id="SMwaiting0002", received_at=now - dt.timedelta(minutes=6))
    PatientFactory(mrn="MRN0451200", first_name="Grace", last_name="Okafor")
    return patient


def test_an_administrator_turns_inbox_notifications_off_and_manages_users_lines_and_the_audit_log(
    page, live_server, sign_in, screenshot, administrator, nurse, clinic
):
    sign_in("admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin Portal").click()
    expect(page.get_by_role("heading", level=1, name="Admin Portal")).to_be_visible()
    screenshot("admin-home")

    tabs = page.get_by_role("navigation", name="Admin Portal")
    tabs.get_by_role("link", name="Feature settings").click()
    notifications = page.get_by_test_id("setting-inbox_notifications")
    state = notifications.get_by_test_id("inbox-notifications-state")
    expect(state.locator(".ap-switch-on")).to_be_visible()
    screenshot("admin-settings")
    notifications.locator(".ap-setting-switch").click()
    expect(state.locator(".ap-switch-off")).to_be_visible()
    expect(state.locator(".ap-switch-on")).to_be_hidden()
    notifications.get_by_test_id("save-inbox_notifications").click()
    expect(page.locator(".flash-success")).to_contain_text("Saved Inbox Notifications")
    expect(page.get_by_test_id("inbox-notifications-switch")).not_to_be_checked()
    expect(notifications.locator(".is-current")).to_contain_text("opens the patient's communication center")
    assert FeatureSetting.is_on(FeatureSetting.Key.INBOX_NOTIFICATIONS) is False
    assert (
        AuditEvent.objects.filter(actor=administrator, detail__change="feature_setting.changed").count() == 1
    )

    hours = page.get_by_test_id("setting-chat_business_hours")
    hours.get_by_label("Closes").fill("07:00")
    hours.get_by_test_id("save-chat_business_hours").click()
    expect(page.get_by_test_id("setting-chat_business_hours").locator(".cfg-error")).to_contain_text(
        "The end time must be after the start time."
    )
    screenshot("admin-settings-error")

    tabs.get_by_role("link", name="Users", exact=True).click()
    expect(page.get_by_test_id("users")).to_contain_text("Nora Nurse")
    screenshot("admin-users")

    page.get_by_test_id("new-user").click()
    page.get_by_label("Username").fill("grace.kim")
    page.locator("#id_email").fill("grace.kim@clinic.example")
    page.get_by_label("First name").fill("Grace")
    page.get_by_label("Last name").fill("Kim")
    page.locator("#id_role").select_option("care-nurse")
    screenshot("admin-user-new")
    page.get_by_test_id("create-user").click()
    expect(page.locator(".flash-success")).to_contain_text(
        "emailed an invitation to grace.kim@clinic.example"
    )
    assert not User.objects.get(username="grace.kim").has_usable_password()

    tabs.get_by_role("link", name="Users", exact=True).click()
    page.locator('tr[data-user="nurse"] .cfg-name').click()
    page.get_by_label("Grant access to a patient").fill("okafor")
    expect(page.get_by_test_id("grant-results")).to_contain_text("Grace Okafor")
    page.get_by_test_id("grant-MRN0451200").click()
    expect(page.get_by_test_id("grants")).to_contain_text("MRN0451200")
    # The grant redirect lands on #patient-access: show the page from the top.
    user_url = page.url.split("#")[0]
    page.goto(user_url)
    screenshot("admin-user-detail")
    page.goto(f"{user_url}grants/search/?q=mrn0451200")  # the search without HTMX, as a page of its own
    expect(page.get_by_test_id("grant-results")).to_contain_text("Has access")
    screenshot("admin-grant-search")
    page.goto(user_url)

    page.get_by_test_id("deactivate-user").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Nora Nurse is deactivated")
    expect(page.get_by_test_id("assignment-count")).to_have_text("2")
    expect(page.get_by_test_id("assignments")).to_contain_text("Dizzy after new medication")
    screenshot("admin-user-deactivated")

    tabs.get_by_role("link", name="Sending lines").click()
    page.get_by_label("Number").fill("555-01")
    page.get_by_test_id("add-line").click()
    expect(page.get_by_test_id("form-errors")).to_contain_text("Nothing was saved")
    expect(page.locator(".cfg-error")).to_contain_text("has the wrong number of digits")
    page.get_by_label("Number").fill("(617) 555-0142")
    page.get_by_label("Label").fill("After-hours line")
    page.get_by_test_id("add-line").click()
    expect(page.get_by_test_id("lines")).to_contain_text("+16175550142")
    screenshot("admin-lines")
    page.locator('tr[data-line="+16175550142"] .cfg-name').click()
    screenshot("admin-line-edit")

    tabs.get_by_role("link", name="Inbound addresses").click()
    page.get_by_role("textbox", name="Address").fill("Billing@Clinic.Example")
    page.get_by_test_id("add-address").click()
    expect(page.get_by_test_id("addresses")).to_contain_text("billing@clinic.example")
    screenshot("admin-addresses")
    page.locator('tr[data-address="billing@clinic.example"] .cfg-name').click()
    screenshot("admin-address-edit")

    tabs.get_by_role("link", name="Audit log").click()
    events = page.get_by_test_id("audit-events")
    expect(events).to_contain_text("Changed setting")
    expect(events).to_contain_text("Deactivated user")
    screenshot("admin-audit")
    page.get_by_label("Action").select_option(AuditEvent.Action.MESSAGE_SENT)
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_test_id("audit-events").locator("tbody tr")).to_have_count(1)
    with page.expect_download() as download:
        page.get_by_test_id("export-csv").click()
    exported = download.value.path().read_text()
    assert exported.splitlines()[0].startswith("at_utc,")
    assert len(exported.strip().splitlines()) == 2

    tabs.get_by_role("link", name="Ingestion health").click()
    expect(page.get_by_test_id("failed-count")).to_have_text("1")
    expect(page.get_by_test_id("waiting-count")).to_have_text("1")
    screenshot("admin-ingestion")
    page.get_by_test_id("failed").get_by_role("button", name="Re-process").click()
    expect(page.locator(".flash-error")).to_contain_text("failed again")

    # The invited user sets their password from the emailed link and signs in.
    page.get_by_role("button", name="Sign out").click()
    invitation = next(m for m in mail.outbox if m.to == ["grace.kim@clinic.example"])
    page.goto(re.search(r"https?://\S+/admin-portal/invite/\S+", invitation.body).group(0))
    expect(page.get_by_role("heading", name="Choose your password")).to_be_visible()
    screenshot("invite-set-password")
    page.get_by_label("New password").fill("lilac-harbor-compass-7")
    page.get_by_label("Repeat the password").fill("lilac-harbor-compass-7")
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("heading", name="Your password is set")).to_be_visible()
    screenshot("invite-done")
    page.get_by_role("link", name="Sign in").click()
    page.get_by_label("Username").fill("grace.kim")
    page.get_by_label("Password").fill("lilac-harbor-compass-7")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/")
    expect(page.get_by_role("navigation", name="Main")).to_contain_text("Grace Kim")
