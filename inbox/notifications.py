"""Notifications and @mentions (DESIGN.md: Notifications): who is told what, and the live hint that tells them.

A ``Notification`` is created, inside the transaction of the change it reports, for: a communication assigned to
you by someone else (or by auto-assignment), a new inbound message on a communication assigned to you or whose
patient has you as primary contact, and an @mention in an internal note. Nobody is notified about a communication
they cannot see: access is re-checked through the one access rule at creation, and again whenever the bell is read
(``notifications_for``). After commit, ``notification.created`` goes to the user's own group only.
"""

import html
import re

from django.db import transaction
from django.db.models import Q, QuerySet

from careportal.access import can_view_communication, communications_visible_to
from careportal.models import CareTeamMember

from . import events
from .errors import NotPermitted
from .models import Communication, Message, Notification
from .selectors import assignee_candidates, without_integration_accounts

Kind = Notification.Kind
TEXT_LENGTH = 255
# "@" then a username, not preceded by a word character, "@" or "." (so an email address is not a mention).
MENTION = re.compile(r"(?<![\w@.])@([A-Za-z0-9_.+-]{1,150})")
MAX_MENTIONS = 20
LATEST = 8  # notifications in the bell's dropdown


# --- Who may be told ---------------------------------------------------------------------------------------------


def mentionable_users(communication: Communication, *, query: str = "", limit: int | None = None) -> list:
    """Active Inbox users who can see ``communication`` (the assignee-list rule, then the access rule itself),
    optionally narrowed by a name or username fragment."""
    users = assignee_candidates(communication)
    query = query.strip().lstrip("@")
    if query:
        users = users.filter(
            Q(username__istartswith=query)
            | Q(first_name__istartswith=query)
            | Q(last_name__istartswith=query)
        )
    found = []
    for user in users[: (limit or 1000) * 2]:
        if can_view_communication(user, communication):
            found.append(user)
            if limit and len(found) >= limit:
                break
    return found


def _who_can_see(communication: Communication, user_ids) -> list:
    ids = {pk for pk in user_ids if pk}
    if not ids:
        return []
    users = assignee_candidates(communication).filter(pk__in=ids)
    return [user for user in users if can_view_communication(user, communication)]


# --- @mentions ---------------------------------------------------------------------------------------------------


def mentions_in(communication: Communication, text: str) -> list:
    """The users a note mentions: ``@username`` (case-insensitive) of an active user who can see the communication.

    A token that names nobody (``@5pm``) is plain text. Naming a user who cannot see the communication is refused
    (``NotPermitted``, nothing is saved): the author would otherwise believe a colleague was told.
    """
    from adminportal.models import User

    tokens = {}
    for match in MENTION.finditer(text or ""):
        token = match.group(1)
        tokens.setdefault(token.lower(), token)
        tokens.setdefault(token.rstrip(".-+").lower(), token.rstrip(".-+"))
    tokens.pop("", None)
    if not tokens:
        return []
    if len(tokens) > 2 * MAX_MENTIONS:
        raise NotPermitted(f"A note can mention at most {MAX_MENTIONS} people.")
    wanted = Q()
    for token in tokens:
        wanted |= Q(username__iexact=token)
    # An integration account is not a person: its name is plain text.
    people = without_integration_accounts(User.objects.filter(wanted, is_active=True))
    named = {u.username.lower(): u for u in people}
    if not named:
        return []
    allowed = {u.pk for u in _who_can_see(communication, [u.pk for u in named.values()])}
    refused = sorted((u for u in named.values() if u.pk not in allowed), key=lambda u: u.username)
    if refused:
        names = ", ".join(f"{u.full_name} (@{u.username})" for u in refused)
        raise NotPermitted(
            f"{names} cannot see this communication, so the note cannot mention them. "
            "Remove the mention or ask someone with access."
        )
    return sorted(named.values(), key=lambda u: u.username)


def note_html(text: str, mentioned) -> str:
    """The note as stored HTML: escaped text in paragraphs, each mention of ``mentioned`` in a
    ``<span class="mention">`` (rendered through an allow-list that keeps only that class)."""
    usernames = {u.username.lower() for u in mentioned}

    def line(value: str) -> str:
        out, last = [], 0
        for match in MENTION.finditer(value):
            token = match.group(1)
            name = token if token.lower() in usernames else token.rstrip(".-+")
            if name.lower() not in usernames:
                continue
            out.append(html.escape(value[last : match.start()]))
            out.append(f'<span class="mention">@{html.escape(name)}</span>')
            last = match.start() + 1 + len(name)
        out.append(html.escape(value[last:]))
        return "".join(out)

    paragraphs = [p for p in re.split(r"\n{2,}", text.strip()) if p]
    return "".join("<p>" + "<br>".join(line(x) for x in p.split("\n")) + "</p>" for p in paragraphs)


# --- Creating notifications -------------------------------------------------------------------------------------


