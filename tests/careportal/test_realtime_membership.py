"""Rows follow the viewer's folder and filters (the same selector as the page): they leave when they no longer
belong (closed with the Open filter on), arrive with the key that puts them at their place (a new message on top,
an assignment between its neighbours), the empty state comes; the open conversation gets new messages appended, delivery changes in
place, and — once an Unrecognized conversation is linked — its reply box."""

import datetime as dt

import pytest
from django.db import transaction
from django.utils import timezone

from careportal.templatetags.portal import sort_key
from inbox import events
from inbox.folders import Folder
from inbox.models import Communication, Message
from inbox.services import ReplyContent, assign, link_to_patient, send_reply, set_status
from tests.careportal.realtime_support import (
    connect,
    db,
    folder_url,
    fresh_layer_and_cache,  # noqa: F401 (autouse fixture)
    ids_in,
    latest,
    oob_targets,
    receive_frames,
    run,
    session_cookie,
    sort_keys,
    subscribe,
    subscription,
    upserted,
)
from tests.factories import (
    CommunicationFactory,
    MessageFactory,
    PatientContactMethodFactory,
    SendingLineFactory,
    UnrecognizedCommunicationFactory,
    UserFactory,
)
from tests.inbox.ingest_support import receive_sms

pytestmark = pytest.mark.django_db(transaction=True)
NOW = timezone.now()


def conversation(patient, *, minutes_ago: int, **fields) -> Communication:
    at = NOW - dt.timedelta(minutes=minutes_ago)
    communication = CommunicationFactory(patient=patient, last_message_at=at, opened_at=at, **fields)
    MessageFactory(communication=communication, created_at=at, body_text=f"Written {minutes_ago} minutes ago")
    return communication


def test_closed_rows_leave_the_open_only_folder_and_the_empty_state_comes(nurse, colleague, patient):
    first, second = conversation(patient, minutes_ago=5), conversation(patient, minutes_ago=50)
    claim = subscription(folder_url(Folder.CARE_TEAM_DIRECTED, "status=open"), rows=[first.pk, second.pk])
    cookie = session_cookie(colleague)

    async def scenario():
        socket = await connect(cookie)
        await subscribe(socket, claim)
        await db(set_status)(user=nurse, communication=first, status=Communication.Status.CLOSED)
        frames = await receive_frames(socket)
        assert oob_targets("".join(frames)).count("delete") == 1
        assert f'<li id="row-{first.pk}" hx-swap-oob="delete">' in frames[0]
        directed = latest(frames, "folder-nav")
        assert 'data-count="care-team/directed"><span class="visually-hidden">, </span>1<' in directed

        await db(set_status)(user=nurse, communication=second, status=Communication.Status.CLOSED)
        frames = await receive_frames(socket, quiet=1.5)  # the recount of a burst comes at its end
        html = "\n".join(frames)
        assert f'<li id="row-{second.pk}" hx-swap-oob="delete">' in html
        assert 'hx-swap-oob="innerHTML:#inbox-rows"' in html and 'id="rows-empty"' in html
        assert 'data-count="care-team/directed"><span class="visually-hidden">, </span>0<' in latest(
            frames, "folder-nav"
        )

        await db(set_status)(user=nurse, communication=second, status=Communication.Status.OPEN)
        html = "\n".join(await receive_frames(socket, quiet=1.5))
        assert upserted(html) == [second.pk]  # the page puts it in the empty list (and drops the empty state)
        assert 'data-list="/inbox/care-team/directed/?status=open"' in html
        await socket.disconnect()

    run(scenario)


