"""The patient's chat WebSocket through the real ASGI application: it refuses bad links, stores a patient message raw
first and acknowledges it only then, files it through the pipeline, forwards staff replies as server-rendered HTML,
never internal notes, never anything of another communication, and shows staff typing.

Each test drives one async scenario with ``async_to_sync``; ORM calls inside it go through
``database_sync_to_async`` and so run on the test's own thread and database connection.
"""

import re
import time
from types import SimpleNamespace

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.core import signing
from django.db import DatabaseError

from adminportal.models import FeatureSetting
from careportal import chat, presence
from inbox import events
from inbox.ingest import pipeline
from inbox.models import AuditEvent, Channel, Communication, Message, RawInbound
from inbox.services import ReplyContent, send_reply
from tests.factories import (
    ChatCommunicationFactory,
    CommunicationFactory,
    ContactFactory,
    FeatureSettingFactory,
    MessageFactory,
    PatientContactMethodFactory,
    PatientFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)

CLIENT_ID = "5f0e8a43-3c43-4d8e-9f3d-4a3c1b1e2a10"
OTHER_CLIENT_ID = "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
CLOSED_ALWAYS = {"days": [], "start": "08:00", "end": "18:00"}
OPEN_ALWAYS = {"days": [0, 1, 2, 3, 4, 5, 6], "start": "00:00", "end": "23:59"}


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    async_to_sync(get_channel_layer().flush)()
    yield
    async_to_sync(get_channel_layer().flush)()


@pytest.fixture(autouse=True)
def _team_always_answering(db):
    """Business hours that are always open, so only the out-of-hours tests see automatic replies."""
    FeatureSettingFactory(key="chat_business_hours", value=OPEN_ALWAYS)


def socket(token, *, after=0, origin=b"http://testserver"):
    # Imported here, not at collection: building the ASGI application builds Django's middleware, which must see
    # the session's test settings (tests/conftest.py).
    from inbox_project.asgi import application

    return WebsocketCommunicator(
        application,
        f"/ws/chat/{token}/?after={after}",
        headers=[(b"origin", origin), (b"host", b"testserver")],
    )


def in_eight_days(monkeypatch):
    """Move the signer's clock a day past the links' seven-day lifetime."""
    later = time.time() + 8 * 24 * 3600
    monkeypatch.setattr(signing, "time", SimpleNamespace(time=lambda: later))


def run(scenario):
    async_to_sync(scenario)()


db = database_sync_to_async


async def say(communicator, text, client_id=CLIENT_ID):
    await communicator.send_json_to({"type": "message", "client_id": client_id, "text": text})


async def receive_until(communicator, kind, timeout=2):
    """The next frame of ``kind``, skipping others (acks, typing)."""
    while True:
        frame = await communicator.receive_json_from(timeout=timeout)
        if frame["type"] == kind:
            return frame


def message_ids(html):
    return [int(i) for i in re.findall(r'data-message-id="(\d+)"', html)]


def member_groups(channel_layer):
    return {group for group, members in channel_layer.groups.items() if members}


# --- Refusing bad links ---------------------------------------------------------------------------------------


def test_the_socket_closes_a_forged_link_with_4403():
    async def scenario():
        communicator = socket("forged-token")
        connected, _ = await communicator.connect()
        assert connected
        assert await communicator.receive_output() == {"type": "websocket.close", "code": 4403}
        assert member_groups(get_channel_layer()) == set()

    run(scenario)


def test_the_socket_closes_an_expired_link_with_4403(monkeypatch, patient):
    ChatCommunicationFactory(patient=patient)
    token = chat.make_chat_token(patient)
    in_eight_days(monkeypatch)

    async def scenario():
        communicator = socket(token)
        await communicator.connect()
        assert (await communicator.receive_output())["code"] == 4403
        assert member_groups(get_channel_layer()) == set()

    run(scenario)


