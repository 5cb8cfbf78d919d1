"""WebSocket messages holding text the database cannot store (a NUL, a lone surrogate escape) change nothing and
leave the socket usable: the patient chat answers its error frame; the portal socket, whose protocol has no error
frame, drops the message with a logged warning."""

import json

import pytest
from channels.testing import WebsocketCommunicator

from careportal import chat, presence
from inbox.events import group_for_communication
from inbox.folders import Folder
from inbox.models import RawInbound
from inbox_project.unstorable import NUL_MESSAGE, SURROGATE_MESSAGE
from tests.careportal.realtime_support import (
    connect,
    db,
    folder_url,
    fresh_layer_and_cache,  # noqa: F401 (autouse fixture)
    group_members,
    run,
    session_cookie,
    subscribe,
    subscription,
)
from tests.factories import CommunicationFactory, MessageFactory, PatientContactMethodFactory

pytestmark = pytest.mark.django_db(transaction=True)
CLIENT_ID = "5f0e8a43-3c43-4d8e-9f3d-4a3c1b1e2a10"
UNSTORABLE = [
    pytest.param("\x00", NUL_MESSAGE, id="nul"),
    pytest.param("\ud800", SURROGATE_MESSAGE, id="surrogate"),
]


# --- The portal socket: subscriptions, typing ------------------------------------------------------------------


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


def spoiled(claim: str, bad: str, *, where: str) -> str:
    payload = json.loads(claim)
    if where == "key":
        payload[f"extra{bad}"] = "1"
    else:
        payload["HEADERS"]["HX-Current-URL"] += bad
    return json.dumps(payload)


@pytest.mark.parametrize("bad, _", UNSTORABLE)
@pytest.mark.parametrize("where", ["value", "key"])
def test_a_portal_subscription_with_unstorable_text_is_dropped_and_the_socket_stays_usable(
    nurse, communication, claim, caplog, bad, _, where
):
    cookie = session_cookie(nurse)
    group = group_for_communication(communication.pk)

    async def scenario():
        socket = await connect(cookie)
        assert (
            await subscribe(socket, spoiled(claim, bad, where=where)) == []
        )  # answered nothing but the pong
        assert await group_members(group) == set()
        assert await db(presence.present)(communication.pk) == []
        assert await subscribe(socket, claim)  # the same socket still works: the conversation's catch-up
        assert len(await group_members(group)) == 1
        await socket.disconnect()

    run(scenario)
    assert "unstorable text" in caplog.text


@pytest.mark.parametrize("bad, _", UNSTORABLE)
def test_typing_with_unstorable_text_changes_no_presence(nurse, communication, claim, bad, _):
    cookie = session_cookie(nurse)

    def typing_now():
        return [p.is_typing for p in presence.present(communication.pk)]

    async def scenario():
        socket = await connect(cookie)
        await subscribe(socket, claim)
        assert await db(typing_now)() == [False]
        await socket.send_to(
            text_data=json.dumps({"type": "typing", "communication": communication.pk, "note": f"x{bad}"})
        )
        await socket.send_to(text_data='{"type": "heartbeat"}')  # answered in order: the typing was handled
        assert await socket.receive_from(timeout=5) == "<!-- pong -->"
        assert await db(typing_now)() == [False]
        await socket.send_to(text_data=json.dumps({"type": "typing", "communication": communication.pk}))
        await socket.send_to(text_data='{"type": "heartbeat"}')
        while await socket.receive_from(timeout=5) != "<!-- pong -->":
            pass
        assert await db(typing_now)() == [True]
        await socket.disconnect()

    run(scenario)


# --- The patient's live chat ------------------------------------------------------------------------------------


def chat_socket(token):
    from inbox_project.asgi import application

    return WebsocketCommunicator(
        application,
        f"/ws/chat/{token}/",
        headers=[(b"origin", b"http://testserver"), (b"host", b"testserver")],
    )


@pytest.mark.parametrize("bad, message", UNSTORABLE)
@pytest.mark.parametrize("field", ["text", "client_id", "key"])
def test_a_chat_message_with_unstorable_text_gets_an_error_and_stores_nothing(patient, bad, message, field):
    PatientContactMethodFactory(patient=patient, value="maria.lopez@mail.example", is_primary=True)
    frame = {"type": "message", "client_id": CLIENT_ID, "text": "My knee is swollen again."}
    if field == "key":
        frame[f"note{bad}"] = "x"
    else:
        frame[field] += bad

    async def scenario():
        socket = chat_socket(chat.make_chat_token(patient))
        assert (await socket.connect())[0]
        await socket.send_json_to(frame)
        error = await socket.receive_json_from(timeout=5)
        assert error == {"type": "error", "client_id": frame["client_id"], "text": message}
        assert not await db(RawInbound.objects.exists)()
        # The socket stays usable: the same message without it is stored and acknowledged.
        await socket.send_json_to(
            {"type": "message", "client_id": CLIENT_ID, "text": "My knee is swollen again."}
        )
        assert (await socket.receive_json_from(timeout=5))["type"] == "ack"
        await socket.disconnect()

    run(scenario)
    assert RawInbound.objects.get().payload["text"] == "My knee is swollen again."
