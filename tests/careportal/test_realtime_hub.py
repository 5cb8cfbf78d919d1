"""The process's real-time hub (careportal.hub): a change is rendered once per kind of viewer (the same user on the same
folder and filters) and handed to each of its tabs; delivery receipts and notes never touch lists or counts; a bell
is rendered once per user for all their tabs; and the hub's channel has room for a burst."""

import pytest
from django.db import transaction

from careportal import hub as hub_module
from careportal import live
from inbox import events
from inbox.folders import Folder
from inbox.models import Communication
from inbox.services import assign, set_status
from tests.careportal.realtime_support import (
    connect,
    db,
    folder_url,
    fresh_layer_and_cache,  # noqa: F401 (autouse fixture)
    receive_all,
    run,
    session_cookie,
    subscribe,
    subscription,
    upserted,
)
from tests.factories import CommunicationFactory, MessageFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def communication(patient):
    communication = CommunicationFactory(patient=patient, status=Communication.Status.OPEN)
    MessageFactory(communication=communication, body_text="Is the clinic open on Friday?")
    return communication


@pytest.fixture
def renders(monkeypatch):
    """Every list render the hub asks for: (user id, folder)."""
    calls = []
    original = live.list_changes

    def spy(user_id, state, ids, **options):
        calls.append((user_id, state.folder))
        return original(user_id, state, ids, **options)

    monkeypatch.setattr(live, "list_changes", spy)
    return calls


def test_a_change_is_rendered_once_per_kind_of_viewer_and_reaches_every_tab(
    nurse, colleague, communication, renders
):
    directed = subscription(folder_url(Folder.CARE_TEAM_DIRECTED), rows=[communication.pk])
    cookies = [session_cookie(colleague)] * 3 + [session_cookie(nurse)]

    async def scenario():
        tabs = [await connect(cookie) for cookie in cookies]
        for tab in tabs:
            await subscribe(tab, directed)
        renders.clear()
        await db(set_status)(user=nurse, communication=communication, status=Communication.Status.CLOSED)
        for tab in tabs:
            assert upserted(await receive_all(tab)) == [communication.pk]
        assert sorted(renders) == sorted(
            [(colleague.pk, Folder.CARE_TEAM_DIRECTED), (nurse.pk, Folder.CARE_TEAM_DIRECTED)]
        )
        for tab in tabs:
            await tab.disconnect()

    run(scenario)


def test_delivery_receipts_and_notes_leave_lists_and_counts_alone(nurse, colleague, communication, renders):
    claim = subscription(folder_url(Folder.CARE_TEAM_DIRECTED), rows=[communication.pk])
    cookie = session_cookie(colleague)

    def hint(kind):
        with transaction.atomic():
            events.publish_communication_changed(communication, kind=kind, webhooks=False)

    async def scenario():
        tab = await connect(cookie)
        await subscribe(tab, claim)
        renders.clear()
        await db(hint)("delivery")
        await db(hint)("note")
        assert await receive_all(tab, first=1.0) == ""
        assert renders == []
        await db(hint)("status")  # the control: a change lists may show is rendered
        assert upserted(await receive_all(tab)) == [communication.pk]
        assert renders == [(colleague.pk, Folder.CARE_TEAM_DIRECTED)]
        await tab.disconnect()

    run(scenario)


def test_a_bell_is_rendered_once_for_all_the_users_tabs(nurse, colleague, communication, monkeypatch):
    rendered = []
    original = hub_module.bell_push

    def spy(user_id, notification_id):
        rendered.append(user_id)
        return original(user_id, notification_id)

    monkeypatch.setattr(hub_module, "bell_push", spy)
    cookie = session_cookie(colleague)

    async def scenario():
        tabs = [await connect(cookie) for _ in range(3)]
        for tab in tabs:
            await subscribe(tab, subscription("http://testserver/"))
        await db(assign)(user=nurse, communication=communication, assignee=colleague)
        for tab in tabs:
            assert 'id="bell-alert"' in await receive_all(tab)
        assert rendered == [colleague.pk]
        for tab in tabs:
            await tab.disconnect()

    run(scenario)


def test_the_hub_channel_has_room_for_a_burst_on_both_layers():
    """The hub hears the whole organisation on its process-specific channel (one Redis list per process, shared with
    that process's sockets): the project's layers give it far more than the default 100."""
    from channels.layers import InMemoryChannelLayer
    from channels_redis.core import RedisChannelLayer
    from django.conf import settings

    from inbox_project import settings as project

    capacities = project.LIVE_CHANNEL_CAPACITY
    memory = InMemoryChannelLayer(channel_capacity=project.memory_layer_capacities(capacities))
    redis_layer = RedisChannelLayer(channel_capacity=capacities)
    for layer in (memory, redis_layer):
        assert layer.get_capacity("specific.abc!def") >= 1_000
    assert settings.LIVE_DB_THREADS >= 1
