"""The "… is typing" line in two browsers: it shows for the colleague while the nurse types, and ends for the colleague at
once — long before it would expire by itself — when the nurse empties the reply box, and when she sends."""

import pytest
from playwright.sync_api import expect

from inbox.models import Message
from tests.e2e.conftest import nurse_and_lead_viewing, sms_question, type_until_shown

pytestmark = pytest.mark.django_db(transaction=True)

# "typing…" lasts a minute after the last keystroke here: what ends it within the checks' few seconds is the page
# saying the box was emptied (or the send), never the expiry.
TYPING_TTL = 60
AT_ONCE = 4_000  # ms


def test_typing_ends_for_the_other_viewer_when_the_box_is_emptied_and_when_sent(
    asgi_server, shared_sqlite, browser, settings, nurse, lead, patient
):
    settings.TYPING_TTL_SECONDS = TYPING_TTL
    sms = sms_question(patient, nurse)
    with nurse_and_lead_viewing(browser, asgi_server.url, sms) as (nurse_page, lead_page):
        presence = lead_page.get_by_test_id("presence")
        expect(presence).to_contain_text("Nora Nurse is viewing")  # both sockets are live
        typing = presence.get_by_text("Nora Nurse is typing")
        editor = nurse_page.locator("#reply-box textarea")

        type_until_shown(editor, typing, AT_ONCE)
        # Emptied the way people do it: select everything, delete.
        editor.press("Control+a")
        editor.press("Backspace")
        expect(editor).to_have_value("")
        expect(typing).to_be_hidden(timeout=AT_ONCE)
        expect(presence).to_contain_text("Nora Nurse is viewing")

        type_until_shown(editor, typing, AT_ONCE)
        nurse_page.get_by_role("button", name="Send and Close").click()
        expect(nurse_page.locator("#messages")).to_contain_text("Take one tablet with food.")
        expect(typing).to_be_hidden(timeout=AT_ONCE)
        expect(lead_page.locator("#messages")).to_contain_text("Take one tablet with food.")
        assert Message.objects.filter(communication=sms, author=nurse).count() == 1
