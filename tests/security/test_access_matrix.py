"""The access matrix: every named URL pattern of the project (walked from the URL resolver, included URLconfs and all)
and every WebSocket route, called as an anonymous visitor, as a user without access to the patient and as a user
with access, against the expectations of ``tests/security/matrix_cases.py``. A URL name with no case fails
``test_every_url_name_has_a_case``: new URLs are covered the day they are added.

Anonymous → a sign-in redirect, 401 or 403 (hooks without a signature 403, patient links with an invalid token 404);
without access → 404/403 with none of the patient's name, phone or email in the body; with access → the view
answers. Patient-facing links carry signed tokens, never sequential ids."""

import re

import pytest
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from careportal.routing import websocket_urlpatterns
from tests.factories import UserFactory
from tests.security.conftest import client_for
from tests.security.matrix_cases import (
    ADMIN_LOGIN,
    GRANTED,
    LOGIN,
    PATIENT_DATA,
    WEBSOCKET_CASES,
    case_for,
)


def url_names() -> list[str]:
    """Every named pattern, with its namespace, found by walking the resolver (included URLconfs too)."""
    names: list[str] = []

    def walk(patterns, namespace):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = pattern.namespace
                walk(
                    pattern.url_patterns,
                    f"{namespace}:{inner}" if namespace and inner else inner or namespace,
                )
            elif isinstance(pattern, URLPattern) and pattern.name:
                names.append(f"{namespace}:{pattern.name}" if namespace else pattern.name)

    walk(get_resolver().url_patterns, None)
    return sorted(set(names))


NAMES = url_names()
pytestmark = pytest.mark.usefixtures("hooks_configured")


def test_every_url_name_has_a_case():
    missing = [name for name in NAMES if case_for(name) is None]
    assert not missing, f"add these URL names to tests/security/matrix_cases.py: {missing}"


def test_every_websocket_route_has_a_case():
    routes = {str(route.pattern) for route in websocket_urlpatterns}
    assert routes == set(WEBSOCKET_CASES), f"WebSocket routes without a case: {routes - set(WEBSOCKET_CASES)}"


def test_the_matrix_size_is_reported(capsys):
    cases = len(NAMES) * 3 + len(WEBSOCKET_CASES) * 3
    with capsys.disabled():
        print(
            f"\naccess matrix: {len(NAMES)} URL names + {len(WEBSOCKET_CASES)} WebSocket routes × 3 callers = {cases}"
        )
    assert len(NAMES) > 100


def call(client: Client, name: str, case, kwargs: dict, *, headers: dict | None = None):
    url = reverse(name, kwargs=kwargs)
    extra = dict(headers or {})
    data = extra.pop("data", None)
    content_type = extra.pop("content_type", None)
    if case.method == "post":
        if data is None:
            data = case.data(None) if case.data else {}
        if content_type:
            return client.post(url, data, content_type=content_type, **extra), url
        return client.post(url, data, **extra), url
    return client.get(url, **extra), url


