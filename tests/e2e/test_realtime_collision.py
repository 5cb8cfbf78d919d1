"""The collision guard in a real browser: a colleague replies while the nurse writes; Send shows what changed and
"Send anyway" inside the reply box, the draft stays, the conversation catches up; "Send anyway" sends it."""

import pytest
from playwright.sync_api import expect

from inbox.models import Message
from inbox.services import ReplyContent, send_reply
from tests.e2e.conftest import SCREENSHOTS, nurse_and_lead_viewing, sms_question, watched_page
from tests.factories import CareTeamMemberFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)
DRAFT = "Please take half a tablet tonight."


@pytest.fixture
def guarded_page(browser, live_server):
    """A page that fails the test on any console error but the one this flow causes on purpose: Chromium logs the
    409 answer ("Failed to load resource … 409") that carries the warning."""
    problems: list[str] = []
    context, page = guarded(browser, problems, height=720, base_url=live_server.url)
    yield page
    context.close()
    assert not problems, "Browser reported errors:\n" + "\n".join(problems)


def test_a_colleagues_reply_while_writing_is_shown_before_the_send_goes(
    guarded_page, nurse, patient, published_config
):
    page = guarded_page
    colleague = UserFactory(username="colleague", first_name="Cara", last_name="Colleague", role="care-nurse")
    CareTeamMemberFactory(patient=patient, user=colleague)
    sms = sms_question(patient, nurse)
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("nurse")
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"/inbox/my/assigned/?c={sms.pk}")
    page.locator("#reply-box textarea").fill(DRAFT)

    send_reply(user=colleague, communication=sms, content=ReplyContent(body="Yes, with food is fine."))
    page.get_by_role("button", name="Send and Close").click()

    warning = page.get_by_test_id("collision")
    expect(warning).to_contain_text("Cara Colleague sent")
    expect(warning).to_contain_text("Yes, with food is fine.")
    expect(warning).to_contain_text("Cara Colleague closed it.")
    expect(page.locator("#messages")).to_contain_text("Yes, with food is fine.")  # the conversation caught up
    expect(page.get_by_test_id("conversation-status")).to_have_text("Closed")
    expect(page.locator(f"#row-{sms.pk} .row-snippet")).to_contain_text("Yes, with food is fine.")
    expect(page.locator("#reply-box textarea")).to_have_value(DRAFT)
    assert not Message.objects.filter(communication=sms, author=nurse).exists()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "realtime-collision-warning.png"), full_page=True)

    page.get_by_test_id("send-anyway").click()
    expect(page.locator("#messages")).to_contain_text(DRAFT)
    expect(page.get_by_test_id("collision")).to_have_count(0)
    assert Message.objects.get(communication=sms, author=nurse).body_text == DRAFT


def guarded(browser, problems: list[str], **options):
    """A page on its own context that records console errors but the 409 this flow causes on purpose."""
    return watched_page(browser, problems, allowed="status of 409", **options)


def test_a_reply_that_arrived_live_while_writing_still_holds_the_send(
    asgi_server, shared_sqlite, browser, nurse, lead, patient
):
    """The lead's reply appears on the nurse's screen while she writes: having appeared is not having been read.
    Her Send is held with what changed; "Send anyway" then sends it."""
    sms = sms_question(patient, nurse)
    with nurse_and_lead_viewing(browser, asgi_server.url, sms, allowed="status of 409") as (
        nurse_page,
        lead_page,
    ):
        expect(nurse_page.get_by_test_id("presence")).to_contain_text("Lena Lead")  # both sockets are live

        nurse_page.locator("#reply-box textarea").fill(DRAFT)
        lead_page.locator("#reply-box textarea").fill("Yes, with food is fine.")
        lead_page.get_by_role("button", name="Send and Close").click()
        expect(nurse_page.locator("#messages")).to_contain_text(
            "Yes, with food is fine."
        )  # live, on her screen

        nurse_page.get_by_role("button", name="Send and Close").click()
        warning = nurse_page.get_by_test_id("collision")
        expect(warning).to_contain_text("Yes, with food is fine.")
        expect(nurse_page.locator("#reply-box textarea")).to_have_value(DRAFT)
        assert not Message.objects.filter(communication=sms, author=nurse).exists()

        nurse_page.get_by_test_id("send-anyway").click()
        expect(nurse_page.locator("#messages")).to_contain_text(DRAFT)
        assert Message.objects.get(communication=sms, author=nurse).body_text == DRAFT