def _about(communication: Communication) -> str:
    if communication.contact_id:
        return communication.contact.full_name
    if communication.patient_id:
        return communication.patient.full_name
    return communication.counterpart


def _preview(message: Message | None) -> str:
    if message is None:
        return ""
    return " ".join((message.body_text or "").split())


def _clip(text: str) -> str:
    return text if len(text) <= TEXT_LENGTH else text[: TEXT_LENGTH - 1] + "…"


def _create(users, *, kind: str, communication: Communication, message: Message | None, text: str) -> list:
    created = Notification.objects.bulk_create(
        Notification(user=user, kind=kind, communication=communication, message=message, text=_clip(text))
        for user in users
    )
    for notification in created:
        publish_created(notification.user_id, notification.pk)
    return created


def notify_assigned(communication: Communication, assignee, *, actor=None) -> list:
    """A communication assigned to you — by someone else, or by auto-assignment (``actor=None``); assigning yourself
    tells nobody."""
    if assignee is None or (actor is not None and getattr(actor, "pk", None) == assignee.pk):
        return []
    users = _who_can_see(communication, [assignee.pk])
    channel = communication.get_channel_display()
    if actor is None:
        text = f"Assigned to you automatically: {channel} with {_about(communication)}"
    else:
        text = f"{actor.full_name} assigned you the {channel} with {_about(communication)}"
    return _create(users, kind=Kind.ASSIGNED, communication=communication, message=None, text=text)


def primary_contacts_of(patient_ids) -> dict[int, set[int]]:
    """The user ids of each patient's primary contacts (one query for a batch of inbound messages)."""
    found: dict[int, set[int]] = {pk: set() for pk in patient_ids}
    rows = CareTeamMember.objects.filter(patient_id__in=found, is_primary_contact=True).values_list(
        "patient_id", "user_id"
    )
    for patient_id, user_id in rows:
        found[patient_id].add(user_id)
    return found


def notify_inbound(
    communication: Communication, message: Message, *, primary_contacts: dict[int, set[int]] | None = None
) -> list:
    """A new inbound message: its communication's assignee and the patient's primary contacts are told.
    Auto-replies (out-of-office) tell nobody, as they do not reopen the communication either.

    ``primary_contacts`` (from ``primary_contacts_of``, read in the same transaction) saves the look-up per message.
    """
    if message.is_auto_reply or message.direction != Message.Direction.INBOUND:
        return []
    ids = {communication.assignee_id}
    if communication.patient_id:
        if primary_contacts is not None and communication.patient_id in primary_contacts:
            ids.update(primary_contacts[communication.patient_id])
        else:
            ids.update(
                CareTeamMember.objects.filter(
                    patient_id=communication.patient_id, is_primary_contact=True
                ).values_list("user_id", flat=True)
            )
    users = _who_can_see(communication, ids)
    channel = "Secure message" if message.is_secure else communication.get_channel_display()
    text = f"New {channel} from {_about(communication)}: {_preview(message)}"
    return _create(users, kind=Kind.INBOUND, communication=communication, message=message, text=text)


def notify_mentions(communication: Communication, message: Message, mentioned, *, actor) -> list:
    """Everyone a note mentions, except its author; access re-checked."""
    ids = [u.pk for u in mentioned if u.pk != actor.pk]
    users = _who_can_see(communication, ids)
    text = f"{actor.full_name} mentioned you in a note: {_preview(message)}"
    return _create(users, kind=Kind.MENTION, communication=communication, message=message, text=text)


# --- The live hint ------------------------------------------------------------------------------------------------


def publish_created(user_id: int, notification_id: int) -> None:
    """After commit: ``notification.created`` to the user's own group (their open tabs re-render the bell)."""
    event = {"type": "notification.created", "user_id": user_id, "notification_id": notification_id}
    transaction.on_commit(lambda: events._send([events.group_for_user(user_id)], event))


def publish_read(user_id: int) -> None:
    """After commit: the user's other tabs re-render their bell (read in one tab, read everywhere)."""
    event = {"type": "notification.read", "user_id": user_id}
    transaction.on_commit(lambda: events._send([events.group_for_user(user_id)], event))


# --- Reading and marking ------------------------------------------------------------------------------------------


def notifications_for(user) -> QuerySet[Notification]:
    """The user's notifications about communications they can still see, newest first."""
    return (
        Notification.objects.filter(user=user, communication__in=communications_visible_to(user))
        .select_related("communication", "communication__patient")
        .order_by("-created_at", "-id")
    )


def unread_count(user) -> int:
    return notifications_for(user).filter(is_read=False).count()


def mark_read(*, user, notification: Notification) -> bool:
    """Mark one of the user's notifications read; whether it changed."""
    changed = bool(
        Notification.objects.filter(pk=notification.pk, user=user, is_read=False).update(is_read=True)
    )
    if changed:
        publish_read(user.pk)
    return changed


def mark_all_read(*, user) -> int:
    changed = Notification.objects.filter(user=user, is_read=False).update(is_read=True)
    if changed:
        publish_read(user.pk)
    return changed
