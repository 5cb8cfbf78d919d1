"""Every piece of screen pushed over the WebSocket is the HTTP partial for the same viewer: the same template with
the same context, only marked out of band — row, folder counts, conversation header, status switch, messages, the
newest-message marker and the presence strip."""

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from inbox.folders import Folder
from inbox.models import Communication, Message
from inbox.services import ReplyContent, assign, send_reply, set_status
from tests.careportal.realtime_support import (
    HX,
    connect,
    db,
    element,
    folder_url,
    fresh_layer_and_cache,  # noqa: F401 (autouse fixture)
    latest,
    normalized,
    receive_frames,
    run,
    session_cookie,
    subscribe,
    subscription,
    upserted,
)
from tests.factories import CareTeamMemberFactory, CommunicationFactory, MessageFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def colleague(published_config, patient):
    user = UserFactory(
        username="colleague",
        first_name="Cara",
        last_name="Colleague",
        role="care-nurse",
        time_zone="Europe/Paris",
    )
    CareTeamMemberFactory(patient=patient, user=user)
    return user


@pytest.fixture
def communication(patient, nurse):
    hour_ago = timezone.now() - dt.timedelta(hours=1)
    communication = CommunicationFactory(
        patient=patient, status=Communication.Status.OPEN, opened_at=hour_ago, last_message_at=hour_ago
    )
    MessageFactory(
        communication=communication, body_text="I feel dizzy since this morning.", created_at=hour_ago
    )
    return communication


def http(viewer, name: str, pk: int, page: str) -> str:
    client = Client()
    client.force_login(viewer)
    response = client.get(reverse(f"careportal:{name}", args=[pk]), HTTP_HX_CURRENT_URL=page, **HX)
    assert response.status_code == 200
    return response.content.decode()


def http_counts(viewer, folder: Folder) -> str:
    client = Client()
    client.force_login(viewer)
    inbox, slug = folder.value.split("/")
    response = client.get(reverse("careportal:inbox_counts", args=[inbox, slug]), **HX)
    return response.content.decode()


def assert_same(pushed: str | None, served: str | None):
    assert normalized(pushed) == normalized(served)


def test_each_pushed_partial_equals_the_http_partial_for_the_same_viewer(
    nurse, colleague, patient, communication
):
    older = CommunicationFactory(patient=patient, last_message_at=timezone.now() - dt.timedelta(days=2))
    page = folder_url(Folder.CARE_TEAM_DIRECTED, f"c={communication.pk}")
    first_id = communication.messages.get().pk
    claim = subscription(
        page, rows=[communication.pk, older.pk], open=communication.pk, last_message_id=first_id
    )
    cookies = session_cookie(colleague), session_cookie(nurse)
    frames: dict[str, list[str]] = {}
    served: dict[str, str] = {}

    async def scenario():
        watcher = await connect(cookies[0])
        frames["opened"] = await subscribe(watcher, claim)
        actor = await connect(cookies[1])
        await subscribe(actor, claim)
        frames["presence"] = await receive_frames(watcher)
        served["conversation"] = await db(http)(colleague, "communication", communication.pk, page)
        await db(send_reply)(
            user=nurse, communication=communication, content=ReplyContent(body="Please rest."), close=False
        )
        frames["reply"] = await receive_frames(watcher)
        await actor.disconnect()
        await watcher.disconnect()

    run(scenario)
    reply = communication.messages.get(direction=Message.Direction.OUTBOUND)
    assert reply.delivery_status == Message.DeliveryStatus.SENT

    row = http(colleague, "communication_row", communication.pk, page)
    assert_same(latest(frames["reply"], f"row-{communication.pk}"), element(row, f"row-{communication.pk}"))
    assert_same(
        latest(frames["reply"], "folder-nav"),
        element(http_counts(colleague, Folder.CARE_TEAM_DIRECTED), "folder-nav"),
    )
    header = http(colleague, "communication_header", communication.pk, page)
    assert_same(
        latest(frames["reply"] + frames["opened"], "conversation-header"),
        element(header, "conversation-header"),
    )
    assert_same(latest(frames["opened"], "reply-status"), element(header, "reply-status"))
    messages = http(colleague, "communication_messages", communication.pk, page)
    assert_same(latest(frames["reply"], f"message-{reply.pk}"), element(messages, f"message-{reply.pk}"))
    assert_same(latest(frames["reply"], "seen-message-id"), element(messages, "seen-message-id"))
    assert "Nora Nurse is viewing" in latest(frames["presence"], "presence")
    assert_same(latest(frames["presence"], "presence"), element(served["conversation"], "presence"))


def test_status_and_assignment_pushes_equal_the_http_partials(nurse, colleague, communication):
    page = folder_url(Folder.CARE_TEAM_DIRECTED, f"status=open&status=closed&c={communication.pk}")
    claim = subscription(
        page, rows=[communication.pk], open=communication.pk, last_message_id=communication.messages.get().pk
    )
    cookie = session_cookie(colleague)
    frames: dict[str, list[str]] = {}

    async def scenario():
        watcher = await connect(cookie)
        await subscribe(watcher, claim)
        await db(set_status)(user=nurse, communication=communication, status=Communication.Status.CLOSED)
        frames["status"] = await receive_frames(watcher)
        await db(assign)(user=nurse, communication=communication, assignee=colleague)
        frames["assign"] = await receive_frames(watcher)
        await watcher.disconnect()

    run(scenario)
    status_row = latest(frames["status"], f"row-{communication.pk}")
    assert "is-closed" in status_row and status_row.startswith(
        f'<li id="row-{communication.pk}" class="row'
    )  # greyed
    assert upserted("".join(frames["status"])) == [communication.pk]
    assert "Closed" in latest(frames["status"], "conversation-header")
    assert 'aria-pressed="true" data-status-value="closed"' in latest(frames["status"], "reply-status")
    header = http(colleague, "communication_header", communication.pk, page)
    assert_same(latest(frames["assign"], "conversation-header"), element(header, "conversation-header"))
    assert_same(latest(frames["status"], "reply-status"), element(header, "reply-status"))
    row = http(colleague, "communication_row", communication.pk, page)
    assert_same(latest(frames["assign"], f"row-{communication.pk}"), element(row, f"row-{communication.pk}"))
    assert "Cara Colleague" in latest(frames["assign"], "conversation-header")
    assert not any(
        "reply-box" in frame or "reply-form" in frame.replace('form="reply-form"', "")
        for frame in frames["status"] + frames["assign"]
    )
