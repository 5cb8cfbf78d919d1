""" "X is replying" on list rows (issue 14): while someone types, or holds an unsent draft, in a communication, every
other viewer of a list holding its row sees it there — rendered with the row (one cache read for a whole page) and
pushed alone as a small marker when it changes. It ends at once on send or when the box is emptied, and when the
typist's tab goes away (closed: at once; silent: when its presence entry expires)."""

import json
import re

import pytest
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from careportal import presence
from inbox import events
from inbox.folders import Folder
from tests.careportal.realtime_support import (
    HX,
    connect,
    db,
    folder_url,
    fresh_layer_and_cache,  # noqa: F401 (autouse fixture)
    latest,
    receive_frames,
    run,
    session_cookie,
    subscribe,
    subscription,
)
from tests.factories import CommunicationFactory, MessageFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def communication(patient, nurse):
    communication = CommunicationFactory(patient=patient)
    MessageFactory(communication=communication)
    return communication


@pytest.fixture
def clock(monkeypatch):
    now = [presence.clock()]
    monkeypatch.setattr(presence, "clock", lambda: now[0])
    return now


def typing(pk: int, active: bool = True) -> str:
    return json.dumps({"type": "typing", "communication": pk, **({} if active else {"active": False})})


def marker(frames, pk: int) -> str:
    found = latest(frames, f"replying-{pk}")
    assert found is not None, frames
    return found


def is_empty(found: str) -> bool:
    """Nobody (else) is replying: the marker is there, empty and hidden."""
    return found.endswith(" hidden></span>") and "is replying" not in found


def rows_html(user, folder: Folder) -> str:
    client = Client()
    client.force_login(user)
    return client.get(
        reverse("careportal:inbox_rows", args=[folder.inbox, folder.slug]), **HX
    ).content.decode()


# --- Presence: who is replying -----------------------------------------------------------------------------------


def test_a_draft_keeps_its_writer_replying_after_typing_stops_until_sent_or_emptied(
    nurse, communication, clock
):
    presence.touch(communication.pk, user=nurse, channel="tab-1", typing=True)
    change = presence.changed(communication.pk)
    assert change and change.replying
    clock[0] += presence.typing_ttl() + 1  # typing stops: the draft is still there
    change = presence.changed(communication.pk)
    assert change and not change.replying  # "typing…" ended in the conversation; the row still says replying
    assert [name for _, name, _ in presence.replying_among([communication.pk])[communication.pk]] == [
        "Nora Nurse"
    ]
    change = presence.end_typing(communication.pk, user_id=nurse.pk)  # sent, or emptied
    assert change and change.replying
    assert presence.replying_among([communication.pk]) == {}


def test_a_writer_whose_tab_went_silent_stops_replying_when_the_entry_expires(nurse, communication, clock):
    presence.touch(communication.pk, user=nurse, channel="tab-1", typing=True)
    presence.changed(communication.pk)
    clock[0] += presence.ttl() - 1
    presence.touch(communication.pk, user=nurse, channel="tab-1")  # a heartbeat: still there, still drafting
    assert not presence.changed(
        communication.pk
    ).replying  # typing ended, the draft stays; the row's summary moves on
    clock[0] += presence.ttl() - 1
    assert communication.pk in presence.replying_among([communication.pk])
    clock[0] += 2  # no heartbeat since: gone
    assert presence.replying_among([communication.pk]) == {}
    assert presence.changed(communication.pk).replying


def test_a_page_of_rows_reads_who_is_replying_with_one_cache_call_and_no_query(
    nurse, colleague, patient, monkeypatch, django_assert_max_num_queries, warm_caches
):
    rows = [CommunicationFactory(patient=patient, assignee=colleague) for _ in range(50)]
    calls = []

    class Counting:
        def __getattr__(self, name):
            method = getattr(cache, name)
            return lambda *args, **kwargs: calls.append(name) or method(*args, **kwargs)

    client = Client()
    client.force_login(colleague)
    url = reverse(
        "careportal:inbox_rows", args=[Folder.CARE_TEAM_DIRECTED.inbox, Folder.CARE_TEAM_DIRECTED.slug]
    )
    warm_caches()
    client.get(url, **HX)
    with CaptureQueriesContext(connection) as nobody_replying:
        client.get(url, **HX)
    for c in rows[::5]:
        presence.touch(c.pk, user=nurse, channel="tab-1", typing=True)
        presence.changed(c.pk)
    monkeypatch.setattr(presence, "cache", Counting())
    with django_assert_max_num_queries(len(nobody_replying)):
        html = client.get(url, **HX).content.decode()
    assert calls == ["get_many"]
    assert html.count("Nora Nurse is replying") == 10
    assert html.count('class="row-replying"') == 50  # every row has its marker's place, empty ones hidden


def test_a_row_shows_who_else_is_replying_never_the_viewer(nurse, colleague, lead, communication):
    presence.touch(communication.pk, user=nurse, channel="tab-1", typing=True)
    presence.touch(communication.pk, user=colleague, channel="tab-2", typing=True)
    presence.changed(communication.pk)
    for_lead = rows_html(lead, Folder.ALL_DIRECTED)
    assert "Cara Colleague and Nora Nurse are replying" in for_lead
    for_nurse = rows_html(nurse, Folder.CARE_TEAM_DIRECTED)
    assert "Cara Colleague is replying" in for_nurse and "Nora Nurse is replying" not in for_nurse


