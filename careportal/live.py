"""What the Care Portal's WebSocket sends (DESIGN.md: Real time).

A tab subscribes with what it shows — the page address (folder, filters), the rows on screen, the open
communication and its newest message, and when its list was read. Lists are rendered once per kind of viewer
(``list_key``: the same user on the same folder and filters) for a batch of changed communications and fanned out
by the process's hub (``careportal.hub``); the open conversation, whose state is the tab's own, is rendered per
tab. Every piece is rendered with the same templates and context builders as the HTTP partials, marked
``hx-swap-oob``, after re-reading the user from the database (access can be lost, a new configuration published at
any moment). The reply box is never sent: a draft in it is never touched.

Everything here is synchronous (database and templates); the hub and ``careportal.consumers`` call it from
worker threads. A ``Subscription`` is per-connection bookkeeping of what the tab shows, never state another
process needs.
"""

import dataclasses
import datetime
import hashlib
import time
from collections.abc import Mapping

from django.contrib.auth import get_user_model
from django.template.loader import render_to_string
from django.utils import timezone

from designer.models import MenuItem
from designer.selectors import role_access
from inbox.errors import FolderNotAllowed
from inbox.events import group_for_communication
from inbox.models import Communication, Message
from inbox.selectors import (
    ROW_FIELDS,
    ROW_RELATED,
    communication_for,
    conversation_messages,
    folder_communications,
    with_candidate_counts,
)

from . import presence
from .access import communications_visible_to
from .templatetags.portal import replying_marker
from .views.inbox import (
    conversation_context,
    header_context,
    messages_context,
    nav_context,
    presence_context,
    rows_context,
)
from .views.inbox_state import ListState, state_from_url, time_zone

T = "careportal/inbox/"
MAX_ROWS = 1000  # rows a tab may declare (20 pages); more are ignored, the page still works by HTTP
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
    listed_at: float | None = None  # when the server read the list the tab shows (epoch seconds)
    counts_key: str | None = None  # the fingerprint of the counts the page shows (``views.inbox.counts_key``)
    drafting: bool = False  # the open conversation's reply box holds a draft (the tab is replying in it)


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


def _epoch(value) -> float | None:
    """A time the page read from the server (``data-listed-at``), if it is one: not in the future, not older than
    a day (anything else is ignored, never trusted)."""
    try:
        stamp = float(str(value)[:32])
    except ValueError:
        return None
    now = time.time()
    return stamp if now - 86_400 < stamp <= now + 60 else None


def _key(value) -> str | None:
    text = str(value or "")
    return text if 0 < len(text) <= 32 and text.isalnum() else None


@dataclasses.dataclass(frozen=True)
class Claim:
    """What a page says it shows, parsed, before the access rule has checked any of it."""

    state: ListState | None
    rows: tuple[int, ...]
    open_id: int | None
    last_message_id: int | None
    listed_at: float | None
    counts_key: str | None
    drafting: bool = False


def _claim(user, payload: dict) -> Claim | None:
    """``payload``: ``HEADERS["HX-Current-URL"]`` (the page address, sent by the htmx ws extension), ``rows`` (ids of
    the rows on screen), ``open`` (the open communication), ``last_message_id`` (its newest message shown),
    ``listed_at`` (when the server read the list on screen: changes since then are brought to the tab) and
    ``counts`` (the fingerprint of the counts shown) and ``drafting`` ("1": the open conversation's reply box holds
    a draft, so a reconnected tab is still replying). None without the Inbox."""
    if not has_inbox(user):
        return None
    headers = payload.get("HEADERS") if isinstance(payload.get("HEADERS"), dict) else {}
    state = state_from_url(user, str(headers.get("HX-Current-URL", ""))[:4000])
    if state is not None and state.searches_everywhere:
        state = None  # a search of all inboxes is read on request: no list pushes (docs/decisions.md)
    open_id = as_id(payload.get("open"))
    return Claim(
        state=state,
        rows=tuple(_ints(payload.get("rows"), MAX_ROWS)),
        open_id=open_id,
        last_message_id=as_id(payload.get("last_message_id")) if open_id else None,
        listed_at=_epoch(payload.get("listed_at")) if state is not None else None,
        counts_key=_key(payload.get("counts")),
        drafting=bool(open_id) and str(payload.get("drafting", "")) == "1",
    )


