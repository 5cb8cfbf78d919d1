"""Idle session timeout (Feature Settings → Session idle timeout, ``adminportal.idle``): a signed-in user inactive for
longer than the configured minutes is signed out on their next request (audited, a clear message on the sign-in
page, ``HX-Redirect`` for htmx), the setting takes effect at once, and a WebSocket of an expired session is refused.
Time travel: ``adminportal.idle._now`` is a clock the tests move."""

import pytest
from django.conf import settings
from django.urls import reverse

from adminportal import idle
from adminportal.models import FeatureSetting
from adminportal.services import update_feature_setting
from inbox.models import AuditEvent

HOME = reverse("careportal:home")
LOGIN = reverse("login")
START = 1_800_000_000.0
MINUTE = 60


class Clock:
    def __init__(self):
        self.at = START

    def __call__(self) -> float:
        return self.at

    def advance(self, *, minutes: float = 0, seconds: float = 0) -> None:
        self.at += minutes * MINUTE + seconds


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(idle, "_now", clock)
    return clock


@pytest.fixture
def signed_in(client, nurse, clock):
    """The nurse, signed in through the sign-in page (as a browser would), at START."""
    response = client.post(LOGIN, {"username": "nurse", "password": "correct-horse-battery"})
    assert response.status_code == 302, "the factory sets this password"
    return client


def _stamp(client):
    return client.session.get(idle.LAST_ACTIVITY)


def _set_timeout(actor, *, minutes: int, is_enabled: bool = True) -> None:
    update_feature_setting(
        actor=actor,
        key=FeatureSetting.Key.SESSION_IDLE_TIMEOUT,
        is_enabled=is_enabled,
        value={"minutes": minutes},
    )


def _idle_sign_outs():
    return AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_OUT, detail__reason="idle_timeout")


def test_signing_in_starts_the_clock(signed_in):
    assert _stamp(signed_in) == int(START)


def test_activity_within_the_limit_keeps_the_session(signed_in, clock):
    for _ in range(4):  # 14 minutes apart, 56 minutes in all, with the default 15-minute limit
        clock.advance(minutes=14)
        assert signed_in.get(HOME).status_code == 200
    assert _stamp(signed_in) == int(clock.at)
    assert not _idle_sign_outs().exists()


def test_after_the_limit_the_next_request_signs_out(signed_in, clock, nurse):
    clock.advance(minutes=15, seconds=1)

    response = signed_in.get(reverse("careportal:inbox") + "?status=open")

    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next=%2Finbox%2F%3Fstatus%3Dopen"
    assert "_auth_user_id" not in signed_in.session
    event = _idle_sign_outs().get()
    assert event.actor == nurse and event.detail["idle_minutes"] == 15 and event.detail["idle_seconds"] == 901
    page = signed_in.get(response["Location"])
    assert "You were signed out after 15 minutes without activity." in page.content.decode()
    # Signed out for good: the next page asks for a sign-in again.
    assert signed_in.get(HOME)["Location"].startswith(LOGIN)


def test_exactly_at_the_limit_is_still_signed_in(signed_in, clock):
    clock.advance(minutes=15)
    assert signed_in.get(HOME).status_code == 200


def test_an_htmx_request_gets_hx_redirect_instead_of_a_partial(signed_in, clock):
    clock.advance(minutes=16)

    response = signed_in.get(
        reverse("careportal:inbox"),
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL="http://testserver/inbox/my/assigned/?status=open",
    )

    assert response.status_code == 200 and response.content == b""
    assert (
        response["HX-Redirect"]
        == f"{LOGIN}?next=http%3A%2F%2Ftestserver%2Finbox%2Fmy%2Fassigned%2F%3Fstatus%3Dopen"
    )
    assert _idle_sign_outs().count() == 1


def test_a_post_after_the_limit_changes_nothing_and_signs_out(signed_in, clock, nurse):
    clock.advance(minutes=16)
    response = signed_in.post(
        reverse("careportal:communication_new"), {"channel": "sms"}, HTTP_HX_REQUEST="true"
    )
    assert "HX-Redirect" in response
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.COMMUNICATION_CREATED).exists()


def test_a_next_to_another_site_is_dropped(signed_in, clock):
    clock.advance(minutes=16)
    response = signed_in.get(
        reverse("careportal:inbox"), HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="https://evil.example/x"
    )
    assert response["HX-Redirect"] == LOGIN


def test_the_stamp_is_rewritten_at_most_once_a_minute(signed_in, clock):
    clock.advance(seconds=59)
    response = signed_in.get(HOME)
    assert _stamp(signed_in) == int(START)
    assert settings.SESSION_COOKIE_NAME not in response.cookies  # the session was not saved
    clock.advance(seconds=2)
    signed_in.get(HOME)
    assert _stamp(signed_in) == int(START) + 61


def test_a_session_without_a_stamp_is_stamped_not_signed_out(client, nurse, clock):
    client.force_login(
        nurse
    )  # no sign-in request: no stamp yet (e.g. a session from before the timeout existed)
    assert client.get(HOME).status_code == 200
    assert _stamp(client) == int(START)


def test_a_shorter_timeout_takes_effect_at_once(signed_in, clock, administrator):
    _set_timeout(administrator, minutes=5)
    clock.advance(minutes=6)
    response = signed_in.get(HOME)
    assert response["Location"].startswith(LOGIN)
    assert _idle_sign_outs().get().detail["idle_minutes"] == 5
    page = signed_in.get(response["Location"]).content.decode()
    assert "You were signed out after 5 minutes without activity." in page


def test_a_longer_timeout_takes_effect_at_once(signed_in, clock, administrator):
    _set_timeout(administrator, minutes=60)
    clock.advance(minutes=59)
    assert signed_in.get(HOME).status_code == 200


