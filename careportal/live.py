"""What the Care Portal's WebSocket sends to one viewer (DESIGN.md: Real time).

A tab subscribes with what it shows — the page address (folder, filters), the rows on screen, the open
communication and its newest message. From that and the access rule come the groups the socket may join; on every
``communication.changed`` hint the viewer is re-read from the database (access can be lost, a new configuration can
be published at any moment) and the pieces of screen that changed are rendered with the same templates and context
builders as the HTTP partials, marked ``hx-swap-oob``. The reply box is never sent: a draft in it is never touched.

Everything here is synchronous (database and templates); ``careportal.consumers`` calls it from a worker thread.
A ``Subscription`` is per-connection bookkeeping of what the tab shows, never state another process needs.
"""

import dataclasses
import hashlib
from collections.abc import Mapping

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from designer.models import MenuItem
from designer.selectors import role_access
from inbox.errors import FolderNotAllowed
from inbox.events import (
    ALL_PATIENTS_GROUP,
    UNRECOGNIZED_GROUP,
    group_for_communication,
    group_for_patient,
    group_for_user,
)
from inbox.folders import Folder, InboxKind
from inbox.models import Communication, Message
from inbox.selectors import communication_for, conversation_messages, folder_communications, folders_for

from . import presence
from .access import communications_visible_to
from .models import CareTeamMember
from .views.inbox import (
    conversation_context,
    header_context,
    messages_context,
    nav_context,
    presence_context,
    row_context,
    rows_context,
)
from .views.inbox_state import ListState, state_from_url, time_zone

T = "careportal/inbox/"
MAX_ROWS = 1000  # rows a tab may declare (20 pages); more are ignored, the page still works by HTTP
UNRECOGNIZED_FOLDERS = {Folder.CARE_TEAM_UNRECOGNIZED, Folder.ALL_UNRECOGNIZED}
# Delivery statuses that may still change (a message in one of the others is final).
PENDING_DELIVERY = {Message.DeliveryStatus.QUEUED, Message.DeliveryStatus.SENT}
NO_CSRF = (
    ""  # pushed forms carry no token field: htmx sends X-CSRFToken from <body hx-headers> with every request
)


@dataclasses.dataclass(frozen=True)
class Subscription:
    """What one tab shows, as far as real time is concerned (every id has passed the access rule)."""

    state: ListState | None = None  # the Inbox list on the page; None off the Inbox page
    row_ids: frozenset[int] = frozenset()
    open_id: int | None = None
    open_is_unrecognized: bool = False
    last_message_id: int | None = None  # the newest message the tab shows in the open conversation
    pending: Mapping[int, str] = dataclasses.field(
        default_factory=dict
    )  # outbound id → delivery status shown
    shown: Mapping[str, str] = dataclasses.field(
        default_factory=dict
    )  # piece → digest of what was last pushed


@dataclasses.dataclass(frozen=True)
class Push:
    html: str
    subscription: Subscription
    close_code: int | None = None  # the user is gone or inactive: close the socket


def load_user(user_id: int):
    """The user as the database has them now: no memoised role or regions from an earlier decision."""
    return get_user_model().objects.filter(pk=user_id, is_active=True).first()


def has_inbox(user) -> bool:
    """The Inbox is in the user's published role menu (its HTTP partials answer 404 otherwise, so do its pushes)."""
    return MenuItem.INBOX in role_access(user).menu


def _visible(user, pk: int) -> Communication | None:
    """The communication as the Inbox shows it to ``user``, or None when they may not see it there."""
    if not has_inbox(user):
        return None
    try:
        return communication_for(user=user, pk=pk)
    except Communication.DoesNotExist:
        return None


def _ints(value, limit: int) -> list[int]:
    if isinstance(value, int | str):
        value = str(value).split(",")
    if not isinstance(value, list | tuple):
        return []
    out = []
    for item in value[:limit]:
        text = str(item).strip()
        if text.isdigit() and len(text) < 19:
            out.append(int(text))
    return out


def as_id(value) -> int | None:
    found = _ints(value, 1) if value not in (None, "") else []
    return found[0] if found else None


