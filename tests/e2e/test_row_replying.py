""" "X is replying" on list rows in two browsers: the nurse writes a draft in a communication; the lead's list (All
Patients, the conversation not open) shows "Nora Nurse is replying" on its row, for as long as the draft is there —
well after the keystrokes stop — and it goes at once when she sends, and when she empties the box."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import SCREENSHOTS, sign_in_at, sms_question, type_until_shown, watched_page

pytestmark = pytest.mark.django_db(transaction=True)

AT_ONCE = 4_000  # ms: well before a replier's entry would expire (PRESENCE_TTL_SECONDS)


def test_the_leads_list_shows_the_nurse_replying_until_she_sends_or_empties_the_box(
    asgi_server, shared_sqlite, browser, settings, nurse, lead, patient
):
    settings.TYPING_TTL_SECONDS = 1  # "typing…" stops at once; the draft keeps her replying
    sms = sms_question(patient, nurse)
    problems: list[str] = []
    contexts = []
    try:
        (nurse_context, nurse_page), (lead_context, lead_page) = (
            watched_page(browser, problems, width=1440, height=860),
            watched_page(browser, problems, width=1440, height=860),
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

        type_until_shown(editor, marker, AT_ONCE)
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

        type_until_shown(nurse_page.locator("#reply-box textarea"), marker, AT_ONCE)
        editor = nurse_page.locator("#reply-box textarea")
        editor.press("Control+a")
        editor.press("Backspace")
        expect(editor).to_have_value("")
        expect(marker).to_be_hidden(timeout=AT_ONCE)
    finally:
        for context in contexts:
            context.close()
    assert not problems, "Browser reported errors:\n" + "\n".join(problems)