def test_switched_off_nobody_is_signed_out(signed_in, clock, administrator):
    _set_timeout(administrator, minutes=15, is_enabled=False)
    clock.advance(minutes=600)
    assert signed_in.get(HOME).status_code == 200
    # Switching it back on does not sign out someone who was working all along (the stamp was kept).
    _set_timeout(administrator, minutes=15)
    clock.advance(minutes=10)
    assert signed_in.get(HOME).status_code == 200


def test_the_admin_portal_form_sets_the_timeout(client, administrator, clock, nurse):
    client.force_login(administrator)
    response = client.post(
        reverse("adminportal:setting_update", args=["session_idle_timeout"]),
        {"session_idle_timeout-is_enabled": "on", "session_idle_timeout-minutes": "2"},
    )
    assert response.status_code == 302
    assert idle.idle_limit_minutes() == 2


@pytest.mark.parametrize("value", [{}, {"minutes": "soon"}, {"minutes": 0}, {"minutes": 10**6}])
def test_a_malformed_stored_value_falls_back_to_safe_bounds(db, value):
    FeatureSetting.objects.create(key=FeatureSetting.Key.SESSION_IDLE_TIMEOUT, is_enabled=True, value=value)
    assert 1 <= idle.idle_limit_minutes() <= 1440


def test_anonymous_requests_are_untouched(client, db, clock):
    response = client.get(LOGIN)
    assert response.status_code == 200 and idle.LAST_ACTIVITY not in client.session


# --- WebSocket -----------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_socket_of_an_expired_session_is_refused(client, nurse, clock):
    from tests.careportal.realtime_support import db, portal_socket, run

    client.force_login(nurse)
    session = client.session
    session[idle.LAST_ACTIVITY] = int(START) - 16 * MINUTE
    session.save()
    expired_cookie = session.session_key

    fresh = type(client)()
    fresh.force_login(nurse)
    fresh.get(HOME)  # stamped now
    fresh_cookie = fresh.cookies[settings.SESSION_COOKIE_NAME].value

    async def scenario():
        refused = portal_socket(expired_cookie)
        assert (await refused.connect())[0]
        assert await refused.receive_output() == {"type": "websocket.close", "code": 4401}
        accepted = portal_socket(fresh_cookie)
        assert (await accepted.connect())[0]
        assert await accepted.receive_nothing(0.3)
        await accepted.disconnect()
        assert (
            await db(lambda: _idle_sign_outs().count())() == 0
        )  # refusing a socket signs nobody out by itself

    run(scenario)


# --- The status endpoint static/js/idle.js asks ---------------------------------------------------------------

STATUS = reverse("session_status")


def test_asking_how_long_is_left_is_not_activity(signed_in, clock):
    clock.advance(minutes=10)
    response = signed_in.get(STATUS)
    assert response.json() == {"remaining": 5 * MINUTE}
    assert _stamp(signed_in) == int(START)
    assert response["Cache-Control"].startswith("max-age=0")


def test_a_request_the_page_makes_by_itself_is_not_activity(signed_in, clock):
    clock.advance(minutes=10)
    response = signed_in.get(HOME, HTTP_HX_REQUEST="true", HTTP_X_IDLE_BACKGROUND="true")
    assert response.status_code in (200, 302)
    assert _stamp(signed_in) == int(START)
    assert signed_in.get(STATUS).json() == {"remaining": 5 * MINUTE}


def test_a_background_request_after_the_limit_still_signs_out(signed_in, clock):
    clock.advance(minutes=16)
    response = signed_in.get(HOME, HTTP_HX_REQUEST="true", HTTP_X_IDLE_BACKGROUND="true")
    assert response["HX-Redirect"].startswith(LOGIN)
    assert _idle_sign_outs().count() == 1


def test_a_change_marked_background_is_still_activity(signed_in, clock):
    clock.advance(minutes=10)
    signed_in.post(STATUS, HTTP_X_IDLE_BACKGROUND="true")
    assert _stamp(signed_in) == int(clock.at)


def test_stay_signed_in_is_activity(signed_in, clock):
    clock.advance(minutes=14, seconds=30)
    response = signed_in.post(STATUS)
    assert response.json() == {"remaining": 15 * MINUTE}
    assert _stamp(signed_in) == int(clock.at)


def test_asking_after_the_limit_signs_out(signed_in, clock):
    clock.advance(minutes=16)
    response = signed_in.get(STATUS, HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="http://testserver/inbox/")
    assert response["HX-Redirect"] == f"{LOGIN}?next=http%3A%2F%2Ftestserver%2Finbox%2F"
    assert _idle_sign_outs().count() == 1


def test_no_timeout_is_reported_as_null(signed_in, client, administrator):
    _set_timeout(administrator, minutes=15, is_enabled=False)
    assert signed_in.get(STATUS).json() == {"remaining": None}


def test_anonymous_visitors_learn_nothing(client, db):
    assert client.get(STATUS).json() == {"remaining": None}


def test_the_status_endpoint_refuses_other_methods(signed_in):
    assert signed_in.put(STATUS).status_code == 405


def test_the_setting_is_read_from_the_cache_not_once_per_request(signed_in, administrator):
    """Every signed-in request needs the timeout: after the first read it comes from the shared cache, and saving
    the setting drops the cached copy."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    signed_in.get(reverse("careportal:home"))
    with CaptureQueriesContext(connection) as ctx:
        signed_in.get(reverse("careportal:home"))
    assert not [q for q in ctx.captured_queries if "adminportal_featuresetting" in q["sql"]]
    _set_timeout(administrator, minutes=7)
    assert idle.idle_limit_minutes() == 7