def subscribe(user, payload: dict, previous: Subscription | None = None) -> Subscription:
    """Read what the page says it shows, keeping only what the user may see.

    ``payload``: ``HEADERS["HX-Current-URL"]`` (the page address, sent by the htmx ws extension), ``rows`` (ids of
    the rows on screen), ``open`` (the open communication) and ``last_message_id`` (its newest message shown).
    """
    if not has_inbox(user):
        return Subscription()
    headers = payload.get("HEADERS") if isinstance(payload.get("HEADERS"), dict) else {}
    state = state_from_url(user, str(headers.get("HX-Current-URL", ""))[:4000])
    visible = communications_visible_to(user)
    row_ids = frozenset(
        visible.filter(pk__in=_ints(payload.get("rows"), MAX_ROWS)).values_list("pk", flat=True)
    )
    open_id = as_id(payload.get("open"))
    opened = visible.filter(pk=open_id).values_list("is_unrecognized", flat=True).first() if open_id else None
    if opened is None:
        open_id = None
    last_message_id = as_id(payload.get("last_message_id")) if open_id else None
    pending = {}
    if open_id:
        pending = dict(
            Message.objects.filter(
                communication_id=open_id,
                direction=Message.Direction.OUTBOUND,
                pk__lte=last_message_id or 0,
                delivery_status__in=PENDING_DELIVERY,
            ).values_list("pk", "delivery_status")
        )
    keep_shown = previous is not None and previous.open_id == open_id and previous.state == state
    return Subscription(
        state=state,
        row_ids=row_ids,
        open_id=open_id,
        open_is_unrecognized=bool(opened),
        last_message_id=last_message_id,
        pending=pending,
        shown=previous.shown if keep_shown else {},
    )


def allowed_groups(user, subscription: Subscription) -> set[str]:
    """The groups this tab may hear, by the one access rule.

    Always the user's own group. The open communication's group when it is visible. On an Inbox page, the groups
    that can change what the page shows: the patients of the (visible) rows on screen — or the communication's
    own group for an Unrecognized row —, the patients of the user's care teams (Primary Contact and Care Team
    folders and their counts), the Unrecognized group when the user has a folder listing other people's
    Unrecognized communications, and the All Patients group with Inbox Full Patient. Communications assigned to
    the user reach them through their own group.
    """
    groups = {group_for_user(user.pk)}
    if not has_inbox(user):
        return groups
    visible = communications_visible_to(user)
    if subscription.open_id and visible.filter(pk=subscription.open_id).exists():
        groups.add(group_for_communication(subscription.open_id))
    if subscription.state is None:
        return groups
    rows = visible.filter(pk__in=subscription.row_ids).values_list("pk", "patient_id", "is_unrecognized")
    for pk, patient_id, is_unrecognized in rows:
        groups.add(group_for_communication(pk) if is_unrecognized else group_for_patient(patient_id))
    folders = set(folders_for(user))
    if folders:
        team = CareTeamMember.objects.filter(user=user).values_list("patient_id", flat=True)
        groups.update(group_for_patient(patient_id) for patient_id in team)
    if folders & UNRECOGNIZED_FOLDERS:
        groups.add(UNRECOGNIZED_GROUP)
    if any(folder.inbox == InboxKind.ALL_PATIENTS for folder in folders):
        groups.add(ALL_PATIENTS_GROUP)
    return groups


# --- Rendering ----------------------------------------------------------------------------------------------


def _render(template: str, context: dict) -> str:
    return render_to_string(T + template, {"csrf_token": NO_CSRF, **context}, request=None).strip()


def _digest(html: str) -> str:
    return hashlib.blake2s(html.encode(), digest_size=12).hexdigest()


def _unless_shown(subscription: Subscription, piece: str, html: str, shown: dict) -> str:
    """Skip a piece identical to the one last pushed (a header re-sent on every delivery callback would only
    churn the page and steal focus)."""
    digest = _digest(html)
    if subscription.shown.get(piece) == digest:
        return ""
    shown[piece] = digest
    return html


def counts_html(user, subscription: Subscription, shown: dict | None = None) -> str:
    """The folder navigation with its counts, out of band (the same partial as ``inbox_counts``)."""
    if subscription.state is None:
        return ""
    context = {"state": subscription.state, **nav_context(user, subscription.state), "oob": True}
    html = _render("_folder_nav.html", context)
    return _unless_shown(subscription, "counts", html, shown if shown is not None else {})


def presence_html(user, subscription: Subscription, communication_id: int) -> str:
    """The "viewing / typing…" strip of the open conversation, when the viewer may see it."""
    communication = _visible(user, communication_id) if communication_id == subscription.open_id else None
    if communication is None:
        return ""
    return _render("_presence.html", {**presence_context(communication, user), "presence_oob": True})


