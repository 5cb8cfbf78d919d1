"""The "… is typing" line in two browsers: it shows for the colleague while the nurse types, and ends for the colleague at
once — long before it would expire by itself — when the nurse empties the reply box, and when she sends."""

import pytest
from playwright.sync_api import expect

from inbox.models import Channel, Message
from tests.e2e.conftest import sign_in_at
from tests.factories import CommunicationFactory, MessageFactory, SendingLineFactory

pytestmark = pytest.mark.django_db(transaction=True)

# "typing…" lasts a minute after the last keystroke here: what ends it within the checks' few seconds is the page
# saying the box was emptied (or the send), never the expiry.
TYPING_TTL = 60
AT_ONCE = 4_000  # ms


def _typing_page(browser, problems: list[str]):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    return context, page


def _type_until_shown(editor, indicator) -> None:
    """Type (as a person does, a key at a time) until the other page shows "typing…": the page reports keystrokes at
    most every 3 s, so a burst right after the box was emptied may fall inside that pause."""
    for _attempt in range(4):
        editor.press_sequentially("Take one tablet with food. ", delay=60)
        try:
            expect(indicator).to_be_visible(timeout=AT_ONCE)
            return
        except AssertionError:
            continue
    expect(indicator).to_be_visible(timeout=AT_ONCE)


def test_typing_ends_for_the_other_viewer_when_the_box_is_emptied_and_when_sent(
    asgi_server, shared_sqlite, browser, settings, nurse, lead, patient
):
    settings.TYPING_TTL_SECONDS = TYPING_TTL
    sms = CommunicationFactory(
        patient=patient, channel=Channel.SMS, assignee=nurse, counterpart="+15550102030",
        sending_line=SendingLineFactory(number="+15550100001", label="Main clinic"),
    )  # fmt: skip
    MessageFactory(communication=sms, body_text="Can I take it with food?", sender_name="Maria Lopez")
    problems: list[str] = []
    contexts = []
    try:
        (nurse_context, nurse_page), (lead_context, lead_page) = (
            _typing_page(browser, problems),
            _typing_page(browser, problems),
        )
        contexts += [nurse_context, lead_context]
        for page, username, folder in (
            (nurse_page, "nurse", "my/assigned"),
            (lead_page, "lead", "all-patients/directed"),
        ):
            sign_in_at(page, asgi_server.url, username)
            page.goto(f"{asgi_server.url}/inbox/{folder}/?c={sms.pk}")
            expect(page.locator("#messages")).to_contain_text("Can I take it with food?")
        presence = lead_page.get_by_test_id("presence")
        expect(presence).to_contain_text("Nora Nurse is viewing")  # both sockets are live
        typing = presence.get_by_text("Nora Nurse is typing")
        editor = nurse_page.locator("#reply-box textarea")

        _type_until_shown(editor, typing)
        # Emptied the way people do it: select everything, delete.
        editor.press("Control+a")
        editor.press("Backspace")
        expect(editor).to_have_value("")
        expect(typing).to_be_hidden(timeout=AT_ONCE)
        expect(presence).to_contain_text("Nora Nurse is viewing")

        _type_until_shown(editor, typing)
        nurse_page.get_by_role("button", name="Send and Close").click()
        expect(nurse_page.locator("#messages")).to_contain_text("Take one tablet with food.")
        expect(typing).to_be_hidden(timeout=AT_ONCE)
        expect(lead_page.locator("#messages")).to_contain_text("Take one tablet with food.")
        assert Message.objects.filter(communication=sms, author=nurse).count() == 1
    finally:
        for context in contexts:
            context.close()
    assert not problems, "Browser reported errors:\n" + "\n".join(problems)
