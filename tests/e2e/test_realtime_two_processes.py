"""Real time across two web processes: two production web servers (gunicorn + uvicorn workers) share the test database and the Redis channel layer;
nurse A works in a browser on process 1, nurse B watches the same conversation in a browser on process 2.

Assignment, status change, typing and a send in A appear in B without reload. Then B's network is cut
(``context.set_offline``): B notices the silent socket, shows "Reconnecting…"; A changes things meanwhile; when
B's network is back, B reconnects and re-fetches what it shows — and shows everything that happened, its own draft
untouched.

The processes use the test database: on PostgreSQL pytest-django's ``test_…`` database, on SQLite the file that
``tests/conftest.py`` makes the test database (SQLite tests use a file, not memory, for this). Redis is
``REDIS_URL`` or redis://127.0.0.1:6379/13. With ``REDIS_URL`` set, an unreachable Redis fails the test; without it,
the test is skipped only when no local Redis answers.
"""

import datetime as dt
import re
import sys

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from inbox.models import Channel, Communication, Message
from tests.benchmarks.services import procfile_web
from tests.e2e.servers import Tab, redis_url, server_env, start_server
from tests.factories import (
    CareTeamMemberFactory,
    CommunicationFactory,
    MessageFactory,
    SendingLineFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)

IS_CLOSED = re.compile(r"\bis-closed\b")
HEARTBEAT_SECONDS = 2  # the processes ask tabs for a heartbeat every 2 s, so a cut is noticed within ~4 s


@pytest.fixture
def web_processes(transactional_db, tmp_path, request):
    """Two web servers, each the production command (gunicorn, one uvicorn worker), on the Redis channel layer and
    the test database; their URLs."""
    env = server_env(tmp_path, REDIS_URL=redis_url(), LIVE_HEARTBEAT_SECONDS=str(HEARTBEAT_SECONDS))

    def production_command(port):
        # The Procfile's production command, one worker process each.
        command = [sys.executable, "-m", *procfile_web()]
        return command, {**env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "1"}

    return [start_server(request, tmp_path, f"web{number}", production_command)[0] for number in (1, 2)]


@pytest.fixture
def colleague(published_config, patient):
    user = UserFactory(username="colleague", first_name="Cara", last_name="Colleague", role="care-nurse")
    CareTeamMemberFactory(patient=patient, user=user)
    return user


@pytest.fixture
def sms(patient, nurse, colleague):
    line = SendingLineFactory(number="+15550100001", label="Main clinic")
    started = timezone.now() - dt.timedelta(minutes=40)
    communication = CommunicationFactory(
        patient=patient, channel=Channel.SMS, sending_line=line, counterpart="+15550102030",
        status=Communication.Status.OPEN, opened_at=started, last_message_at=started,
        last_message_preview="My ankle is still swollen, should I come in?", last_message_direction="in",
    )  # fmt: skip
    MessageFactory(
        communication=communication, body_text="My ankle is still swollen, should I come in?",
        sender_name="Maria Lopez", created_at=started,
    )  # fmt: skip
    return communication


def test_changes_in_one_process_appear_in_the_other_and_survive_a_network_cut(
    browser, web_processes, nurse, colleague, sms
):
    path = f"/inbox/care-team/directed/?c={sms.pk}"
    a = Tab(browser, web_processes[0], "A")
    b = Tab(browser, web_processes[1], "B")
    try:
        a.open_as(nurse, path)
        b.open_as(colleague, path)
        row_b = b.page.locator(f"#row-{sms.pk}")
        presence_b = b.page.get_by_test_id("presence")
        # Both tabs are subscribed once each sees the other.
        expect(presence_b).to_contain_text("Nora Nurse is viewing")
        expect(a.page.get_by_test_id("presence")).to_contain_text("Cara Colleague is viewing")
        b.page.evaluate("window.__notReloaded = true")
        b.page.locator("#reply-box textarea").fill("Draft from Cara: keep it elevated")

        # Assignment in A.
        a.page.locator("#conversation-header [data-shortcut='assign']").click()
        a.page.get_by_test_id("assign-dialog").get_by_role("button", name="Cara Colleague").click()
        expect(b.page.get_by_test_id("assignee")).to_contain_text("Cara Colleague")
        expect(row_b.locator(".avatar")).to_have_attribute("title", "Assigned to Cara Colleague")

        # Status change in A.
        a.page.locator("#reply-status [data-status-value='closed']").click()
        expect(b.page.get_by_test_id("conversation-status")).to_have_text("Closed")
        expect(row_b).to_have_class(IS_CLOSED)
        expect(b.page.locator("#reply-status [data-status-value='closed']")).to_have_attribute(
            "aria-pressed", "true"
        )

        # Typing in A.
        a.page.locator("#reply-box textarea").press_sequentially("Please keep", delay=30)
        expect(presence_b).to_contain_text("Nora Nurse is typing")
        b.screenshot("realtime-typing-in-other-process")

        # A sends (and keeps the status as it is).
        a.page.locator("#reply-box textarea").fill("Please keep the ankle raised and come in tomorrow at 9.")
        a.page.locator("#reply-box .send-more").click()
        a.page.get_by_role("button", name="Send and keep Open").click()
        messages_b = b.page.locator("#messages")
        expect(messages_b).to_contain_text("come in tomorrow at 9")
        expect(row_b.locator(".row-snippet")).to_contain_text("come in tomorrow at 9")
        expect(presence_b).not_to_contain_text("typing", timeout=15_000)

        # B's network is cut: B notices and says so.
        b.offline = True
        b.context.set_offline(True)
        banner = b.page.get_by_test_id("live-status")
        expect(banner).to_be_visible(timeout=15_000)
        expect(banner).to_contain_text("Reconnecting")
        b.screenshot("realtime-reconnecting")

        # Meanwhile A reopens it and writes again.
        a.page.locator("#reply-status [data-status-value='open']").click()
        expect(a.page.get_by_test_id("conversation-status")).to_have_text("Open")
        a.page.locator("#reply-box textarea").fill("Also bring your X-ray from last week.")
        a.page.locator("#reply-box .send-more").click()
        a.page.get_by_role("button", name="Send and keep Open").click()
        expect(a.page.locator("#messages")).to_contain_text("bring your X-ray")
        expect(messages_b).not_to_contain_text("bring your X-ray")

        # B is back: it reconnects and shows everything, without reload, its draft kept.
        b.context.set_offline(False)
        expect(banner).to_be_hidden(timeout=20_000)
        b.offline = False
        expect(messages_b).to_contain_text("bring your X-ray")
        expect(b.page.get_by_test_id("conversation-status")).to_have_text("Open")
        expect(row_b).not_to_have_class(IS_CLOSED)
        expect(row_b.locator(".row-snippet")).to_contain_text("bring your X-ray")
        expect(b.page.locator("#reply-box textarea")).to_have_value("Draft from Cara: keep it elevated")
        assert b.page.evaluate("window.__notReloaded") is True
        assert Message.objects.filter(communication=sms, direction=Message.Direction.OUTBOUND).count() == 2

        # And it is live again.
        a.page.locator("#reply-status [data-status-value='closed']").click()
        expect(b.page.get_by_test_id("conversation-status")).to_have_text("Closed")
        assert a.errors == [] and b.errors == [], {"A": a.errors, "B": b.errors}
    finally:
        a.context.close()
        b.context.close()
