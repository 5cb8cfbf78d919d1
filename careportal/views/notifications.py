"""The notification bell (DESIGN.md: Notifications): unread count and latest notifications, mark read, mark all
read, and the one route a click takes — into the Inbox or the patient's communication center, per Admin Portal →
Feature Settings → Inbox Notifications.

The bell is one set of partials (``careportal/notifications/``) served here over HTTP and pushed over the
WebSocket (``bell_push``) with the same context builder, so the two never drift."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from adminportal.models import FeatureSetting
from designer.models import MenuItem
from designer.selectors import role_access
from inbox import notifications
from inbox.models import Communication, Notification
from inbox.selectors import communication_for

from .common import require_menu
from .inbox_state import deep_link, is_partial, time_zone

T = "careportal/notifications/"
PAGE_SIZE = 50


def bell_context(user, *, oob: bool = False, limit: int = notifications.LATEST) -> dict:
    """What the bell shows: the unread count and the latest notifications about communications the user can see."""
    items = list(notifications.notifications_for(user)[:limit])
    return {"unread": notifications.unread_count(user), "items": items, "oob": oob, "now": timezone.now()}


def bell_push(user_id: int, notification_id: int | None) -> str:
    """The bell re-rendered for the socket's own user (count and list, out of band) — and, for a new notification the
    user may see, the element ``static/js/notifications.js`` turns into a desktop notification. Empty when the user is
    gone, inactive or has no Inbox."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None or not role_access(user).has_inbox:
        return ""
    with timezone.override(time_zone(user)):
        context = {**bell_context(user, oob=True), "csrf_token": ""}
        if notification_id is not None:
            context["alert"] = notifications.notifications_for(user).filter(pk=notification_id).first()
        return render_to_string(T + "_bell_push.html", context).strip()


def notification_view(view):
    """Signed in (``login_required`` wraps this), the Inbox in the published role menu (404 otherwise, as every Inbox
    page), times in the viewer's time zone."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        require_menu(request.user, MenuItem.INBOX)
        with timezone.override(time_zone(request.user)):
            return view(request, *args, **kwargs)

    return wrapper


def _own(request, pk: int) -> Notification:
    """One of the requester's notifications, about a communication they can still see; 404 otherwise (someone else's
    notification looks exactly like one that does not exist)."""
    try:
        return notifications.notifications_for(request.user).get(pk=pk)
    except Notification.DoesNotExist:
        raise Http404("No such notification.") from None


def _bell_answer(request):
    if not is_partial(request):
        return redirect("careportal:notifications")
    return render(request, T + "_bell_response.html", bell_context(request.user))


@login_required
@require_GET
@notification_view
def notification_list(request):
    """HTMX: the bell's list with the count out of band (what the dropdown and a reconnecting page fetch).
    Otherwise the full page of the latest notifications."""
    if is_partial(request):
        return render(request, T + "_bell_response.html", bell_context(request.user))
    context = bell_context(request.user, limit=PAGE_SIZE)
    return render(request, T + "list.html", {**context, "active_nav": "notifications"})


@login_required
@require_POST
@notification_view
def notification_read(request, pk: int):
    notifications.mark_read(user=request.user, notification=_own(request, pk))
    return _bell_answer(request)


@login_required
@require_POST
@notification_view
def notification_read_all(request):
    notifications.mark_all_read(user=request.user)
    return _bell_answer(request)


@login_required
@require_GET
@notification_view
def notification_open(request, pk: int):
    """A click on a notification: marked read, then — Inbox Notifications on — the communication in the Inbox;
    off — the patient's communication center. An Unrecognized communication has no patient (and a role without the
    Patients page has no communication center): those open in the Inbox either way."""
    notification = _own(request, pk)
    try:
        communication = communication_for(user=request.user, pk=notification.communication_id)
    except Communication.DoesNotExist:
        raise Http404("No such notification.") from None
    notifications.mark_read(user=request.user, notification=notification)
    to_inbox = (
        FeatureSetting.is_on(FeatureSetting.Key.INBOX_NOTIFICATIONS)
        or communication.patient_id is None
        or MenuItem.PATIENTS not in role_access(request.user).menu
    )
    if to_inbox:
        return redirect(deep_link(request.user, communication))
    return redirect(reverse("careportal:patient_communications", args=[communication.patient_id]))
