"""Presence: "viewing" and "… is typing…" per conversation, kept in the cache with expiry (never in one process's
memory), shown only to people who may see the communication, gone when a tab closes (at once) or goes silent
(when its entry expires)."""

import json

import pytest

from careportal import presence
from inbox.folders import Folder
from tests.careportal.realtime_support import (
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
HEARTBEAT = json.dumps({"type": "heartbeat"})


@pytest.fixture
def communication(patient, nurse):
    communication = CommunicationFactory(patient=patient)
    MessageFactory(communication=communication)
    return communication


@pytest.fixture
def claim(communication):
    return subscription(
        folder_url(Folder.CARE_TEAM_DIRECTED, f"c={communication.pk}"),
        rows=[communication.pk],
        open=communication.pk,
        last_message_id=communication.messages.get().pk,
    )


@pytest.fixture
def clock(monkeypatch):
    """Presence time, moved by hand (the cache's own expiry only collects what has already expired)."""
    now = [presence.clock()]
    monkeypatch.setattr(presence, "clock", lambda: now[0])
    return now


def strip(frames):
    found = latest(frames, "presence")
    assert found is not None, frames
    return found


def test_viewers_see_each_other_and_who_is_typing(
    nurse, colleague, other_nurse, claim, communication, settings
):
    settings.TYPING_TTL_SECONDS = 1
    cookies = session_cookie(nurse), session_cookie(colleague), session_cookie(other_nurse)

    async def scenario():
        mine = await connect(cookies[0])
        assert "is-active" not in strip(await subscribe(mine, claim))  # alone: nobody else to show
        theirs = await connect(cookies[1])
        assert "Nora Nurse is viewing" in strip(await subscribe(theirs, claim))
        assert "Cara Colleague is viewing" in strip(await receive_frames(mine))
        outsider = await connect(cookies[2])
        assert await subscribe(outsider, claim) == []  # no access: no presence either way

        await theirs.send_to(text_data=json.dumps({"type": "typing", "communication": communication.pk}))
        typing = strip(await receive_frames(mine, quiet=0.3))
        assert "Cara Colleague is typing" in typing and "is-typing" in typing
        # Typing stops by itself once the keystrokes stop (TYPING_TTL_SECONDS), still viewing.
        stopped = strip(await receive_frames(mine, first=3, quiet=0.3))
        assert "Cara Colleague is viewing" in stopped and "typing" not in stopped

        await theirs.disconnect()  # the tab closes: gone at once
        assert "is-active" not in strip(await receive_frames(mine))
        assert await receive_frames(outsider, first=0.5) == []
        await mine.disconnect()
        await outsider.disconnect()

    run(scenario)


def test_a_silent_tab_drops_out_when_its_entry_expires(nurse, colleague, claim, communication, clock):
    cookies = session_cookie(nurse), session_cookie(colleague)

    async def scenario():
        mine = await connect(cookies[0])
        await subscribe(mine, claim)
        silent = await connect(cookies[1])  # connected, never heartbeats again
        await subscribe(silent, claim)
        assert "Cara Colleague is viewing" in strip(await receive_frames(mine))

        clock[0] += presence.ttl() - 1
        await mine.send_to(text_data=HEARTBEAT)  # refreshes the nurse, finds Cara still within her time
        assert await receive_frames(mine, quiet=0.3) == []
        clock[0] += 2
        await mine.send_to(text_data=HEARTBEAT)  # Cara has expired: everyone is told
        assert "is-active" not in strip(await receive_frames(mine))
        assert [p.name for p in presence.present(communication.pk)] == ["Nora Nurse"]
        await silent.disconnect()
        await mine.disconnect()

    run(scenario)


def test_presence_lives_in_the_cache_per_communication_and_user(nurse, colleague, communication, clock):
    presence.touch(communication.pk, user=nurse, channel="tab-1")
    presence.touch(communication.pk, user=colleague, channel="tab-2", typing=True)
    assert presence.changed(communication.pk) and not presence.changed(communication.pk)
    seen_by_nurse = presence.presence_for(communication.pk, viewer_id=nurse.pk)
    assert [(p.name, p.is_typing) for p in seen_by_nurse.viewers] == [("Cara Colleague", True)]

    presence.touch(communication.pk, user=colleague, channel="tab-2")  # a heartbeat keeps "typing" as it was
    assert presence.presence_for(communication.pk, viewer_id=nurse.pk).typing
    clock[0] += presence.typing_ttl() + 1
    assert not presence.presence_for(communication.pk, viewer_id=nurse.pk).typing
    assert presence.changed(communication.pk)

    presence.leave(communication.pk, user_id=colleague.pk, channel="another-tab")  # not the tab that wrote it
    assert len(presence.present(communication.pk)) == 2
    presence.leave(communication.pk, user_id=colleague.pk, channel="tab-2")
    assert [p.name for p in presence.present(communication.pk)] == ["Nora Nurse"]
    clock[0] += presence.ttl() + 1
    assert presence.present(communication.pk) == []


def test_typing_ends_at_once_when_the_box_is_emptied_or_the_reply_is_sent(
    nurse, colleague, claim, communication
):
    """Not TYPING_TTL_SECONDS later: the others must not wait for a reply that is not coming, nor see "typing…"
    beside a reply that has arrived."""
    from django.test import Client
    from django.urls import reverse

    cookies = session_cookie(nurse), session_cookie(colleague)
    typing = json.dumps({"type": "typing", "communication": communication.pk})
    emptied = json.dumps({"type": "typing", "communication": communication.pk, "active": False})

    def send_as_colleague():
        client = Client()
        client.force_login(colleague)
        url = reverse("careportal:communication_reply", args=[communication.pk])
        response = client.post(url, {"body": "On my way.", "close": "0"}, HTTP_HX_REQUEST="true")
        assert response.status_code == 200

    async def scenario():
        mine = await connect(cookies[0])
        await subscribe(mine, claim)
        theirs = await connect(cookies[1])
        await subscribe(theirs, claim)
        await receive_frames(mine)
        for stop in ("emptied", "sent"):
            await theirs.send_to(text_data=typing)
            assert "Cara Colleague is typing" in strip(await receive_frames(mine, quiet=0.3))
            if stop == "emptied":
                await theirs.send_to(text_data=emptied)
            else:
                await db(send_as_colleague)()
            ended = "\n".join(await receive_frames(mine, first=1.0, quiet=0.3))  # well before the 6 s expiry
            assert "Cara Colleague is viewing" in strip([ended]) and "typing" not in strip([ended]), stop
        await theirs.disconnect()
        await mine.disconnect()

    run(scenario)
