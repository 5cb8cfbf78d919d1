"""The Care Portal WebSocket (/ws/portal/) with a raw client on the real ASGI stack: who may connect, which groups a
socket joins (the one access rule, re-read from the database at every decision), and that a user without access
to a patient hears nothing about them — even when they claim that patient's communication in their subscription."""

import json

import pytest

from adminportal.models import Region
from careportal.models import CareTeamMember
from inbox.events import LIVE_GROUP
from inbox.folders import Folder
from inbox.models import Communication
from inbox.services import ReplyContent, assign, send_reply, set_status
from tests.careportal.realtime_support import (
    connect,
    counts_shown,
    db,
    folder_url,
    fresh_layer_and_cache,  # noqa: F401 (autouse fixture)
    group_members,
    ids_in,
    portal_socket,
    receive_all,
    run,
    session_cookie,
    subscribe,
    subscription,
)
from tests.factories import (
    CommunicationFactory,
    MessageFactory,
    PatientFactory,
    UnrecognizedCommunicationFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def communication(patient, nurse):
    communication = CommunicationFactory(patient=patient, status=Communication.Status.OPEN)
    MessageFactory(communication=communication, body_text="I feel dizzy since this morning.")
    return communication


def directed(communication):
    return subscription(
        folder_url(Folder.CARE_TEAM_DIRECTED, f"c={communication.pk}"),
        rows=[communication.pk],
        open=communication.pk,
        last_message_id=communication.messages.latest("pk").pk,
    )


def test_anonymous_is_refused_with_4401(db):
    async def scenario():
        socket = portal_socket()
        connected, _ = await socket.connect()
        assert connected  # accepted, then closed with a code the page will not retry
        assert await socket.receive_output() == {"type": "websocket.close", "code": 4401}

    run(scenario)


def test_a_deactivated_user_is_refused(nurse):
    cookie = session_cookie(nurse)
    nurse.is_active = False
    nurse.save(update_fields=["is_active"])

    async def scenario():
        socket = portal_socket(cookie)
        assert (await socket.connect())[0]
        closed = await socket.receive_output()
        assert closed["type"] == "websocket.close" and closed["code"] in (4401, 4403)

    run(scenario)


def test_another_origin_is_refused(nurse):
    cookie = session_cookie(nurse)

    async def scenario():
        socket = portal_socket(cookie, origin="https://evil.example")
        connected, _ = await socket.connect()
        assert not connected

    run(scenario)


def test_groups_follow_the_access_rule(nurse, other_nurse, lead, patient, communication):
    """A tab joins only its open conversation's group, and only when the access rule lets its user see it; lists,
    counts and bells come through the process's hub, which joins the organisation's group and each local user's
    group once, however many tabs it serves."""
    elsewhere = CommunicationFactory(patient=PatientFactory())
    unknown = UnrecognizedCommunicationFactory(counterpart="+15550109999")
    cookies = {user.username: session_cookie(user) for user in (nurse, other_nurse, lead)}

    async def scenario():
        claim = subscription(
            folder_url(Folder.CARE_TEAM_DIRECTED, f"c={communication.pk}"),
            rows=[communication.pk, elsewhere.pk, unknown.pk],
            open=communication.pk,
        )
        nurse_socket = await connect(cookies["nurse"])
        await subscribe(nurse_socket, claim)
        own = f"communication.{communication.pk}"
        assert len(await group_members(own)) == 1
        assert await group_members(f"communication.{unknown.pk}") == set()  # claimed, not visible: not joined
        hub_channels = await group_members(LIVE_GROUP)
        assert len(hub_channels) == 1
        assert await group_members(f"user.{nurse.pk}") == hub_channels

        outsider_socket = await connect(cookies["other-nurse"])
        assert await subscribe(outsider_socket, claim) == []
        assert len(await group_members(own)) == 1  # still only the nurse

        lead_socket = await connect(cookies["lead"])
        await subscribe(
            lead_socket,
            subscription(
                folder_url(Folder.ALL_UNRECOGNIZED, f"c={unknown.pk}"), rows=[unknown.pk], open=unknown.pk
            ),
        )
        assert len(await group_members(f"communication.{unknown.pk}")) == 1  # Full Patient sees it
        assert await group_members(LIVE_GROUP) == hub_channels  # one hub for every tab of the process
        assert await group_members(f"user.{lead.pk}") == hub_channels

        for socket in (nurse_socket, outsider_socket, lead_socket):
            await socket.disconnect()
        assert await group_members(own) == set()
        assert await group_members(LIVE_GROUP) == set()
        assert await group_members(f"user.{nurse.pk}") == set()

    run(scenario)


def test_a_user_without_access_hears_nothing_about_the_patient(nurse, other_nurse, colleague, communication):
    """The raw client claims the communication (rows, open, address) — the server hears the claim and ignores it.
    Not even a count moves: the counts are recounted for every change, and sent only when they differ from those
    the page shows."""
    cookies = session_cookie(other_nurse), session_cookie(colleague)
    claim = directed(communication)
    payload = json.loads(claim)
    payload["counts"] = counts_shown(other_nurse, Folder.CARE_TEAM_DIRECTED)
    outsider_claim = json.dumps(payload)

    async def scenario():
        outsider = await connect(cookies[0])
        assert await subscribe(outsider, outsider_claim) == []
        await outsider.send_to(text_data=json.dumps({"type": "typing", "communication": communication.pk}))
        insider = await connect(cookies[1])
        await subscribe(insider, claim)
        await receive_all(insider, first=0.5)
        assert await receive_all(outsider, first=0.5) == ""

        await db(set_status)(user=nurse, communication=communication, status=Communication.Status.CLOSED)
        await db(assign)(user=nurse, communication=communication, assignee=colleague)
        reply = await db(send_reply)(
            user=nurse, communication=communication, content=ReplyContent(body="Please rest and drink water.")
        )
        heard = await receive_all(insider)
        assert f'id="message-{reply.pk}"' in heard  # the control: the change was published and pushed
        assert await receive_all(outsider, first=1.0) == ""
        await outsider.disconnect()
        await insider.disconnect()

    run(scenario)


def test_losing_access_removes_the_row_closes_the_conversation_and_stops_updates(
    nurse, colleague, communication
):
    cookie = session_cookie(colleague)
    claim = directed(communication)

    async def scenario():
        socket = await connect(cookie)
        await subscribe(socket, claim)
        await db(CareTeamMember.objects.filter(user=colleague).delete)()

        await db(set_status)(user=nurse, communication=communication, status=Communication.Status.CLOSED)
        removal = await receive_all(socket)
        assert f'<li id="row-{communication.pk}" hx-swap-oob="delete">' in removal
        assert 'hx-swap-oob="innerHTML:#conversation-pane"' in removal and "no longer available" in removal
        assert "Closed" not in removal and "dizzy" not in removal  # nothing about the change itself
        assert await group_members(f"communication.{communication.pk}") == set()

        await db(send_reply)(user=nurse, communication=communication, content=ReplyContent(body="Any news?"))
        assert await receive_all(socket, first=1.0) == ""
        await socket.disconnect()

    run(scenario)


def test_regions_narrowing_full_patient_take_effect_at_once(lead, nurse, communication):
    """The consumer re-reads the user for every decision: no role or regions memoised at connect time survive."""
    north = Region.objects.create(code="north", name="North")
    communication.patient.region = Region.objects.create(code="south", name="South")
    communication.patient.save(update_fields=["region"])
    cookie = session_cookie(lead)

    async def scenario():
        socket = await connect(cookie)
        claim = subscription(folder_url(Folder.ALL_DIRECTED), rows=[communication.pk], open=communication.pk)
        await subscribe(socket, claim)
        await db(set_status)(user=nurse, communication=communication, status=Communication.Status.CLOSED)
        assert ids_in(await receive_all(socket), "row-") == [communication.pk]

        await db(lead.regions.add)(north)  # Full Patient now covers the North only
        await db(set_status)(user=nurse, communication=communication, status=Communication.Status.OPEN)
        assert 'hx-swap-oob="delete"' in await receive_all(socket, quiet=1.5)  # with the trailing recount
        await db(set_status)(user=nurse, communication=communication, status=Communication.Status.CLOSED)
        assert await receive_all(socket, first=1.0) == ""
        await socket.disconnect()

    run(scenario)


def test_a_heartbeat_is_answered_and_junk_is_ignored(nurse):
    cookie = session_cookie(nurse)

    async def scenario():
        socket = await connect(cookie)
        for junk in ("not json", "[1, 2]", '{"type": "subscribe", "rows": "x,y", "open": "abc"}', "{}"):
            await socket.send_to(text_data=junk)
        await socket.send_to(text_data='{"type": "heartbeat"}')
        assert await socket.receive_from() == "<!-- pong -->"
        await socket.disconnect()

    run(scenario)


def test_the_redis_layer_survives_an_idle_poll():
    """channels-redis blocks 5 s in BZPOPMIN when nothing arrives; with redis-py 8's default 5 s read timeout the
    read failed and took the idle tab's consumer down. The project's layer configuration must wait quietly."""
    import asyncio

    from channels_redis.core import RedisChannelLayer

    from inbox_project import settings as project

    if not project.REDIS_URL:
        pytest.skip("REDIS_URL is unset: the project uses the in-memory layer")

    async def scenario():
        layer = RedisChannelLayer(**project.CHANNEL_LAYERS["default"]["CONFIG"])
        channel = await layer.new_channel()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(layer.receive(channel), timeout=layer.brpop_timeout + 1.5)
        await layer.close_pools()

    run(scenario)


def test_a_role_that_loses_the_inbox_stops_hearing_at_once(nurse, colleague, communication, published_config):
    """A new published configuration without Inbox in the role's menu: the Inbox partials answer 404 for her now,
    and so does the socket — the open conversation closes and nothing more arrives."""
    from designer.models import MenuItem
    from tests.factories import ConfigVersionFactory, RoleFactory

    cookie = session_cookie(colleague)
    claim = directed(communication)

    def publish_without_inbox():
        version, _ = published_config
        version.status = version.Status.ARCHIVED
        version.save(update_fields=["status"])
        RoleFactory(version=ConfigVersionFactory(), key="care-nurse", menu=[MenuItem.HOME])

    async def scenario():
        socket = await connect(cookie)
        await subscribe(socket, claim)
        await db(publish_without_inbox)()
        await db(set_status)(user=nurse, communication=communication, status=Communication.Status.CLOSED)
        html = await receive_all(socket)
        assert "no longer available" in html and "Closed" not in html
        await db(set_status)(user=nurse, communication=communication, status=Communication.Status.OPEN)
        assert await receive_all(socket, first=1.0) == ""
        assert await group_members(f"communication.{communication.pk}") == set()
        await socket.disconnect()

    run(scenario)
