"""The bell over the Care Portal WebSocket: a new notification re-renders the bell of its user's tabs only (the
same partials as over HTTP), with the desktop-alert element; reading in one tab updates the others; events the page
has no handler for, or that name another user, are ignored and the socket stays up."""

import json

import pytest
from channels.layers import get_channel_layer
from django.template.loader import get_template
from django.test import Client
from django.urls import reverse

from inbox.events import group_for_user
from inbox.models import Communication, Notification
from inbox.services import add_internal_note, assign
from tests.careportal.realtime_support import (
    HX,
    connect,
    db,
    element,
    fresh_layer_and_cache,  # noqa: F401 (autouse fixture)
    normalized,
    receive_all,
    run,
    session_cookie,
)
from tests.factories import CommunicationFactory, MessageFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def warm_templates():
    """Load the URLconf and the bell's templates before the sockets wait for a push: the first render of a cold
    process imports and compiles for seconds, longer than a test waits for a frame."""
    reverse("careportal:notifications")
    get_template("careportal/notifications/_bell_push.html")


@pytest.fixture
def communication(patient, nurse):
    communication = CommunicationFactory(patient=patient, status=Communication.Status.OPEN)
    MessageFactory(communication=communication, body_text="I feel dizzy since this morning.")
    return communication


async def ready(cookie: str):
    """A socket whose connection is handled (it has joined its user's group): a heartbeat after it is answered."""
    socket = await connect(cookie)
    await socket.send_to(text_data=json.dumps({"type": "heartbeat"}))
    assert await socket.receive_from(timeout=5) == "<!-- pong -->"
    return socket


def http_bell(user) -> str:
    client = Client()
    client.force_login(user)
    return client.get(reverse("careportal:notifications"), **HX).content.decode()


def test_an_assignment_pushes_the_bell_to_the_assignee_only(
    nurse, colleague, other_nurse, lead, communication
):
    cookies = [session_cookie(user) for user in (colleague, nurse, other_nurse, lead)]

    async def scenario():
        sockets = [await ready(cookie) for cookie in cookies]
        await db(assign)(user=nurse, communication=communication, assignee=colleague)
        heard = [await receive_all(socket, first=1.5) for socket in sockets]
        assignee, *others = heard
        notification = await db(Notification.objects.get)(user=colleague)
        count = element(assignee, "bell-count")
        assert 'data-count="1"' in count and 'hx-swap-oob="true"' in count
        assert "Nora Nurse assigned you the Email with Maria Lopez" in assignee
        alert = element(assignee, "bell-alert")
        assert f'data-notification-id="{notification.pk}"' in alert
        assert f'data-url="/notifications/{notification.pk}/open/"' in alert
        assert "Maria" not in alert  # the desktop alert carries the kind, never patient details
        # The same partials as over HTTP for the same viewer.
        served = await db(http_bell)(colleague)
        assert normalized(element(assignee, "bell-list")) == normalized(element(served, "bell-list"))
        assert normalized(element(assignee, "bell-count")) == normalized(element(served, "bell-count"))
        for other in others:  # the assigner, a nurse off the team, a lead who sees everything
            assert "bell-count" not in other and "assigned you" not in other
        for socket in sockets:
            await socket.disconnect()

    run(scenario)


def test_a_mention_reaches_the_mentioned_colleagues_bell(nurse, colleague, communication):
    cookie = session_cookie(colleague)

    async def scenario():
        socket = await ready(cookie)
        await db(add_internal_note)(user=nurse, communication=communication, body="@cara please call her")
        heard = await receive_all(socket, first=1.5)
        assert "Nora Nurse mentioned you in a note: @cara please call her" in heard
        assert 'data-count="1"' in element(heard, "bell-count")
        await socket.disconnect()

    run(scenario)


def test_marking_read_in_one_tab_updates_the_bell_of_the_others(colleague, communication):
    notification = Notification.objects.create(
        user=colleague, kind="inbound", communication=communication, text="New Email from Maria Lopez"
    )
    cookie = session_cookie(colleague)

    def mark_read():
        client = Client()
        client.force_login(colleague)
        return client.post(reverse("careportal:notification_read", args=[notification.pk]), **HX)

    async def scenario():
        other_tab = await ready(cookie)
        response = await db(mark_read)()
        assert response.status_code == 200
        heard = await receive_all(other_tab, first=1.5)
        assert 'data-count="0"' in element(heard, "bell-count")
        assert element(heard, "bell-alert") is None  # reading is not news
        await other_tab.disconnect()

    run(scenario)


def test_unknown_events_and_events_for_someone_else_are_ignored(nurse, colleague, communication):
    cookie = session_cookie(colleague)
    notification = Notification.objects.create(
        user=nurse, kind="inbound", communication=communication, text="New Email from Maria Lopez"
    )

    async def scenario():
        socket = await ready(cookie)
        layer = get_channel_layer()
        group = group_for_user(colleague.pk)
        await layer.group_send(group, {"type": "something.nobody.handles", "x": 1})
        await layer.group_send(
            group, {"type": "notification.created", "user_id": nurse.pk, "notification_id": notification.pk}
        )
        await layer.group_send(
            group, {"type": "notification.created", "user_id": colleague.pk, "notification_id": "x"}
        )
        await socket.send_to(text_data=json.dumps({"type": "heartbeat"}))
        heard = await receive_all(socket, first=1.5)
        assert "New Email from Maria Lopez" not in heard  # nurse's notification never reaches another user
        assert element(heard, "bell-alert") is None
        await socket.send_to(text_data=json.dumps({"type": "heartbeat"}))
        assert await socket.receive_from(timeout=3) == "<!-- pong -->"  # still up
        await socket.disconnect()

    run(scenario)


def test_the_notification_hint_is_sent_after_commit_to_the_users_group_only(nurse, colleague, communication):
    sent = []
    layer = get_channel_layer()
    original = layer.group_send

    async def spy(group, message):
        sent.append((group, message))
        await original(group, message)

    layer.group_send = spy
    try:
        assign(user=nurse, communication=communication, assignee=colleague)
    finally:
        layer.group_send = original
    notification = Notification.objects.get(user=colleague)
    hints = [(g, m) for g, m in sent if m["type"] == "notification.created"]
    assert hints == [
        (
            group_for_user(colleague.pk),
            {"type": "notification.created", "user_id": colleague.pk, "notification_id": notification.pk},
        )
    ]
