""" "X is replying" on list rows in two browsers: the nurse writes a draft in a communication; the lead's list (All
Patients, the conversation not open) shows "Nora Nurse is replying" on its row, for as long as the draft is there —
well after the keystrokes stop — and it goes at once when she sends, and when she empties the box."""

import pytest
from playwright.sync_api import expect

from inbox.models import Channel
from tests.e2e.conftest import SCREENSHOTS, sign_in_at
from tests.factories import CommunicationFactory, MessageFactory, SendingLineFactory

pytestmark = pytest.mark.django_db(transaction=True)

AT_ONCE = 4_000  # ms: well before a replier's entry would expire (PRESENCE_TTL_SECONDS)


def _page(browser, problems: list[str]):
    context = browser.new_context(viewport={"width": 1440, "height": 860}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    return context, page


def _type_until_shown(editor, marker) -> None:
    """Type a key at a time until the other page shows the marker (the page reports keystrokes at most every 3 s,
    so a burst right after the box was emptied may fall inside that pause)."""
    for _attempt in range(4):
        editor.press_sequentially("Take one tablet with food. ", delay=60)
        try:
            expect(marker).to_be_visible(timeout=AT_ONCE)
            return
        except AssertionError:
            continue
    expect(marker).to_be_visible(timeout=AT_ONCE)


def test_the_leads_list_shows_the_nurse_replying_until_she_sends_or_empties_the_box(
    asgi_server, shared_sqlite, browser, settings, nurse, lead, patient
):
    settings.TYPING_TTL_SECONDS = 1  # "typing…" stops at once; the draft keeps her replying
    line = SendingLineFactory(number="+15550100001", label="Main clinic")
    sms = CommunicationFactory(
        patient=patient, channel=Channel.SMS, assignee=nurse, counterpart="+15550102030", sending_line=line,
    )  # fmt: skip
    MessageFactory(communication=sms, body_text="Can I take it with food?", sender_name="Maria Lopez")
    problems: list[str] = []
    contexts = []
    try:
        (nurse_context, nurse_page), (lead_context, lead_page) = (
            _page(browser, problems),
            _page(browser, problems),
        )
        contexts += [nurse_context, lead_context]
        sign_in_at(nurse_page, asgi_server.url, "nurse")
        nurse_page.goto(f"{asgi_server.url}/inbox/my/assigned/?c={sms.pk}")
        expect(nurse_page.locator("#messages")).to_contain_text("Can I take it with food?")
        sign_in_at(lead_page, asgi_server.url, "lead")
        lead_page.goto(f"{asgi_server.url}/inbox/all-patients/directed/")
        row = lead_page.locator(f"#row-{sms.pk}")
        expect(row).to_contain_text("Maria Lopez")
        marker = row.get_by_test_id("row-replying")
        expect(marker).to_be_hidden()
        editor = nurse_page.locator("#reply-box textarea")

        _type_until_shown(editor, marker)
        expect(marker).to_have_text("Nora Nurse is replying")
        expect(row.locator(".row-snippet")).to_be_hidden()  # the marker takes the preview's line meanwhile
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        lead_page.screenshot(path=str(SCREENSHOTS / "inbox-row-replying.png"))
        # Typing has stopped (a second); the draft is still there, so she is still replying.
        nurse_page.wait_for_function(
            "() => !document.querySelector('#presence .is-typing')"
        )  # fmt: skip
        expect(marker).to_be_visible()
        # Her own list never shows herself.
        expect(nurse_page.locator(f"#row-{sms.pk}").get_by_test_id("row-replying")).to_be_hidden()

        nurse_page.get_by_role("button", name="Send and Close").click()
        expect(nurse_page.locator("#messages")).to_contain_text("Take one tablet with food.")
        expect(marker).to_be_hidden(timeout=AT_ONCE)
        expect(row.locator(".row-snippet")).to_contain_text("Take one tablet with food.")

        _type_until_shown(nurse_page.locator("#reply-box textarea"), marker)
        editor = nurse_page.locator("#reply-box textarea")
        editor.press("Control+a")
        editor.press("Backspace")
        expect(editor).to_have_value("")
        expect(marker).to_be_hidden(timeout=AT_ONCE)
    finally:
        for context in contexts:
            context.close()
    assert not problems, "Browser reported errors:\n" + "\n".join(problems)