def test_the_socket_refuses_a_foreign_origin(patient):
    async def scenario():
        communicator = socket(chat.make_chat_token(patient), origin=b"https://evil.example")
        connected, _ = await communicator.connect()
        assert not connected

    run(scenario)


def test_a_link_that_expires_while_the_page_is_open_closes_on_the_next_message(monkeypatch, patient):
    async def scenario():
        communicator = socket(chat.make_chat_token(patient))
        assert (await communicator.connect())[0]
        in_eight_days(monkeypatch)
        await say(communicator, "Are you there?")
        assert (await communicator.receive_output())["code"] == 4403
        assert not await db(RawInbound.objects.exists)()

    run(scenario)


def test_a_page_whose_link_expired_gets_no_more_messages(monkeypatch, patient, nurse):
    conversation = ChatCommunicationFactory(patient=patient)

    async def scenario():
        communicator = socket(chat.make_chat_token(patient))
        assert (await communicator.connect())[0]
        in_eight_days(monkeypatch)
        await db(send_reply)(user=nurse, communication=conversation, content=ReplyContent(body="Hello Maria"))
        assert (await communicator.receive_output())["code"] == 4403

    run(scenario)


# --- A patient message: raw first, acknowledged, filed ----------------------------------------------------------


def test_a_patient_message_is_stored_raw_first_and_becomes_an_inbound_chat_message(patient, nurse):
    PatientContactMethodFactory(patient=patient, value="maria.lopez@mail.example", is_primary=True)

    async def scenario():
        communicator = socket(chat.make_chat_token(patient))
        assert (await communicator.connect())[0]
        await say(communicator, "My knee is swollen again.")
        ack = await communicator.receive_json_from()
        assert ack["type"] == "ack" and ack["client_id"] == CLIENT_ID
        frame = await receive_until(communicator, "messages")
        assert "My knee is swollen again." in frame["html"]
        assert f'data-client-id="{CLIENT_ID}"' in frame["html"]
        assert frame["last_id"] == message_ids(frame["html"])[-1]
        await communicator.disconnect()

    run(scenario)
    raw = RawInbound.objects.get(source=RawInbound.Source.CHAT)
    assert raw.provider_id == f"{patient.pk}:{CLIENT_ID}"
    assert raw.payload["text"] == "My knee is swollen again."
    assert raw.processed_at is not None and raw.error == ""
    message = raw.message
    assert message.direction == Message.Direction.INBOUND
    assert message.provider == Message.Provider.CHAT
    assert message.provider_id == raw.provider_id
    assert message.sender_name == "Maria Lopez"
    communication = message.communication
    assert communication.channel == Channel.CHAT
    assert (communication.patient, communication.contact, communication.is_unrecognized) == (
        patient,
        None,
        False,
    )
    assert communication.counterpart == "maria.lopez@mail.example"
    assert communication.status == Communication.Status.OPEN
    assert communication.last_message_preview == "My knee is swollen again."
    event = AuditEvent.objects.get(action=AuditEvent.Action.MESSAGE_RECEIVED)
    assert (event.actor, event.actor_label, event.patient) == (None, "patient", patient)


def test_a_chat_without_an_email_on_file_uses_a_chat_counterpart(patient):
    async def scenario():
        communicator = socket(chat.make_chat_token(patient))
        await communicator.connect()
        await say(communicator, "Hello")
        await receive_until(communicator, "messages")
        await communicator.disconnect()

    run(scenario)
    assert Communication.objects.get().counterpart == f"chat:{patient.pk}"


def test_the_patient_message_joins_and_reopens_their_closed_chat(patient):
    conversation = ChatCommunicationFactory(patient=patient, status=Communication.Status.CLOSED)

    async def scenario():
        communicator = socket(chat.make_chat_token(patient))
        await communicator.connect()
        await say(communicator, "One more question")
        await receive_until(communicator, "messages")
        await communicator.disconnect()

    run(scenario)
    conversation.refresh_from_db()
    assert conversation.status == Communication.Status.OPEN
    assert Communication.objects.count() == 1
    assert conversation.messages.get().body_text == "One more question"