def _subscription(
    claim: Claim | None, visible: Mapping[int, bool], previous: Subscription | None
) -> Subscription:
    """The claim, keeping only what the user may see (``visible``: id → is Unrecognized, for the claimed ids the
    access rule lets them see)."""
    if claim is None:
        return Subscription()
    open_id = claim.open_id if claim.open_id in visible else None
    pending = {}
    if open_id:
        pending = dict(
            Message.objects.filter(
                communication_id=open_id,
                direction=Message.Direction.OUTBOUND,
                pk__lte=claim.last_message_id or 0,
                delivery_status__in=PENDING_DELIVERY,
            ).values_list("pk", "delivery_status")
        )
    state = claim.state
    keep_shown = previous is not None and previous.open_id == open_id and previous.state == state
    return Subscription(
        state=state,
        row_ids=frozenset(pk for pk in claim.rows if pk in visible),
        open_id=open_id,
        open_is_unrecognized=bool(visible.get(open_id)) if open_id else False,
        last_message_id=claim.last_message_id if open_id else None,
        pending=pending,
        shown=previous.shown if keep_shown else {},
        listed_at=claim.listed_at,
        counts_key=claim.counts_key,
        drafting=claim.drafting if open_id else False,
    )


def _visible_among(user, claims) -> dict[int, bool]:
    """Of every id the claims name (rows and open conversations), those the user may see: id → is Unrecognized.
    One query for all of one user's claims."""
    ids = {pk for claim in claims if claim is not None for pk in (*claim.rows, claim.open_id) if pk}
    if not ids:
        return {}
    return dict(communications_visible_to(user).filter(pk__in=ids).values_list("pk", "is_unrecognized"))


@dataclasses.dataclass(frozen=True)
class Subscribed:
    """What a (re)subscription means for the socket: what the tab shows, the groups it may hear, and what its open
    conversation needs now."""

    subscription: Subscription
    groups: set[str]
    push: "Push"


def subscribed_together(requests: list[tuple[int, dict, Subscription]]) -> list[Subscribed | None]:
    """(Re)subscriptions that arrived together — ``(user id, payload, previous subscription)`` each, in order —
    handled together: every user read once (None for one gone or inactive), each user's claimed ids checked by the
    access rule in one query, then each tab's groups and its open conversation's catch-up. A burst of tabs (a
    reconnect after a deploy) costs a few queries per user, not per tab."""
    users = {
        user.pk: user
        for user in get_user_model().objects.filter(
            pk__in={user_id for user_id, _, _ in requests}, is_active=True
        )
    }
    claims = [
        _claim(users[user_id], payload) if user_id in users else None for user_id, payload, _ in requests
    ]
    visible = {
        user_id: _visible_among(
            user, [c for (uid, _, _), c in zip(requests, claims, strict=True) if uid == user_id]
        )
        for user_id, user in users.items()
    }
    results: list[Subscribed | None] = []
    for (user_id, _, previous), claim in zip(requests, claims, strict=True):
        user = users.get(user_id)
        if user is None:
            results.append(None)
            continue
        subscription = _subscription(claim, visible[user_id], previous)
        # Its open conversation passed the access rule just now (``visible``): its group may be heard.
        groups = {group_for_communication(subscription.open_id)} if subscription.open_id else set()
        results.append(Subscribed(subscription, groups, _catch_up(user, subscription)))
    return results


def allowed_groups(user, subscription: Subscription) -> set[str]:
    """The groups this tab joins itself, by the one access rule: the open communication's (presence and typing
    of the people in it), when the user may see it. List rows, counts and the bell reach the tab through its
    process's hub (``careportal.hub``), which hears every change once and renders per kind of viewer."""
    if not has_inbox(user) or not subscription.open_id:
        return set()
    if communications_visible_to(user).filter(pk=subscription.open_id).exists():
        return {group_for_communication(subscription.open_id)}
    return set()


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


def presence_html(user, subscription: Subscription, communication_id: int) -> str:
    """The "viewing / typing…" strip of the open conversation, when the viewer may see it."""
    communication = _visible(user, communication_id) if communication_id == subscription.open_id else None
    if communication is None:
        return ""
    return _render("_presence.html", {**presence_context(communication, user), "presence_oob": True})


# --- Lists: rendered once per kind of viewer ------------------------------------------------------------------


def list_key(user_id: int, state: ListState) -> tuple:
    """Tabs that see the same list: the same user (their access scope, role, time zone) on the same folder and
    filters. Which conversation a tab has open changes one row's look only (``ListChanges.selected``)."""
    return (user_id, dataclasses.replace(state, open_id=None))


