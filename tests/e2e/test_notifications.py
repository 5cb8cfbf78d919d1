"""Notifications in real browsers on a real ASGI server (the bell is live over the WebSocket):

Nurse A assigns a conversation to nurse B; B's bell count rises without reload (and a desktop alert is raised, the
permission having been granted); B clicks the notification and lands on the conversation in the Inbox. A writes an
internal note mentioning B with the @ autocomplete; it shows as a note in the conversation. An administrator turns
Admin Portal → Feature Settings → Inbox Notifications off through the settings page, and B's click on the mention
now opens Maria's communication center.

pytest-django's ``live_server`` is WSGI (no WebSockets), so one daphne process serves the test database here (the
in-memory channel layer is enough: every browser talks to that one process). Sessions are made by the test client,
as in ``test_realtime_two_processes.py`` (the tests' password hasher is not one the web process knows).
"""

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from adminportal.models import FeatureSetting
from inbox.models import Channel, Communication, Message, Notification
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.servers import Tab, daphne, server_env, start_server
from tests.factories import (
    CareTeamMemberFactory,
    CommunicationFactory,
    MessageFactory,
    SendingLineFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)

# A stand-in for the browser's Notification API (installed before any page script): records what the page raises.
FAKE_NOTIFICATION_API = """
window.__desktopAlerts = [];
window.Notification = class {
  constructor(title, options) { window.__desktopAlerts.push({ title, body: (options || {}).body }); }
  addEventListener() {}
  close() {}
  static get permission() { return "granted"; }
  static requestPermission() { return Promise.resolve("granted"); }
};
"""


@pytest.fixture
def web_process(transactional_db, tmp_path, request):
    """One daphne process on the test database with the in-memory channel layer; its URL."""
    env = server_env(tmp_path, LIVE_HEARTBEAT_SECONDS="3")
    url, _log = start_server(request, tmp_path, "web", lambda port: (daphne(port), env))
    return url


@pytest.fixture
def colleague(published_config, patient):
    user = UserFactory(username="cara", first_name="Cara", last_name="Colleague", role="care-nurse")
    CareTeamMemberFactory(patient=patient, user=user)
    return user


@pytest.fixture
def sms(patient, nurse):
    started = timezone.now() - dt.timedelta(minutes=25)
    communication = CommunicationFactory(
        patient=patient, channel=Channel.SMS, counterpart="+15550102030",
        sending_line=SendingLineFactory(number="+15550100001", label="Main clinic"),
        status=Communication.Status.OPEN, opened_at=started, last_message_at=started,
        last_message_preview="My ankle is still swollen, should I come in?", last_message_direction="in",
    )  # fmt: skip
    MessageFactory(
        communication=communication, body_text="My ankle is still swollen, should I come in?",
        sender_name="Maria Lopez", created_at=started,
    )  # fmt: skip
    return communication


def bell_count(tab):
    return tab.page.get_by_test_id("bell-count")