def test_a_contacts_message_files_into_the_contacts_chat(patient):
    mother = ContactFactory(patient=patient, first_name="Rosa", last_name="Lopez", email="rosa@mail.example")

    async def scenario():
        communicator = socket(chat.make_chat_token(patient, contact=mother))
        await communicator.connect()
        await say(communicator, "Writing for my daughter")
        await receive_until(communicator, "messages")
        await communicator.disconnect()

    run(scenario)
    communication = Communication.objects.get()
    assert (communication.patient, communication.contact, communication.counterpart) == (
        patient,
        mother,
        "rosa@mail.example",
    )
    assert communication.messages.get().sender_name == "Rosa Lopez"


def test_a_message_is_not_acknowledged_when_it_cannot_be_stored(monkeypatch, patient):
    def database_down(**kwargs):
        raise DatabaseError("database is down")

    monkeypatch.setattr("inbox.ingest.raw.store_raw", database_down)

    async def scenario():
        communicator = socket(chat.make_chat_token(patient))
        await communicator.connect()
        await say(communicator, "Hello?")
        frame = await communicator.receive_json_from()
        assert frame["type"] == "error" and frame["client_id"] == CLIENT_ID and frame["retry"] is True
        assert await communicator.receive_nothing()
        await communicator.disconnect()

    run(scenario)
    assert not Message.objects.exists()


def test_the_same_client_id_twice_is_one_message(patient):
    async def scenario():
        communicator = socket(chat.make_chat_token(patient))
        await communicator.connect()
        await say(communicator, "Hello")
        await receive_until(communicator, "messages")
        await say(communicator, "Hello")  # the page resends after a dropped connection
        ack = await communicator.receive_json_from()
        assert ack == {"type": "ack", "client_id": CLIENT_ID, "html": ""}
        assert await communicator.receive_nothing()
        await communicator.disconnect()

    run(scenario)
    assert RawInbound.objects.count() == 1
    assert Message.objects.count() == 1


def test_the_same_client_id_from_another_patient_is_another_message(patient):
    other = PatientFactory()

    async def scenario():
        for person in (patient, other):
            communicator = socket(chat.make_chat_token(person))
            await communicator.connect()
            await say(communicator, "Hello")
            await receive_until(communicator, "messages")
            await communicator.disconnect()

    run(scenario)
    assert Message.objects.count() == 2
    assert {m.communication.patient for m in Message.objects.all()} == {patient, other}


@pytest.mark.parametrize(
    "frame, text",
    [
        ({"type": "message", "client_id": CLIENT_ID, "text": "   "}, "Write a message before sending."),
        ({"type": "message", "client_id": CLIENT_ID, "text": "x" * 4001}, "at most 4,000 characters"),
        ({"type": "message", "client_id": "not-a-uuid", "text": "Hi"}, "could not be sent"),
        ({"type": "message", "client_id": CLIENT_ID, "text": ["a list"]}, "Write a message"),
        ({"type": "subscribe", "group": "communication.1"}, "should not"),
    ],
)
def test_bad_input_gets_a_clear_error_and_stores_nothing(patient, frame, text):
    async def scenario():
        communicator = socket(chat.make_chat_token(patient))
        await communicator.connect()
        await communicator.send_json_to(frame)
        error = await communicator.receive_json_from()
        assert error["type"] == "error" and text in error["text"]
        await communicator.send_to(text_data="{not json")
        assert (await communicator.receive_json_from())["type"] == "error"
        await communicator.disconnect()

    run(scenario)
    assert not RawInbound.objects.exists()
    assert member_groups(get_channel_layer()) == set()