@dataclasses.dataclass(frozen=True)
class ListChanges:
    """What some changed communications mean for one kind of viewer's list, rendered once for all its tabs."""

    rows: Mapping[int, str] = dataclasses.field(default_factory=dict)  # id → the row, to put at its place
    # The same rows as the tabs that have them open show them (selected).
    selected: Mapping[int, str] = dataclasses.field(default_factory=dict)
    gone: frozenset[int] = frozenset()  # changed ids that are not (or no longer) in the list
    empty: str = ""  # the list's empty state, when something left and nothing is left in the folder
    counts: str = ""  # the folder navigation with fresh counts, when asked for
    counts_key: str = ""  # their fingerprint (``views.inbox.counts_key``)
    close_code: int | None = None  # the user is gone or inactive: close their sockets


def list_changes(
    user_id: int, state: ListState, ids, *, open_ids=frozenset(), with_counts: bool = False
) -> ListChanges:
    """The rows of ``ids`` as the list (``state``: folder and filters, newest first) shows them now, by the
    same selector as the page: each one that belongs is sent whole and the page puts it at its place (by its
    ``data-sort`` key, ``static/js/realtime.js``), so a row never waits for its neighbour to arrive; the others
    are gone from this list. The user is re-read (access can be lost, a configuration published at any time)."""
    user = load_user(user_id)
    if user is None:
        return ListChanges(close_code=4403)
    try:
        folder = folder_communications(user=user, folder=state.folder, filters=state.filters)
    except FolderNotAllowed:
        return ListChanges(gone=frozenset(ids))
    return _changes(user, state, folder, frozenset(ids), open_ids=open_ids, with_counts=with_counts)


def _changes(user, state: ListState, folder, ids: frozenset, *, open_ids, with_counts: bool) -> ListChanges:
    with timezone.override(time_zone(user)):
        found = []
        if ids:
            found = list(folder.filter(pk__in=ids).select_related(*ROW_RELATED).only(*ROW_FIELDS))
            with_candidate_counts(found)
            presence.with_replying(found, viewer_id=user.pk)
        now = timezone.now()
        rows = {c.pk: _upsert(c, state, now) for c in found}
        selected = {
            c.pk: _upsert(c, dataclasses.replace(state, open_id=c.pk), now) for c in found if c.pk in open_ids
        }
        gone = ids - rows.keys()
        empty = ""
        if gone and not rows and not folder.exists():
            empty = _render("_oob_row.html", {**rows_context(user, state), "empty_rows": True})
        counts = nav_context(user, state) if with_counts else {}
        return ListChanges(
            rows=rows,
            selected=selected,
            gone=gone,
            empty=empty,
            counts=_render("_folder_nav.html", {"state": state, **counts, "oob": True}) if counts else "",
            counts_key=counts.get("counts_key", ""),
        )


# A change is stamped (updated_at) before its commit: look back a little further than the list's read.
CATCH_UP_MARGIN_SECONDS = 5.0
CATCH_UP_LIMIT = 200  # rows read again at most; a list older than that many changes is re-fetched by the page


def list_catch_up(
    user_id: int, state: ListState, listed_at: float, *, row_ids, open_id: int | None
) -> ListChanges:
    """The list's changes since the server read it (``listed_at``), from the database: the rows of the folder
    changed since, and the tab's rows changed since (gone from the folder, or not). Brings a tab what was committed
    between its page being read and its socket listening (or its hub hearing)."""
    user = load_user(user_id)
    if user is None:
        return ListChanges(close_code=4403)
    since = datetime.datetime.fromtimestamp(listed_at - CATCH_UP_MARGIN_SECONDS, tz=datetime.UTC)
    try:
        folder = folder_communications(user=user, folder=state.folder, filters=state.filters)
    except FolderNotAllowed:
        return ListChanges(gone=frozenset(row_ids))
    changed = folder.filter(updated_at__gte=since).order_by("-updated_at").values_list("pk", flat=True)
    ids = set(changed[:CATCH_UP_LIMIT])
    ids.update(
        Communication.objects.filter(pk__in=row_ids, updated_at__gte=since).values_list("pk", flat=True)
    )
    if not ids:
        return ListChanges()
    open_ids = {open_id} if open_id else frozenset()
    return _changes(user, state, folder, frozenset(ids), open_ids=open_ids, with_counts=False)


def _upsert(communication: Communication, state: ListState, now) -> str:
    return _render("_oob_row.html", {"c": communication, "state": state, "now": now, "upsert": True})


def removal_html(row_id: int) -> str:
    return _render("_oob_row.html", {"remove": True, "row_id": row_id})


# --- The open conversation: per tab (what it shows of it is its own) --------------------------------------


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