def test_assignment_and_mention_notifications_route_by_the_inbox_notifications_setting(
    browser, web_process, nurse, colleague, administrator, patient, sms
):
    a = Tab(browser, web_process, "nurse A")
    b = Tab(browser, web_process, "nurse B")
    admin = Tab(browser, web_process, "administrator")
    b.page.add_init_script(FAKE_NOTIFICATION_API)
    try:
        b.open_as(colleague, "/")
        expect(b.page.locator(".shell[data-live-ready]")).to_be_visible()  # joined the user's group
        expect(bell_count(b)).to_be_hidden()

        # A assigns the conversation to B: B's bell rises live, and a desktop alert is raised.
        a.open_as(nurse, f"/inbox/care-team/directed/?c={sms.pk}")
        expect(a.page.locator("#messages")).to_contain_text("My ankle is still swollen")
        a.page.locator("[data-shortcut='assign']").click()
        a.page.get_by_test_id("assign-dialog").get_by_role("button", name="Cara Colleague").click()
        expect(a.page.locator("#conversation-header")).to_contain_text("Cara Colleague")
        expect(bell_count(b)).to_have_attribute("data-count", "1")
        expect(bell_count(b)).to_be_visible()
        alerts = b.page.evaluate("window.__desktopAlerts")
        assert alerts == [{"title": "Assigned to you", "body": "Open Care Inbox to see it."}]

        b.page.get_by_test_id("bell").click()
        item = b.page.get_by_test_id("notification").first
        expect(item).to_contain_text("Nora Nurse assigned you the SMS with Maria Lopez")
        expect(b.page.locator(".bell-item.is-unread")).to_have_count(1)
        expect(b.page.locator("[data-desktop-notifications]")).to_be_visible()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        b.page.screenshot(path=str(SCREENSHOTS / "notifications-bell-dropdown.png"))

        item.click()
        b.page.wait_for_url(f"**/inbox/my/assigned/?c={sms.pk}")
        expect(b.page.locator("#messages")).to_contain_text("My ankle is still swollen")
        expect(bell_count(b)).to_be_hidden()
        assert Notification.objects.get(user=colleague).is_read

        # A writes an internal note mentioning B, picking her from the @ autocomplete (keyboard only).
        a.page.get_by_role("tab", name="Internal note").click()
        note_box = a.page.get_by_role("combobox", name="Internal note")
        expect(note_box).to_be_focused()
        note_box.press_sequentially("Spoke with her daughter. @ca")
        option = a.page.get_by_role("option", name="Cara Colleague")
        expect(option).to_be_visible()
        expect(a.page.get_by_role("option")).to_have_count(1)  # only colleagues with access are offered
        a.page.screenshot(path=str(SCREENSHOTS / "notifications-mention-autocomplete.png"))
        note_box.press("Enter")
        expect(note_box).to_have_value("Spoke with her daughter. @cara ")
        note_box.press_sequentially("can you call her back today?")
        a.page.get_by_test_id("add-note").click()
        note = a.page.locator(".message.is-note").last
        expect(note).to_contain_text("Spoke with her daughter. @cara can you call her back today?")
        expect(note.locator(".mention")).to_have_text("@cara")
        expect(note.get_by_test_id("note-label")).to_have_text("Internal note")
        expect(note_box).to_have_value("")
        stored = Message.objects.get(is_internal_note=True)
        assert stored.delivery_status == "" and stored.communication_id == sms.pk
        a.page.screenshot(path=str(SCREENSHOTS / "notifications-internal-note.png"))
        expect(b.page.locator(".message.is-note")).to_contain_text(
            "can you call her back today?"
        )  # live in B too
        expect(bell_count(b)).to_have_attribute("data-count", "1")

        # The administrator turns Inbox Notifications off in the Admin Portal.
        admin.open_as(administrator, "/admin-portal/settings/")
        setting = admin.page.get_by_test_id("setting-inbox_notifications")
        setting.locator(".ap-setting-switch").click()
        setting.get_by_test_id("save-inbox_notifications").click()
        expect(admin.page.locator(".flash-success")).to_contain_text("Saved Inbox Notifications")
        assert FeatureSetting.is_on(FeatureSetting.Key.INBOX_NOTIFICATIONS) is False

        # B's click on the mention now opens Maria's communication center.
        b.page.get_by_test_id("bell").click()
        mention = b.page.get_by_test_id("notification").first
        expect(mention).to_contain_text("Nora Nurse mentioned you in a note")
        mention.click()
        b.page.wait_for_url(f"**/patients/{patient.pk}/communications/")
        expect(b.page.get_by_role("heading", level=1)).to_contain_text("Maria Lopez")
        expect(bell_count(b)).to_be_hidden()
        b.page.screenshot(path=str(SCREENSHOTS / "notifications-communication-center.png"))
        b.page.goto("/notifications/")
        expect(b.page.get_by_role("heading", level=1, name="Notifications")).to_be_visible()
        expect(b.page.locator(".notification-page .bell-item")).to_have_count(2)
        b.page.screenshot(path=str(SCREENSHOTS / "notifications-list-page.png"))
        for tab in (a, b, admin):
            assert not tab.errors, f"{tab.name}: " + "\n".join(tab.errors)
    finally:
        for tab in (a, b, admin):
            tab.context.close()