# --- Pushed to the lists that show the row -------------------------------------------------------------------


def test_lists_showing_the_row_hear_replying_begin_and_end_on_empty_and_on_send(
    nurse, lead, other_nurse, communication
):
    conversation = subscription(
        folder_url(Folder.CARE_TEAM_DIRECTED, f"c={communication.pk}"),
        rows=[communication.pk],
        open=communication.pk,
        last_message_id=communication.messages.get().pk,
    )
    leads_list = subscription(folder_url(Folder.ALL_DIRECTED), rows=[communication.pk])
    outsiders_list = subscription(folder_url(Folder.CARE_TEAM_DIRECTED), rows=[communication.pk])
    cookies = session_cookie(nurse), session_cookie(lead), session_cookie(other_nurse)

    def send_as_nurse():
        client = Client()
        client.force_login(nurse)
        url = reverse("careportal:communication_reply", args=[communication.pk])
        assert client.post(url, {"body": "On my way.", "close": "0"}, **HX).status_code == 200

    async def scenario():
        writer = await connect(cookies[0])
        await subscribe(writer, conversation)
        watcher = await connect(cookies[1])
        await subscribe(watcher, leads_list)
        outsider = await connect(cookies[2])  # may not see the patient: the row is not theirs to claim
        await subscribe(outsider, outsiders_list)

        await writer.send_to(text_data=typing(communication.pk))
        shown = marker(await receive_frames(watcher, quiet=0.3), communication.pk)
        assert "Nora Nurse is replying" in shown and not is_empty(shown)
        await writer.send_to(text_data=typing(communication.pk, active=False))  # the box emptied
        assert is_empty(marker(await receive_frames(watcher, first=1.0, quiet=0.3), communication.pk))

        await writer.send_to(text_data=typing(communication.pk))
        assert "Nora Nurse is replying" in marker(await receive_frames(watcher, quiet=0.3), communication.pk)
        await db(send_as_nurse)()
        frames = await receive_frames(watcher, first=1.0, quiet=0.3)
        assert is_empty(marker(frames, communication.pk))
        # The writer's own list never shows them replying; the outsider hears nothing of it.
        assert not any("is replying" in frame for frame in await receive_frames(writer, first=0.3, quiet=0.3))
        assert not any("replying" in frame for frame in await receive_frames(outsider, first=0.3, quiet=0.3))
        for socket in (writer, watcher, outsider):
            await socket.disconnect()

    run(scenario)


def test_the_marker_goes_when_the_writers_tab_closes_or_goes_silent(nurse, lead, communication, settings):
    settings.PRESENCE_TTL_SECONDS = 1
    conversation = subscription(
        folder_url(Folder.CARE_TEAM_DIRECTED, f"c={communication.pk}"),
        rows=[communication.pk],
        open=communication.pk,
        last_message_id=communication.messages.get().pk,
        drafting=True,
    )
    leads_list = subscription(folder_url(Folder.ALL_DIRECTED), rows=[communication.pk])
    cookies = session_cookie(nurse), session_cookie(lead)

    async def scenario():
        watcher = await connect(cookies[1])
        await subscribe(watcher, leads_list)
        writer = await connect(cookies[0])
        await subscribe(writer, conversation)  # a reconnected tab whose box holds a draft: replying again
        assert "Nora Nurse is replying" in marker(await receive_frames(watcher, quiet=0.3), communication.pk)
        await writer.disconnect()  # closed: at once
        assert is_empty(marker(await receive_frames(watcher, first=1.0, quiet=0.3), communication.pk))

        # A tab that goes silent (no heartbeat, no close): the hub looks again when its entry would expire.
        await db(presence.touch)(communication.pk, user=nurse, channel="silent-tab", typing=True)
        change = await db(presence.changed)(communication.pk)
        for group, event in events.presence_hints(communication.pk, replying=True):
            await get_channel_layer().group_send(group, event)
        assert change.replying
        assert "Nora Nurse is replying" in marker(await receive_frames(watcher, quiet=0.3), communication.pk)
        ended = await receive_frames(watcher, first=3.0, quiet=0.3)
        assert is_empty(marker(ended, communication.pk))
        await watcher.disconnect()

    run(scenario)


def test_a_row_pushed_for_another_change_carries_the_marker(nurse, lead, communication):
    """A row re-rendered for a list (a new message, a status change) keeps "… is replying" (the row's own render)."""
    from inbox.services import set_status

    leads_list = subscription(folder_url(Folder.ALL_DIRECTED), rows=[communication.pk])
    presence.touch(communication.pk, user=nurse, channel="tab-1", typing=True)
    presence.changed(communication.pk)

    cookie = session_cookie(lead)

    async def scenario():
        watcher = await connect(cookie)
        await subscribe(watcher, leads_list)
        await db(set_status)(user=nurse, communication=communication, status="closed")
        frames = await receive_frames(watcher, quiet=0.3)
        row = latest(frames, f"row-{communication.pk}")
        assert row is not None and re.search(r"Nora Nurse is replying", row)
        await watcher.disconnect()

    run(scenario)
