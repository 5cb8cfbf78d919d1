"""Pushed list rows in a real browser: each one goes to its place by its key, whatever order the hints arrive in —
an older conversation's row first, then a newer one's — and after moving to another folder the new list's changes
arrive. Served by daphne in this process (``asgi_server``), the hints published on its channel layer in a chosen
order."""

import datetime as dt
import time

import pytest
from django.db import transaction
from django.utils import timezone
from playwright.sync_api import expect

from inbox import events
from inbox.models import Communication
from tests.e2e.conftest import on_server, sign_in_at
from tests.factories import CommunicationFactory, MessageFactory

pytestmark = pytest.mark.django_db(transaction=True)
TIMEOUT = 10_000


def conversation(patient, *, minutes_ago: int, text: str) -> Communication:
    at = timezone.now() - dt.timedelta(minutes=minutes_ago)
    communication = CommunicationFactory(patient=patient, last_message_at=at, opened_at=at)
    MessageFactory(communication=communication, created_at=at, body_text=text)
    # Changed long ago too: the page's catch-up (the list's changes since it was read, which may still be running
    # when the test moves on) finds nothing to bring, so only the hints the test sends move rows.
    Communication.objects.filter(pk=communication.pk).update(updated_at=at)
    communication.refresh_from_db()
    return communication


def wait_for_subscription(server, *, rows: int) -> None:
    """Until the server's hub has the page's tab subscribed to a list of ``rows`` rows (so that the hints below
    arrive after it, in the order the test gives them)."""
    from careportal.hub import hub

    async def ready() -> bool:
        return any(tab.subscription.state and len(tab.rows) == rows for tab in hub().tabs.values())

    deadline = time.monotonic() + 10
    while not on_server(server, ready()):
        assert time.monotonic() < deadline, "the page never subscribed"
        time.sleep(0.05)


def row_ids(page) -> list[int]:
    return [int(pk) for pk in page.locator("#inbox-rows > [data-row]").evaluate_all(
        "rows => rows.map(row => row.dataset.communicationId)"
    )]  # fmt: skip


def test_rows_go_to_their_place_whatever_order_their_hints_arrive_in(
    asgi_server, shared_sqlite, nurse, patient, page, screenshot
):
    from channels.layers import get_channel_layer

    first, second, third, fourth = (
        conversation(patient, minutes_ago=minutes, text=text)
        for minutes, text in ((60, "Thank you, see you Monday"), (90, "Is the clinic open on Friday?"),
                              (120, "My prescription ran out"), (150, "Can I reschedule?"))
    )  # fmt: skip
    sign_in_at(page, asgi_server.url, "nurse")
    page.goto(f"{asgi_server.url}/inbox/care-team/directed/")
    expect(page.locator("#inbox-rows > [data-row]")).to_have_count(4)
    assert row_ids(page) == [first.pk, second.pk, third.pk, fourth.pk]
    wait_for_subscription(asgi_server, rows=4)

    # The two oldest get new messages, the older of them first; the page hears the older one's hint first.
    now = timezone.now()
    for communication, seconds_ago, text in (
        (third, 20, "It ran out this morning"),
        (fourth, 10, "Tuesday works"),
    ):
        Communication.objects.filter(pk=communication.pk).update(
            last_message_at=now - dt.timedelta(seconds=seconds_ago),
            last_message_preview=text,
            # Stamped as if long ago: the page's own catch-up (changes since its list was read, which may still be
            # running) must not bring them; only the hints below, in the order given, do.
            updated_at=now - dt.timedelta(hours=1),
        )

    def hint(communication):
        event = {"type": "communication.changed", "communication_id": communication.pk, "kind": "message"}
        on_server(asgi_server, get_channel_layer().group_send(events.LIVE_GROUP, event))

    hint(third)
    expect(page.locator("#inbox-rows > [data-row]").first).to_have_id(f"row-{third.pk}", timeout=TIMEOUT)
    assert row_ids(page) == [third.pk, first.pk, second.pk, fourth.pk]
    hint(fourth)
    expect(page.locator("#inbox-rows > [data-row]").first).to_have_id(f"row-{fourth.pk}", timeout=TIMEOUT)
    assert row_ids(page) == [fourth.pk, third.pk, first.pk, second.pk]
    expect(page.locator(f"#row-{fourth.pk}")).to_contain_text("Tuesday works")
    expect(page.locator("#inbox-incoming > *")).to_have_count(0)  # nothing left behind
    screenshot("inbox-live-rows")

    # Another folder: a late row for the old list is dropped, the new list's own changes still arrive.
    page.get_by_role("link", name="Assigned to me").click()
    expect(page.locator("#list-title")).to_contain_text("Assigned to me")
    wait_for_subscription(asgi_server, rows=0)
    with transaction.atomic():
        Communication.objects.filter(pk=second.pk).update(assignee=nurse, updated_at=timezone.now())
    hint(second)
    expect(page.locator(f"#row-{second.pk}")).to_be_visible(timeout=TIMEOUT)
    assert row_ids(page) == [second.pk]