def _row_parts(user, subscription: Subscription, communication: Communication, kind: str) -> tuple[str, set]:
    """The row for the viewer's folder and filters: moved to its place, replaced, inserted or removed."""
    state = subscription.state
    rows = set(subscription.row_ids)
    pk = communication.pk
    on_screen = pk in rows
    try:
        folder = folder_communications(user=user, folder=state.folder, filters=state.filters)
    except FolderNotAllowed:
        return "", rows
    if not folder.filter(pk=pk).exists():
        if not on_screen:
            return "", rows
        rows.discard(pk)
        empty = not rows and not folder.exists()
        context = {"remove": True, "row_id": pk}
        if empty:
            context.update(rows_context(user, state), empty_rows=True)
        return _render("_oob_row.html", context), rows
    context = {**row_context(communication, state), "row_id": pk}
    if on_screen and kind != "message":
        # Only a new message moves a row (the list is newest first); anything else changes it where it is.
        return _render("_oob_row.html", {**context, "place": "here"}), rows
    at = communication.last_message_at
    above = (
        folder.filter(Q(last_message_at__gt=at) | Q(last_message_at=at, pk__gt=pk))
        .order_by("last_message_at", "id")
        .values_list("pk", flat=True)
        .first()
    )
    if above is None:
        place = {"place": "top"}
    elif above in rows:
        place = {"place": "after", "after_id": above}
    elif on_screen:
        place = {"place": "here"}
    else:
        return "", rows  # it belongs further down than the tab has loaded: "Load more" brings it
    moving = on_screen and place["place"] != "here"
    html = _render("_oob_row.html", {**context, **place, "remove": moving, "clear_empty": not rows})
    rows.add(pk)
    return html, rows


def _conversation_parts(
    user, subscription: Subscription, communication: Communication, shown: dict
) -> tuple[str, dict]:
    """Header, status switch, new messages and delivery changes of the open conversation — never the reply box."""
    updates: dict = {}
    if subscription.open_is_unrecognized and not communication.is_unrecognized:
        # Linked meanwhile: the Link prompt becomes a reply box (there was no draft to keep).
        context = conversation_context(communication, user=user, state=subscription.state)
        updates = {
            "open_is_unrecognized": False,
            "last_message_id": context["last_message_id"],
            "pending": _pending_of(context["conversation"]),
        }
        shown.pop("header", None), shown.pop("status", None)
        return _render("_oob_conversation.html", context), updates
    parts = [
        _unless_shown(
            subscription, "header", _render("_conversation_header.html", header_context(communication, oob=True)),
            shown,
        ),
        _unless_shown(
            subscription, "status", _render("_reply_status.html", {"c": communication, "oob": True}), shown
        ),
    ]  # fmt: skip
    last_id = subscription.last_message_id
    newer = list(conversation_messages(communication).filter(pk__gt=last_id or 0))
    pending = dict(subscription.pending)
    redelivered = []
    if pending:
        now = dict(
            Message.objects.filter(pk__in=list(pending), communication=communication).values_list(
                "pk", "delivery_status"
            )
        )
        changed_ids = [pk for pk, status in now.items() if status != pending[pk]]
        if changed_ids:
            redelivered = list(conversation_messages(communication).filter(pk__in=changed_ids))
        pending = {pk: status for pk, status in now.items() if status in PENDING_DELIVERY}
    if newer and last_id is None:
        # The tab showed no messages (or the empty state): send the whole list.
        parts.append(_render("_messages.html", {**messages_context(communication), "messages_oob": True}))
    elif newer or redelivered:
        previous_day = _previous_day(communication, last_id)
        appended = []
        for message in newer:
            day = timezone.localtime(message.created_at).date()
            appended.append((message, day != previous_day))
            previous_day = day
        context = {
            "c": communication,
            "appended": appended,
            "redelivered": redelivered,
            "last_message_id": max((m.pk for m in newer), default=last_id),
        }
        parts.append(_render("_oob_messages.html", context))
    if newer:
        updates["last_message_id"] = max([m.pk for m in newer] + [last_id or 0])
        pending.update(_pending_of(newer))
    updates["pending"] = pending
    return "\n".join(p for p in parts if p), updates