def test_a_page_sending_too_fast_is_slowed_down(patient):
    async def scenario():
        communicator = socket(chat.make_chat_token(patient))
        await communicator.connect()
        for n in range(21):
            await say(communicator, f"Message {n}", client_id=f"00000000-0000-4000-8000-{n:012d}")
        frames = []
        # Wait for an answer to every message (20 acks and the refusal), however slowly a loaded machine files
        # them, then for whatever else follows them.
        while sum(f["type"] in ("ack", "error") for f in frames) < 21:
            frames.append(await communicator.receive_json_from(timeout=10))
        while not await communicator.receive_nothing(timeout=0.2):
            frames.append(await communicator.receive_json_from())
        errors = [f for f in frames if f["type"] == "error"]
        assert len(errors) == 1 and "sending messages very quickly" in errors[0]["text"]
        assert sum(f["type"] == "ack" for f in frames) == 20
        await communicator.disconnect()

    run(scenario)
    # Twenty patient messages (outside business hours the team's automatic reply is an outbound one).
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 20


def test_the_first_message_joins_the_chat_once_a_worker_files_it(monkeypatch, patient):
    """With a real worker the page's first message is filed later: the pipeline then tells the page which
    communication its chat is, and the page joins that group and gets the message."""
    monkeypatch.setattr("inbox.ingest.raw.enqueue", lambda raw_id: True)  # the broker took it; no worker yet

    async def scenario():
        communicator = socket(chat.make_chat_token(patient))
        await communicator.connect()
        await say(communicator, "Anyone there?")
        ack = await communicator.receive_json_from()
        assert ack["type"] == "ack" and "Sending…" in ack["html"]
        assert await communicator.receive_nothing()
        raw_id = await db(lambda: RawInbound.objects.get().pk)()
        await db(pipeline.process)(raw_id)  # the worker
        frame = await receive_until(communicator, "messages")
        assert "Anyone there?" in frame["html"] and "Sending…" not in frame["html"]
        communication_id = await db(lambda: Communication.objects.get().pk)()
        assert member_groups(get_channel_layer()) == {f"communication.{communication_id}"}
        await communicator.disconnect()

    run(scenario)


# --- Staff replies and what the page may see -----------------------------------------------------------------------


def test_a_staff_reply_reaches_the_patient_socket_as_html(patient, nurse):
    conversation = ChatCommunicationFactory(patient=patient)
    MessageFactory(communication=conversation, body_text="Hello?", provider=Message.Provider.CHAT)

    async def scenario():
        last = await db(lambda: conversation.messages.get().pk)()
        communicator = socket(chat.make_chat_token(patient), after=last)
        assert (await communicator.connect())[0]
        assert await communicator.receive_nothing()  # nothing newer than what the page shows
        reply = await db(send_reply)(
            user=nurse,
            communication=conversation,
            content=ReplyContent(body="Hi Maria, <b>how</b> can I help?"),
        )
        frame = await receive_until(communicator, "messages")
        assert message_ids(frame["html"]) == [reply.pk]
        assert "Hi Maria, &lt;b&gt;how&lt;/b&gt; can I help?" in frame["html"]
        assert ">Nora<" in frame["html"]
        assert 'class="chat-message is-theirs' in frame["html"]
        assert frame["last_id"] == reply.pk
        await communicator.disconnect()

    run(scenario)
    reply = Message.objects.get(direction=Message.Direction.OUTBOUND)
    assert reply.delivery_status == Message.DeliveryStatus.SENT
    assert reply.provider_id == f"chat-{reply.pk}"


def test_a_reconnecting_page_gets_what_it_missed(patient, nurse):
    conversation = ChatCommunicationFactory(patient=patient)
    first = MessageFactory(communication=conversation, body_text="Hello?", provider=Message.Provider.CHAT)
    missed = MessageFactory(
        communication=conversation,
        direction=Message.Direction.OUTBOUND,
        author=nurse,
        body_text="Sorry, I missed this",
    )

    async def scenario():
        communicator = socket(chat.make_chat_token(patient), after=first.pk)
        await communicator.connect()
        frame = await communicator.receive_json_from()
        assert frame["type"] == "messages" and message_ids(frame["html"]) == [missed.pk]
        await communicator.disconnect()

    run(scenario)


