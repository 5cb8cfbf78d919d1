"""Idle session timeout (Admin Portal → Feature Settings → Session idle timeout): a signed-in user inactive for longer
than the configured minutes is signed out on their next request, and their WebSockets are refused.

Activity is a request of the signed-in user; WebSocket traffic (pushes, heartbeats) is not, and neither is a request
the page makes by itself (``BACKGROUND_HEADER``: a row or count refreshed after a push, the bell loading), so a screen
left open on a busy inbox does not keep a session alive. The time of the last activity lives in the session and is
rewritten at most once a minute, so ordinary requests do not write the session.
"""

import math

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.core.cache import cache
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import resolve_url
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from .models import FeatureSetting

LAST_ACTIVITY = "idle_last_activity"  # session key: epoch seconds of the last request counted as activity
TOUCH_EVERY = 60  # seconds between rewrites of the stamp
KEY = FeatureSetting.Key.SESSION_IDLE_TIMEOUT
MIN_MINUTES, MAX_MINUTES = 1, 1440
# Sent by static/js/idle.js on htmx requests no user event caused. A client can only make its own session end
# sooner by sending it, so it needs no proof.
BACKGROUND_HEADER = "X-Idle-Background"


def _now() -> float:
    return timezone.now().timestamp()


CACHE_KEY = f"feature-setting:{KEY}"
CACHE_SECONDS = 60


def _setting() -> tuple[bool, dict]:
    """(is_enabled, value) of the setting, through the shared cache: every signed-in request needs it, so it is not
    a query per request. Saving the setting drops the cached copy (``adminportal.signals``), so a change takes
    effect on the next request in every process sharing the cache (Redis in production)."""
    row = cache.get(CACHE_KEY)
    if row is None:
        found = FeatureSetting.objects.filter(key=KEY).values_list("is_enabled", "value").first()
        row = tuple(found) if found is not None else FeatureSetting.DEFAULTS[KEY]
        cache.set(CACHE_KEY, row, CACHE_SECONDS)
    return row


def forget_setting() -> None:
    cache.delete(CACHE_KEY)


def idle_limit_minutes() -> int | None:
    """The configured timeout in minutes; ``None`` when the setting is off."""
    is_enabled, value = _setting()
    if not is_enabled:
        return None
    default = FeatureSetting.DEFAULTS[KEY][1]["minutes"]
    try:
        minutes = int(value.get("minutes", default))
    except (AttributeError, TypeError, ValueError):
        minutes = default
    return min(max(minutes, MIN_MINUTES), MAX_MINUTES)


def _idle_seconds(session, at: float) -> float | None:
    stamp = session.get(LAST_ACTIVITY)
    return at - stamp if isinstance(stamp, int | float) else None


def session_is_expired(session) -> bool:
    """True when ``session`` has been idle longer than the configured timeout (used by the WebSocket consumer)."""
    if session is None:
        return False
    minutes = idle_limit_minutes()
    idle = _idle_seconds(session, _now())
    return minutes is not None and idle is not None and idle > minutes * 60


def _is_status_check(request) -> bool:
    try:
        return request.method == "GET" and request.path_info == reverse("session_status")
    except NoReverseMatch:
        return False


def _is_activity(request) -> bool:
    """Whether the request shows someone at the screen: not the page asking how long is left, nor refreshing itself
    in the background. Only reads count as background; anything that changes data is activity."""
    if _is_status_check(request):
        return False
    return not (request.method == "GET" and request.headers.get(BACKGROUND_HEADER) == "true")


def _login_url(request) -> str:
    """The sign-in page, with ``next`` pointing back at the page the user was on when it is safe to."""
    if request.headers.get("HX-Request") == "true":
        target = request.headers.get("HX-Current-URL", "")
    elif request.method == "GET":
        target = request.get_full_path()
    else:
        target = request.headers.get("Referer", "")
    url = resolve_url(settings.LOGIN_URL)
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return f"{url}?{urlencode({'next': target})}" if target and safe else url


class IdleTimeoutMiddleware:
    """Signs out a session idle for longer than the Session idle timeout, with a message on the sign-in page; an
    htmx request gets ``HX-Redirect`` (the whole page goes to the sign-in page) instead of a partial."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            expired = self._check(request)
            if expired is not None:
                return expired
        # A fresh sign-in starts the clock in ``adminportal.signals.start_the_idle_clock``.
        return self.get_response(request)

    def _check(self, request) -> HttpResponse | None:
        at = _now()
        idle = _idle_seconds(request.session, at)
        minutes = idle_limit_minutes()
        request.idle_limit_minutes = minutes
        if idle is not None and minutes is not None and idle > minutes * 60:
            return self._sign_out(request, minutes, idle)
        if not _is_activity(request):
            return None
        # Stamped even while the setting is off, so switching it on does not sign out people who are working.
        if idle is None or idle >= TOUCH_EVERY:
            request.session[LAST_ACTIVITY] = math.floor(at)
        return None

    def _sign_out(self, request, minutes: int, idle: float) -> HttpResponse:
        url = _login_url(request)
        # ``logout`` sends ``user_logged_out``: the audit receiver records the sign-out with this reason.
        request.sign_out_detail = {
            "reason": "idle_timeout",
            "idle_minutes": minutes,
            "idle_seconds": int(idle),
        }
        logout(request)
        plural = "" if minutes == 1 else "s"
        messages.info(
            request,
            f"You were signed out after {minutes} minute{plural} without activity. Sign in to continue.",
        )
        if request.headers.get("HX-Request") == "true":
            response = HttpResponse(status=200)
            response["HX-Redirect"] = url
            return response
        return HttpResponseRedirect(url)


@never_cache
@require_http_methods(["GET", "POST"])
def session_status(request):
    """``{"remaining": seconds}`` until the idle timeout signs this session out, ``null`` when it never will (the
    setting is off, or nobody is signed in). GET only asks; POST ("Stay signed in") counts as activity — the
    middleware has already stamped it. An expired session never gets here: the middleware signed it out."""
    minutes = getattr(request, "idle_limit_minutes", None)
    if not request.user.is_authenticated or minutes is None:
        return JsonResponse({"remaining": None})
    idle = _idle_seconds(request.session, _now()) or 0
    return JsonResponse({"remaining": max(0, math.floor(minutes * 60 - idle))})