def body_of(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode("utf-8", "replace")
    return response.content.decode("utf-8", "replace")


def check(expectation, response, who: str, name: str) -> None:
    status = response.status_code
    location = response.get("Location", "")
    where = f"{name} as {who}: {status} {location}"
    if expectation == LOGIN:
        assert status == 302 and location.startswith(reverse(settings.LOGIN_URL)), where
    elif expectation == ADMIN_LOGIN:
        assert status == 302 and location.startswith(reverse("admin:login")), where
    elif expectation == GRANTED:
        assert status < 500, where
        assert status not in (401, 403, 404), where
        assert not (
            status == 302 and location.startswith((reverse(settings.LOGIN_URL), reverse("admin:login")))
        ), where
    else:
        assert status in expectation, where


def assert_no_patient_data(response, who: str, name: str) -> None:
    body = body_of(response)
    leaked = [value for value in PATIENT_DATA if value.lower() in body.lower()]
    assert not leaked, f"{name} as {who} shows patient data {leaked}"


@pytest.mark.parametrize("name", NAMES)
def test_url_as_anonymous_outsider_and_member(name, people, world):
    case = case_for(name)
    assert case is not None, f"no case for {name}"

    anonymous_kwargs = (case.anonymous_kwargs or case.kwargs)(world)
    response, _url = call(Client(), name, case, anonymous_kwargs)
    check(case.anonymous, response, "anonymous", name)
    assert_no_patient_data(response, "anonymous", name)

    outsider_kwargs = (case.outsider_kwargs or case.kwargs)(world)
    response, _ = call(client_for(case.outsider_user, people), name, case, outsider_kwargs)
    check(case.outsider, response, case.outsider_user, name)
    assert_no_patient_data(response, case.outsider_user, name)

    member_headers = case.headers(world) if case.headers else None
    response, _ = call(
        client_for(case.member_user, people), name, case, case.kwargs(world), headers=member_headers
    )
    check(case.member, response, case.member_user, name)


# --- Patient-facing links are signed tokens, not ids --------------------------------------------------------------


def test_patient_facing_links_are_signed_tokens_not_sequential_ids(world):
    from django.core import signing

    from careportal.chat import read_chat_token
    from inbox.secure import read_token

    for token in (world.secure_token, world.chat_token):
        assert not token.isdigit() and len(token) >= 20
        assert str(world.patient.pk) != token and f"/{world.patient.pk}/" not in reverse(
            "chat:page", args=[token]
        )
        assert PATIENT_DATA[0] not in token and PATIENT_DATA[2] not in token
    assert read_chat_token(world.chat_token).patient_id == world.patient.pk
    read_token(world.secure_token)
    # A token with one character changed is refused; another patient's token names the other patient.
    tampered = world.chat_token[:-2] + ("A" if world.chat_token[-2] != "A" else "B") + world.chat_token[-1]
    with pytest.raises(Exception):  # ChatLinkInvalid or BadSignature
        read_chat_token(tampered)
    with pytest.raises(signing.BadSignature):
        read_token(world.secure_token[:-2] + "zz")
    for area in ("secure", "chat"):
        for pattern in get_resolver().url_patterns:
            if isinstance(pattern, URLResolver) and pattern.namespace == area:
                for route in pattern.url_patterns:
                    assert "<str:token>" in str(route.pattern), (
                        f"{area} route without a token: {route.pattern}"
                    )


def test_guessing_ids_reveals_nothing(people, world):
    """Enumerating staff URLs: an id that exists (another patient's) and one that does not answer the same."""
    client = Client()
    other_nurse = UserFactory(username="guesser", role="care-nurse")
    client.force_login(other_nurse)
    for name in ("careportal:communication", "careportal:patient_detail", "careportal:patient_panel"):
        existing = world.communication.pk if "communication" in name else world.patient.pk
        real = client.get(reverse(name, args=[existing]))
        missing = client.get(reverse(name, args=[existing + 10_000]))
        assert real.status_code == missing.status_code == 404, name
        assert_no_patient_data(real, "guesser", name)
        strip = lambda text: re.sub(r"\d+", "", text)  # noqa: E731
        assert strip(body_of(real)) == strip(body_of(missing)), name


# --- WebSocket routes -------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_portal_socket_refuses_anonymous_and_tells_an_outsider_nothing_about_the_patient(people, world):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from inbox.folders import Folder
    from inbox.services import set_status
    from tests.careportal.realtime_support import (
        connect,
        db,
        folder_url,
        portal_socket,
        receive_all,
        session_cookie,
        subscribe,
        subscription,
    )

    layer = get_channel_layer()
    if hasattr(layer, "groups"):
        layer.groups.clear()
        layer.channels.clear()
    cookies = {key: session_cookie(people[key]) for key in ("nurse", "outsider", "lead")}
    claim = subscription(
        folder_url(Folder.ASSIGNED_TO_ME, f"c={world.communication.pk}"),
        rows=[world.communication.pk],
        open=world.communication.pk,
    )

    async def scenario():
        anonymous = portal_socket()
        await anonymous.connect()
        assert (await anonymous.receive_output())["code"] == 4401

        outsider = portal_socket(cookies["outsider"])
        connected, _ = await outsider.connect()
        if connected:
            await outsider.send_to(text_data=claim)
            await outsider.receive_nothing(timeout=0.5)
        nurse = await connect(cookies["nurse"])
        await subscribe(nurse, claim)
        await db(set_status)(user=people["nurse"], communication=world.communication, status="closed")
        seen_by_nurse = await receive_all(nurse)
        assert PATIENT_DATA[0] in seen_by_nurse  # the positive control: the event did go out
        if connected:
            frames = []
            while not await outsider.receive_nothing(timeout=0.5):
                output = await outsider.receive_output()
                frames.append(str(output))
            leaked = [value for value in PATIENT_DATA if any(value in frame for frame in frames)]
            assert not leaked, f"the outsider's socket received {leaked}"
            await outsider.disconnect()
        await nurse.disconnect()

    async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
def test_chat_socket_refuses_a_forged_link_and_another_patients_link_hears_nothing(people, world):
    from asgiref.sync import async_to_sync
    from channels.testing import WebsocketCommunicator

    from inbox.services import ReplyContent, send_reply
    from inbox_project.asgi import application
    from tests.careportal.realtime_support import db

    def chat_socket(token):
        return WebsocketCommunicator(
            application,
            f"/ws/chat/{token}/",
            headers=[(b"origin", b"http://testserver"), (b"host", b"testserver")],
        )

    async def scenario():
        forged = chat_socket("forged-token")
        await forged.connect()
        assert (await forged.receive_output())["code"] == 4403

        other = chat_socket(world.other_chat_token)
        connected, _ = await other.connect()
        assert connected
        while not await other.receive_nothing(timeout=0.3):
            await other.receive_output()
        chat = await db(lambda: world.chat_attachment.message.communication)()
        await db(send_reply)(
            user=people["nurse"],
            communication=chat,
            content=ReplyContent(body=f"Hi {PATIENT_DATA[0]}"),
            close=False,
        )
        frames = []
        while not await other.receive_nothing(timeout=0.5):
            frames.append(str(await other.receive_output()))
        assert not [value for value in PATIENT_DATA if any(value in frame for frame in frames)]
        await other.disconnect()

    async_to_sync(scenario)()