def test_internal_notes_never_reach_the_patient(patient, nurse):
    conversation = ChatCommunicationFactory(patient=patient)

    async def scenario():
        communicator = socket(chat.make_chat_token(patient))
        await communicator.connect()

        def write_note():
            MessageFactory(
                communication=conversation, direction=Message.Direction.OUTBOUND, author=nurse, is_internal_note=True,
                body_text="Staff only: check her potassium",
            )  # fmt: skip
            events.publish_communication_changed(conversation, kind="message")

        await db(write_note)()
        assert await communicator.receive_nothing()
        reply = await db(send_reply)(
            user=nurse, communication=conversation, content=ReplyContent(body="Visible")
        )
        frame = await receive_until(communicator, "messages")
        assert message_ids(frame["html"]) == [reply.pk]
        assert "potassium" not in frame["html"]
        await communicator.disconnect()

    run(scenario)


def test_the_patient_socket_joins_only_its_own_chat_group(patient, nurse):
    conversation = ChatCommunicationFactory(patient=patient)

    async def scenario():
        communicator = socket(chat.make_chat_token(patient))
        await communicator.connect()
        await communicator.receive_nothing()
        assert member_groups(get_channel_layer()) == {f"communication.{conversation.pk}"}
        await communicator.disconnect()
        assert member_groups(get_channel_layer()) == set()

    run(scenario)


def test_messages_on_other_communications_never_arrive(patient, nurse, lead):
    ChatCommunicationFactory(patient=patient)
    sms = CommunicationFactory(patient=patient, channel=Channel.SMS, counterpart="+15550102030")
    other_chat = ChatCommunicationFactory(patient=PatientFactory())
    PatientContactMethodFactory(patient=patient, kind="phone", value="+15550102030")

    async def scenario():
        communicator = socket(chat.make_chat_token(patient))
        await communicator.connect()
        await db(send_reply)(
            user=lead, communication=other_chat, content=ReplyContent(body="Another patient")
        )
        await db(send_reply)(
            user=nurse, communication=sms, content=ReplyContent(body="Your SMS conversation")
        )
        await get_channel_layer().group_send(
            f"patient.{patient.pk}",
            {"type": "communication.changed", "communication_id": sms.pk, "kind": "message"},
        )
        assert await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()

    run(scenario)


def test_a_forged_event_naming_another_communication_sends_nothing(patient, nurse):
    conversation = ChatCommunicationFactory(patient=patient)
    other_chat = ChatCommunicationFactory(patient=PatientFactory())
    MessageFactory(communication=other_chat, body_text="Someone else's secret")

    async def scenario():
        communicator = socket(chat.make_chat_token(patient))
        await communicator.connect()
        await get_channel_layer().group_send(
            f"communication.{conversation.pk}",
            {"type": "communication.changed", "communication_id": other_chat.pk, "kind": "message"},
        )
        assert await communicator.receive_nothing()
        await communicator.disconnect()

    run(scenario)


# --- Staff typing ------------------------------------------------------------------------------------------------


def test_the_patient_sees_which_staff_member_is_typing(patient, nurse):
    conversation = ChatCommunicationFactory(patient=patient)

    async def scenario():
        communicator = socket(chat.make_chat_token(patient))
        await communicator.connect()
        layer = get_channel_layer()
        group = f"communication.{conversation.pk}"
        event = {"type": "presence.typing", "communication_id": conversation.pk, "user_id": nurse.pk,
                 "name": "Nora Nurse"}  # fmt: skip
        await layer.group_send(group, event)
        frame = await communicator.receive_json_from()
        assert frame == {"type": "typing", "active": True, "html": "Nora is typing…\n"}
        await layer.group_send(group, {**event, "is_typing": False})
        assert await communicator.receive_json_from() == {"type": "typing", "active": False, "html": ""}
        await layer.group_send(group, {**event, "type": "chat.typing", "name": "<b>Eve</b>"})
        assert "&lt;b&gt;Eve&lt;/b&gt; is typing…" in (await communicator.receive_json_from())["html"]
        await communicator.disconnect()

    run(scenario)


