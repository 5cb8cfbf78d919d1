"""Item 16 in a browser: replying to an Unrecognized sender asks to confirm the recipient by name, then sends."""

import pytest
from playwright.sync_api import expect

from inbox.models import AuditEvent, Channel, Message
from tests.factories import MessageFactory, SendingLineFactory, UnrecognizedCommunicationFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_reply_to_an_unlinked_sender_goes_after_confirming_its_recipient(page, sign_in, live_server, nurse):
    unknown = UnrecognizedCommunicationFactory(
        channel=Channel.SMS, counterpart="+15550109999", assignee=nurse,
        sending_line=SendingLineFactory(number="+15550100001", label="Main clinic"),
    )  # fmt: skip
    MessageFactory(communication=unknown, body_text="Is my refill ready?", sender_address="+15550109999")
    sign_in("nurse")
    page.goto(f"{live_server.url}/inbox/my/unrecognized/?c={unknown.pk}")
    box = page.locator("#reply-box")
    expect(box.get_by_role("button", name="Link to patient")).to_be_visible()
    box.get_by_role("textbox", name="SMS to +15550109999").fill("Who is writing, please?")
    box.get_by_role("button", name="Send and Close").click()

    confirm = page.get_by_role("alertdialog", name="Send to +15550109999 (not linked to a patient)?")
    expect(confirm).to_be_visible()
    assert not Message.objects.filter(communication=unknown, direction=Message.Direction.OUTBOUND).exists()
    expect(box.get_by_role("textbox", name="SMS to +15550109999")).to_have_value("Who is writing, please?")

    confirm.get_by_role("button", name="Send to +15550109999").click()
    expect(page.locator("#messages")).to_contain_text("Who is writing, please?")
    expect(page.get_by_role("alertdialog")).to_have_count(0)
    sent = Message.objects.get(communication=unknown, direction=Message.Direction.OUTBOUND)
    assert sent.recipient_address == "+15550109999"
    event = AuditEvent.objects.get(action=AuditEvent.Action.MESSAGE_SENT, communication=unknown)
    assert event.detail["unlinked_recipient"] == "+15550109999" and event.actor == nurse
