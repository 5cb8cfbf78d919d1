"""Live chat in two browsers: the patient writes on the chat page, the message is stored and shows in the nurse's
Inbox, the nurse's reply from the reply box appears on the patient's page without a reload, and the patient sees
"Nora is typing…" when a staff typing event is published — and when the nurse types in the reply box.

pytest-django's ``live_server`` speaks WSGI (no WebSockets), so this module serves the real ASGI application with
daphne in this process (``asgi_server`` and ``shared_sqlite`` in ``tests/e2e/conftest.py``).
"""

import datetime as dt
import time
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from careportal import chat, presence
from inbox.models import Channel, Communication, Message, RawInbound
from tests.e2e.conftest import on_server, sign_in_at
from tests.factories import FeatureSettingFactory, PatientContactMethodFactory

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 10_000


def wait_for(condition, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_patient_and_nurse_chat_in_real_time(
    asgi_server, shared_sqlite, nurse, patient, browser, page, screenshot
):
    from channels.layers import get_channel_layer

    FeatureSettingFactory(key="chat_business_hours", is_enabled=False)  # the team is answering: no auto-reply
    PatientContactMethodFactory(
        patient=patient, kind="email", value="maria.lopez@mail.example", is_primary=True
    )
    token = chat.make_chat_token(patient)

    # The patient opens the link from their SMS and writes.
    page.goto(f"{asgi_server.url}/chat/{token}/")
    expect(page.get_by_role("heading", name="Chat with your care team")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Connected")).to_be_visible(timeout=TIMEOUT)
    page.get_by_label("Your message").fill("Hi, my knee is swollen again after the run.")
    page.get_by_label("Your message").press("Enter")
    messages = page.get_by_role("list", name="Messages")
    mine = messages.locator(".chat-message.is-mine")
    expect(mine).to_have_count(1)
    expect(mine).to_contain_text("my knee is swollen again")
    expect(mine).not_to_contain_text("Sending…", timeout=TIMEOUT)  # filed, not just stored

    # Stored raw first, then filed as an inbound chat message of the patient's chat.
    raw = RawInbound.objects.get(source=RawInbound.Source.CHAT)
    assert raw.processed_at is not None
    conversation = Communication.objects.get(channel=Channel.CHAT, patient=patient)
    assert raw.message.communication == conversation
    assert raw.message.direction == Message.Direction.INBOUND

    # The nurse, in another browser, finds it in the Inbox and answers from the reply box.
    staff = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    nurse_page = staff.new_page()
    nurse_page.set_default_timeout(TIMEOUT)
    sign_in_at(nurse_page, asgi_server.url, "nurse")
    nurse_page.goto(f"{asgi_server.url}/inbox/c/{conversation.pk}/")
    expect(nurse_page.get_by_role("log", name="Messages")).to_contain_text("my knee is swollen again")

    # A staff typing event in the agreed shape shows on the patient's page, and its end hides it again.
    typing = {"type": "presence.typing", "communication_id": conversation.pk, "user_id": nurse.pk,
              "name": nurse.full_name}  # fmt: skip
    group = f"communication.{conversation.pk}"
    # The nurse's page announces that she views the conversation; the patient's page then hears "nobody types",
    # which would hide an indicator shown just before. Publish once that has happened, again if it raced anyway.
    wait_for(
        lambda: nurse.pk in {p.user_id for p in presence.present(conversation.pk)}, "the nurse's presence"
    )
    indicator = page.get_by_text("Nora is typing…")
    for _attempt in range(3):
        on_server(asgi_server, get_channel_layer().group_send(group, typing))
        try:
            expect(indicator).to_be_visible(timeout=TIMEOUT / 3)
            break
        except AssertionError:
            continue
    expect(indicator).to_be_visible()
    on_server(asgi_server, get_channel_layer().group_send(group, {**typing, "is_typing": False}))
    expect(page.get_by_text("Nora is typing…")).to_be_hidden()

    # The nurse types in the reply box: the Inbox's real-time socket announces it, and the patient sees it.
    reply = nurse_page.get_by_role("textbox", name="Live Chat to Maria Lopez")
    reply.press_sequentially("Sorry to hear that, Maria. ")
    expect(page.get_by_text("Nora is typing…")).to_be_visible(timeout=TIMEOUT)
    screenshot("live-chat-patient-typing")
    reply.press_sequentially("Rest it, ice it for 20 minutes, and we will call you today.")
    nurse_page.get_by_role("button", name="Send and Close").click()

    # The reply appears on the patient's page without a reload; the typing indicator goes away.
    theirs = messages.locator(".chat-message.is-theirs")
    expect(theirs).to_have_count(1, timeout=TIMEOUT)
    expect(theirs).to_contain_text("ice it for 20 minutes")
    expect(theirs).to_contain_text("Nora")
    expect(page.get_by_text("Nora is typing…")).to_be_hidden()
    staff_reply = Message.objects.get(direction=Message.Direction.OUTBOUND)
    assert staff_reply.author == nurse and staff_reply.communication == conversation
    wait_for(
        lambda: Message.objects.filter(
            pk=staff_reply.pk, delivery_status=Message.DeliveryStatus.SENT
        ).exists(),
        "the chat reply to be marked sent",
    )

    # The patient answers again: it lands in the same conversation and reopens it.
    page.get_by_label("Your message").fill("Thank you! Talk soon.")
    page.get_by_role("button", name="Send").click()
    expect(mine).to_have_count(2)
    expect(mine.last).not_to_contain_text("Sending…", timeout=TIMEOUT)
    expect(nurse_page.get_by_role("log", name="Messages")).to_contain_text("my knee is swollen again")
    conversation.refresh_from_db()
    assert conversation.status == Communication.Status.OPEN
    assert conversation.messages.count() == 3

    # A reload shows the same conversation, from the database.
    page.reload()
    expect(page.get_by_role("status").filter(has_text="Connected")).to_be_visible(timeout=TIMEOUT)
    expect(messages.locator(".chat-message")).to_have_count(3)
    screenshot("live-chat-patient")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot("live-chat-patient-mobile")
    staff.close()


def test_outside_business_hours_the_patient_is_told_when_the_team_is_back(
    asgi_server, shared_sqlite, patient, page, screenshot
):
    now = dt.datetime.now(ZoneInfo(patient.time_zone))
    start = 6 if now.hour != 6 else 9  # a one-hour window every day, in the patient's zone, that is not now
    FeatureSettingFactory(
        key="chat_business_hours",
        value={"days": list(range(7)), "start": f"{start:02d}:00", "end": f"{start + 1:02d}:00",
               "time_zone": patient.time_zone},
    )  # fmt: skip
    page.goto(f"{asgi_server.url}/chat/{chat.make_chat_token(patient)}/")
    expect(page.get_by_test_id("chat-hours")).to_contain_text("The team is away right now")
    expect(page.get_by_role("status").filter(has_text="Connected")).to_be_visible(timeout=TIMEOUT)
    page.get_by_label("Your message").fill("Is anyone there tonight?")
    page.get_by_role("button", name="Send").click()
    auto = page.get_by_role("list", name="Messages").locator(".chat-message.is-auto")
    expect(auto).to_contain_text("Automatic reply", timeout=TIMEOUT)
    expect(auto).to_contain_text(f"at {start}:00 AM")
    expect(auto).to_contain_text("If this is an emergency, call 911.")
    screenshot("live-chat-patient-out-of-hours")
    assert Message.objects.filter(is_auto_reply=True, author=None).count() == 1