def test_the_patient_sees_staff_typing_announced_by_the_inbox(patient, nurse, lead):
    """The Inbox's real-time consumer keeps who is typing in the shared presence store and announces changes with
    ``presence.changed``; the page reads the store and shows the staff first names."""
    conversation = ChatCommunicationFactory(patient=patient)

    async def scenario():
        communicator = socket(chat.make_chat_token(patient))
        await communicator.connect()
        layer = get_channel_layer()
        announce = {"type": "presence.changed", "communication_id": conversation.pk}
        await db(presence.touch)(conversation.pk, user=nurse, channel="tab-1", typing=True)
        await layer.group_send(f"communication.{conversation.pk}", announce)
        assert await communicator.receive_json_from() == {
            "type": "typing",
            "active": True,
            "html": "Nora is typing…\n",
        }
        await db(presence.touch)(conversation.pk, user=lead, channel="tab-2", typing=True)
        await layer.group_send(f"communication.{conversation.pk}", announce)
        assert (await communicator.receive_json_from())["html"] == "Lena and Nora are typing…\n"
        await db(presence.touch)(conversation.pk, user=nurse, channel="tab-1", typing=False)
        await db(presence.touch)(conversation.pk, user=lead, channel="tab-2", typing=False)
        await layer.group_send(f"communication.{conversation.pk}", announce)
        assert await communicator.receive_json_from() == {"type": "typing", "active": False, "html": ""}
        await communicator.disconnect()

    try:
        run(scenario)
    finally:  # the store is a cache shared by the whole test session
        presence.leave(conversation.pk, user_id=nurse.pk, channel="tab-1")
        presence.leave(conversation.pk, user_id=lead.pk, channel="tab-2")


def test_events_the_page_has_no_use_for_are_ignored(patient):
    conversation = ChatCommunicationFactory(patient=patient)

    async def scenario():
        communicator = socket(chat.make_chat_token(patient))
        await communicator.connect()
        await get_channel_layer().group_send(
            f"communication.{conversation.pk}",
            {"type": "presence.viewing", "communication_id": conversation.pk},
        )
        assert await communicator.receive_nothing()
        await say(communicator, "Still here")  # the consumer survived the unknown event
        assert (await communicator.receive_json_from())["type"] == "ack"
        await communicator.disconnect()

    run(scenario)


# --- Out of hours --------------------------------------------------------------------------------------------------


def test_outside_business_hours_the_first_message_gets_an_automatic_reply(patient):
    FeatureSetting.objects.filter(key=FeatureSetting.Key.CHAT_BUSINESS_HOURS).update(value=CLOSED_ALWAYS)

    async def scenario():
        communicator = socket(chat.make_chat_token(patient))
        await communicator.connect()
        await say(communicator, "Hello?")
        frame = await receive_until(communicator, "messages")
        assert "Hello?" in frame["html"]
        assert "Automatic reply" in frame["html"] and "is away right now" in frame["html"]
        await say(communicator, "Anyone?", client_id=OTHER_CLIENT_ID)
        frame = await receive_until(communicator, "messages")
        assert "Anyone?" in frame["html"] and "Automatic reply" not in frame["html"]
        await communicator.disconnect()

    run(scenario)
    replies = Message.objects.filter(is_auto_reply=True)
    assert replies.count() == 1
    reply = replies.get()
    assert (reply.direction, reply.author, reply.provider) == (
        Message.Direction.OUTBOUND,
        None,
        Message.Provider.CHAT,
    )