def _pending_of(messages) -> dict[int, str]:
    return {
        m.pk: m.delivery_status
        for m in messages
        if m.direction == Message.Direction.OUTBOUND and m.delivery_status in PENDING_DELIVERY
    }


def _previous_day(communication: Communication, last_id: int | None):
    if not last_id:
        return None
    created = communication.messages.filter(pk=last_id).values_list("created_at", flat=True).first()
    return timezone.localtime(created).date() if created else None


def communication_changed(
    user_id: int, subscription: Subscription, communication_id: int, kind: str, *, with_counts: bool
) -> Push:
    """Everything the viewer's page should change after ``communication.changed`` — or nothing at all.

    A communication the viewer may not see produces no output, unless the page shows it (access was just lost):
    then its row goes, the open conversation closes and the counts refresh; the caller leaves the groups.
    """
    user = load_user(user_id)
    if user is None:
        return Push("", subscription, close_code=4403)
    with timezone.override(time_zone(user)):
        shown: dict = dict(subscription.shown)
        communication = _visible(user, communication_id)
        if communication is None:
            return _lost(user, subscription, communication_id, shown)
        parts, updates = [], {}
        if subscription.state is not None:
            row, rows = _row_parts(user, subscription, communication, kind)
            parts.append(row)
            updates["row_ids"] = frozenset(rows)
            if with_counts:
                parts.append(counts_html(user, subscription, shown))
        if communication_id == subscription.open_id:
            html, conversation_updates = _conversation_parts(user, subscription, communication, shown)
            parts.append(html)
            updates.update(conversation_updates)
        updated = dataclasses.replace(subscription, shown=shown, **updates)
        return Push("\n".join(p for p in parts if p), updated)


def _lost(user, subscription: Subscription, communication_id: int, shown: dict) -> Push:
    on_screen = communication_id in subscription.row_ids
    is_open = communication_id == subscription.open_id
    if not (on_screen or is_open):
        return Push("", subscription)
    parts, updates = [], {}
    if on_screen:
        parts.append(_render("_oob_row.html", {"remove": True, "row_id": communication_id}))
        updates["row_ids"] = subscription.row_ids - {communication_id}
    if is_open:
        parts.append(_render("_oob_conversation.html", {"gone": True}))
        updates.update(open_id=None, last_message_id=None, pending={}, open_is_unrecognized=False)
        shown.pop("header", None), shown.pop("status", None)
    updated = dataclasses.replace(subscription, shown=shown, **updates)
    parts.append(counts_html(user, updated, shown))
    return Push("\n".join(p for p in parts if p), updated)


def catch_up(user_id: int, subscription: Subscription) -> Push:
    """Right after a (re)subscription: the open conversation as it is now (messages that arrived between the page
    being rendered and the socket listening, header and status switch) and its presence strip."""
    user = load_user(user_id)
    if user is None:
        return Push("", subscription, close_code=4403)
    if subscription.open_id is None:
        return Push("", subscription)
    with timezone.override(time_zone(user)):
        shown = dict(subscription.shown)
        communication = _visible(user, subscription.open_id)
        if communication is None:
            return _lost(user, subscription, subscription.open_id, shown)
        html, updates = _conversation_parts(user, subscription, communication, shown)
        updated = dataclasses.replace(subscription, shown=shown, **updates)
        parts = (html, presence_html(user, updated, communication.pk))
        return Push("\n".join(p for p in parts if p), updated)


def presence_changed(user_id: int, subscription: Subscription, communication_id: int) -> Push:
    user = load_user(user_id)
    if user is None:
        return Push("", subscription, close_code=4403)
    with timezone.override(time_zone(user)):
        return Push(presence_html(user, subscription, communication_id), subscription)


def touch_presence(user_id: int, communication_id: int, *, channel: str, typing: bool | None) -> bool:
    """Record that the tab shows (or types in) the communication; whether the people there changed."""
    user = load_user(user_id)
    if user is None:
        return False
    presence.touch(communication_id, user=user, channel=channel, typing=typing)
    return presence.changed(communication_id)


def leave_presence(user_id: int, communication_id: int, *, channel: str) -> bool:
    presence.leave(communication_id, user_id=user_id, channel=channel)
    return presence.changed(communication_id)


def presence_expired(communication_id: int) -> bool:
    """Whether entries expired (a tab went silent, typing stopped) since the last announcement."""
    return presence.changed(communication_id)