def conversation_changed(user_id: int, subscription: Subscription, communication_id: int) -> Push:
    """What the tab's open conversation should change after ``communication.changed`` — or nothing at all. A
    conversation the viewer may no longer see closes (its row leaves with the list's own update)."""
    if communication_id != subscription.open_id:
        return Push("", subscription)
    user = load_user(user_id)
    if user is None:
        return Push("", subscription, close_code=4403)
    with timezone.override(time_zone(user)):
        shown: dict = dict(subscription.shown)
        communication = _visible(user, communication_id)
        if communication is None:
            return _conversation_gone(subscription, shown)
        html, updates = _conversation_parts(user, subscription, communication, shown)
        return Push(html, dataclasses.replace(subscription, shown=shown, **updates))


def _conversation_gone(subscription: Subscription, shown: dict) -> Push:
    shown.pop("header", None), shown.pop("status", None)
    updated = dataclasses.replace(
        subscription, shown=shown, open_id=None, last_message_id=None, pending={}, open_is_unrecognized=False
    )
    return Push(_render("_oob_conversation.html", {"gone": True}), updated)


def _catch_up(user, subscription: Subscription) -> Push:
    """Right after a (re)subscription: the open conversation as it is now (messages that arrived between the page
    being rendered and the socket listening, header and status switch) and its presence strip."""
    if subscription.open_id is None:
        return Push("", subscription)
    with timezone.override(time_zone(user)):
        shown = dict(subscription.shown)
        communication = _visible(user, subscription.open_id)
        if communication is None:
            return _conversation_gone(subscription, shown)
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


def touch_presence(
    user_id: int, communication_id: int, *, channel: str, typing: bool | None, drafting: bool | None = None
) -> presence.Change:
    """Record that the tab shows (or types in) the communication; whether the people there changed."""
    user = load_user(user_id)
    if user is None:
        return presence.Change()
    presence.touch(communication_id, user=user, channel=channel, typing=typing, drafting=drafting)
    return presence.changed(communication_id)


def leave_presence(user_id: int, communication_id: int, *, channel: str) -> presence.Change:
    presence.leave(communication_id, user_id=user_id, channel=channel)
    return presence.changed(communication_id)


def presence_expired(communication_id: int) -> presence.Change:
    """Whether entries expired (a tab went silent, typing stopped) since the last announcement."""
    return presence.changed(communication_id)


# --- "… is replying" on list rows: rendered once per user for all their tabs -----------------------------------


@dataclasses.dataclass(frozen=True)
class ReplyingMarkers:
    """The "… is replying" markers of some rows as one user sees them (a viewer never sees themselves)."""

    markers: Mapping[int, str] = dataclasses.field(
        default_factory=dict
    )  # id → the marker, swapped in by its id
    until: Mapping[int, float] = dataclasses.field(
        default_factory=dict
    )  # id → when its first replier expires
    close_code: int | None = None


def replying_markers(user_id: int, ids) -> ReplyingMarkers:
    """The markers of the rows ``ids`` that the user may see (the access rule, one query), from the cache (one
    ``get_many``). The page puts each in its row (``static/js/realtime.js``), or drops it when the row is not there."""
    user = load_user(user_id)
    if user is None:
        return ReplyingMarkers(close_code=4403)
    if not has_inbox(user) or not ids:
        return ReplyingMarkers()
    visible = list(communications_visible_to(user).filter(pk__in=list(ids)).values_list("pk", flat=True))
    replying = presence.replying_among(visible)
    markers, until = {}, {}
    for pk in visible:
        others = [(name, at) for uid, name, at in replying.get(pk, ()) if uid != user.pk]
        markers[pk] = replying_marker(pk, [name for name, _ in others])
        if others:
            until[pk] = min(at for _, at in others)
    return ReplyingMarkers(markers=markers, until=until)


def markers_html(markers) -> str:
    """Markers pushed to a tab: handed to the page beside pushed rows (``#inbox-incoming``), never swapped by id
    directly (a row no longer on the page would make that an htmx error)."""
    return (
        '<div hx-swap-oob="beforeend:#inbox-incoming"><div data-markers>' + "".join(markers) + "</div></div>"
    )


def replying_expired(communication_id: int) -> tuple[presence.Change, float | None]:
    """A hub's look when a replier's entry would expire: whether that changed who is there (to be announced), and
    when the first replier still there would expire (to look again then)."""
    change = presence.changed(communication_id)
    replying = presence.replying_among([communication_id]).get(communication_id, ())
    return change, min((until for _, _, until in replying), default=None)