def test_a_new_inbound_sms_puts_its_row_on_top(nurse, colleague, patient):
    line = SendingLineFactory(number="+15550100001", label="Main clinic")
    PatientContactMethodFactory(patient=patient, kind="phone", value="+15550102030")
    older = conversation(patient, minutes_ago=90)
    claim = subscription(folder_url(Folder.CARE_TEAM_DIRECTED), rows=[older.pk])
    cookie = session_cookie(colleague)

    async def scenario():
        socket = await connect(cookie)
        await subscribe(socket, claim)
        await db(receive_sms)(sender="+15550102030", to=line.number, body="Running late, be there at 3")
        html = "\n".join(await receive_frames(socket))
        new = await db(Communication.objects.exclude(pk=older.pk).get)()
        assert upserted(html) == [new.pk]
        assert sort_keys(html)[new.pk] > sort_key(older)  # newest first: it goes on top
        assert "Running late, be there at 3" in html and "Main clinic" in html
        assert f'id="row-{older.pk}"' not in html  # the others stay where they are
        await socket.disconnect()

    run(scenario)


def test_a_row_assigned_to_me_arrives_between_its_neighbours(nurse, colleague, patient):
    newest = conversation(patient, minutes_ago=5, assignee=colleague)
    middle = conversation(patient, minutes_ago=30)
    oldest = conversation(patient, minutes_ago=60, assignee=colleague)
    claim = subscription(folder_url(Folder.ASSIGNED_TO_ME), rows=[newest.pk, oldest.pk])
    cookie = session_cookie(colleague)

    async def scenario():
        socket = await connect(cookie)
        await subscribe(socket, claim)
        await db(assign)(user=nurse, communication=middle, assignee=colleague)
        html = "\n".join(await receive_frames(socket))
        assert upserted(html) == [middle.pk] and ids_in(html, "row-") == [middle.pk]
        assert sort_key(newest) > sort_keys(html)[middle.pk] > sort_key(oldest)
        await db(assign)(user=nurse, communication=middle, assignee=nurse)  # given away: it leaves
        html = "\n".join(await receive_frames(socket))
        assert f'<li id="row-{middle.pk}" hx-swap-oob="delete">' in html
        await socket.disconnect()

    run(scenario)


def test_the_open_conversation_gets_new_messages_and_delivery_changes(nurse, colleague, patient):
    communication = conversation(patient, minutes_ago=10)
    first = communication.messages.get()
    claim = subscription(
        folder_url(Folder.CARE_TEAM_DIRECTED, f"c={communication.pk}"),
        rows=[communication.pk],
        open=communication.pk,
        last_message_id=first.pk,
    )
    cookie = session_cookie(colleague)

    def delivered(message):
        with transaction.atomic():
            Message.objects.filter(pk=message.pk).update(delivery_status=Message.DeliveryStatus.DELIVERED)
            events.publish_communication_changed(message.communication, kind="delivery")

    async def scenario():
        socket = await connect(cookie)
        await subscribe(socket, claim)
        await receive_frames(socket)
        reply = await db(send_reply)(
            user=nurse, communication=communication, content=ReplyContent(body="On my way"), close=False
        )
        html = "\n".join(await receive_frames(socket))
        assert 'hx-swap-oob="beforeend:#messages"' in html and f'id="message-{reply.pk}"' in html
        assert f'id="seen-message-id" name="seen_message_id" form="reply-form" value="{reply.pk}"' in html
        assert "reply-box" not in html and 'id="reply-form"' not in html  # the draft is never touched

        await db(delivered)(reply)
        html = "\n".join(await receive_frames(socket))
        article = latest([html], f"message-{reply.pk}")
        assert 'hx-swap-oob="true"' in article and "Delivered" in article
        assert "beforeend" not in html  # changed in place, not appended again
        await socket.disconnect()

    run(scenario)


def test_linking_the_open_unrecognized_conversation_brings_its_reply_box(lead, patient):
    unknown = UnrecognizedCommunicationFactory(counterpart="+15550107777", channel="sms")
    MessageFactory(communication=unknown, body_text="Who is this?")
    other_lead = UserFactory(username="lead-2", first_name="Leo", last_name="Lead", role="team-lead")
    claim = subscription(
        folder_url(Folder.ALL_UNRECOGNIZED, f"c={unknown.pk}"),
        rows=[unknown.pk],
        open=unknown.pk,
        last_message_id=unknown.messages.get().pk,
    )
    cookie = session_cookie(lead)

    async def scenario():
        socket = await connect(cookie)
        await subscribe(socket, claim)
        await receive_frames(socket)
        await db(link_to_patient)(user=other_lead, communication=unknown, patient=patient)
        html = "\n".join(await receive_frames(socket))
        assert f'<li id="row-{unknown.pk}" hx-swap-oob="delete">' in html  # no longer Unrecognized
        assert 'hx-swap-oob="innerHTML:#conversation-pane"' in html
        assert 'id="reply-form"' in html and "Maria Lopez" in html
        await socket.disconnect()

    run(scenario)


def test_a_row_is_pushed_even_when_the_newer_row_above_it_has_not_reached_the_tab(nurse, colleague, patient):
    """The lost-row race: two conversations get new messages, the older first — but the tab hears the older one's
    hint first while the newer one's is still on its way. Each row is pushed with its key and goes to its place
    on the page; none waits for (or is dropped for lack of) its neighbour."""
    on_screen = [conversation(patient, minutes_ago=60), conversation(patient, minutes_ago=90)]
    older, newer = conversation(patient, minutes_ago=300), conversation(patient, minutes_ago=400)
    claim = subscription(folder_url(Folder.CARE_TEAM_DIRECTED), rows=[c.pk for c in on_screen])
    cookie = session_cookie(colleague)

    def new_message(communication, *, minutes_ago: int) -> None:
        at = NOW - dt.timedelta(minutes=minutes_ago)
        Communication.objects.filter(pk=communication.pk).update(
            last_message_at=at, updated_at=timezone.now()
        )

    def hint(communication) -> None:
        with transaction.atomic():
            events.publish_communication_changed(communication, kind="message", webhooks=False)

    async def scenario():
        socket = await connect(cookie)
        await subscribe(socket, claim)
        await db(new_message)(older, minutes_ago=2)
        await db(new_message)(newer, minutes_ago=1)  # now the newest of all, its hint not yet heard
        await db(hint)(older)
        first = "\n".join(await receive_frames(socket))
        assert upserted(first) == [older.pk]  # not held back because the row above it (newer) is missing
        await db(hint)(newer)
        second = "\n".join(await receive_frames(socket))
        assert upserted(second) == [newer.pk]
        assert sort_keys(second)[newer.pk] > sort_keys(first)[older.pk] > sort_key(on_screen[0])
        await socket.disconnect()

    run(scenario)


def test_a_tab_gets_what_changed_between_its_list_being_read_and_its_subscription(nurse, colleague, patient):
    """The page's list is read at one moment, its socket subscribes a little later: what was committed between
    the two (heard by nobody on this tab) is read from the database and pushed, rows that left included."""
    listed = [conversation(patient, minutes_ago=60), conversation(patient, minutes_ago=90)]
    listed_at = timezone.now().timestamp()
    arrived = conversation(patient, minutes_ago=1)  # a new communication after the list was read
    Communication.objects.filter(pk=listed[1].pk).update(status=Communication.Status.CLOSED)  # leaves Open
    quiet = conversation(patient, minutes_ago=30)
    Communication.objects.filter(pk=quiet.pk).update(
        updated_at=NOW - dt.timedelta(hours=1)
    )  # unchanged since
    claim = subscription(
        folder_url(Folder.CARE_TEAM_DIRECTED, "status=open"), rows=[c.pk for c in listed], listed_at=listed_at
    )
    cookie = session_cookie(colleague)

    async def scenario():
        socket = await connect(cookie)
        html = "\n".join(await subscribe(socket, claim) + await receive_frames(socket))
        assert set(upserted(html)) == {arrived.pk, listed[0].pk}  # read again (changed since): the same rows
        assert f'<li id="row-{listed[1].pk}" hx-swap-oob="delete">' in html
        assert f'id="row-{quiet.pk}"' not in html
        await socket.disconnect()

    run(scenario)
