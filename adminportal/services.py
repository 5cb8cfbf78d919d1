"""Admin Portal writes (users, explicit patient grants, feature settings, sending lines, inbound addresses, inbound
re-processing) and the reads its pages need (the audit log by keyset pages and as CSV, ingestion health).

Every write is one durable transaction that writes its audit event with the change. ``inbox.AuditEvent`` offers no
dedicated actions for administration, so every Admin Portal change is a ``setting.changed`` event whose
``detail["change"]`` says what changed (``CHANGE_LABELS``); the audit log viewer shows that label.
"""

import csv
import datetime as dt
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from asgiref.sync import sync_to_async
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from guardian.shortcuts import assign_perm, remove_perm

from careportal.models import Patient, PatientUserObjectPermission
from designer.models import ConfigVersion, Policy, Role
from designer.selectors import has_policy
from inbox import audit
from inbox.ingest.raw import requeue
from inbox.models import (
    AuditEvent,
    Communication,
    InboundAddress,
    RawInbound,
    SendingLine,
    SendingLineUserObjectPermission,
)
from inbox.selectors import SEND_FROM_LINE

from .models import FeatureSetting, Region, User

logger = logging.getLogger(__name__)
VIEW_PATIENT = "careportal.view_patient"
CHANGE_LABELS = {
    "user.created": "Created user",
    "user.invited": "Sent invitation",
    "user.updated": "Updated user",
    "user.deactivated": "Deactivated user",
    "user.reactivated": "Reactivated user",
    "patient_access.granted": "Granted patient access",
    "patient_access.revoked": "Revoked patient access",
    "feature_setting.changed": "Changed feature setting",
    "sending_line.created": "Added sending line",
    "sending_line.updated": "Changed sending line",
    "sending_line.sender_added": "Allowed to send from line",
    "sending_line.sender_removed": "Removed from line's senders",
    "inbound_address.created": "Added inbound address",
    "inbound_address.updated": "Changed inbound address",
    "inbound.reprocessed": "Re-processed inbound item",
}


class AdminError(Exception):
    """A refused Admin Portal action; ``message`` is shown as is, ``field`` names the form field when there is one."""

    def __init__(self, message: str, *, field: str | None = None):
        self.message, self.field = message, field
        super().__init__(message)


def require_administrator(user) -> None:
    """The Admin Portal is for users whose *published* role holds the Administrator policy."""
    if not has_policy(user, Policy.ADMINISTRATOR):
        raise PermissionDenied("Your role does not hold the Administrator policy.")


def _record(*, actor, change: str, request=None, obj=None, patient=None, **detail) -> None:
    audit.record(
        actor=actor,
        action=audit.Action.SETTING_CHANGED,
        request=request,
        obj=obj,
        patient=patient,
        detail={"change": change, **detail},
    )


# --- Users ---------------------------------------------------------------------------------------------------


@dataclass
class UserDetails:
    """What the Admin Portal sets on a user (direct line and email alias are ``SendingLine`` / ``InboundAddress``
    ownership, used for auto-assignment)."""

    first_name: str
    last_name: str
    email: str
    title: str = ""
    time_zone: str = "America/New_York"
    role: str = ""
    regions: list[Region] = field(default_factory=list)
    direct_line: SendingLine | None = None
    email_alias: InboundAddress | None = None


def published_roles() -> list[Role]:
    return list(
        Role.objects.filter(version__status=ConfigVersion.Status.PUBLISHED).order_by(
            "-is_active", "name", "key"
        )
    )


def _claim_line_and_alias(user: User, details: UserDetails, *, before_line, before_alias) -> dict:
    """Point the chosen direct line and email alias at ``user`` (locking them), releasing the previous ones.

    Only a change of choice moves anything, so a user who owns several lines (set on the Sending lines page) keeps
    the others."""
    changed = {}
    for label, model, chosen, before in (
        ("direct_line", SendingLine, details.direct_line, before_line),
        ("email_alias", InboundAddress, details.email_alias, before_alias),
    ):
        if (chosen.pk if chosen else None) == (before.pk if before else None):
            continue
        if before is not None:
            model.objects.filter(pk=before.pk, owner=user).update(owner=None)
        if chosen is not None:
            locked = model.objects.select_for_update().get(pk=chosen.pk)
            if locked.owner_id not in (None, user.pk):
                what = "line" if model is SendingLine else "address"
                raise AdminError(
                    f"{locked} already belongs to {locked.owner}; choose another {what}.", field=label
                )
            model.objects.filter(pk=chosen.pk).update(owner=user)
        changed[label] = str(chosen) if chosen else ""
    return changed


def current_direct_line(user: User) -> SendingLine | None:
    return user.direct_lines.order_by("pk").first() if user.pk else None


def current_email_alias(user: User) -> InboundAddress | None:
    return user.email_aliases.order_by("pk").first() if user.pk else None


def _invitation_url(user: User, request) -> str:
    path = reverse(
        "adminportal:invite_accept",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    return request.build_absolute_uri(path) if request is not None else path


def _send_invitation(user: User, url: str, inviter: User) -> None:
    context = {"user": user, "url": url, "inviter": inviter}
    send_mail(
        subject="You're invited to the Care Inbox",
        message=render_to_string("adminportal/invite_email.txt", context),
        from_email=None,
        recipient_list=[user.email],
    )


@transaction.atomic(durable=True)
def create_user(*, actor, username: str, details: UserDetails, password: str = "", request=None) -> User:
    """Create a user. With a password they can sign in at once; without one they are emailed an invitation to set
    their own (the link works once, for ``PASSWORD_RESET_TIMEOUT``)."""
    require_administrator(actor)
    username = username.strip()
    if User.objects.filter(username__iexact=username).exists():
        raise AdminError(f"The username “{username}” is taken.", field="username")
    if not password and not details.email:
        raise AdminError("Give an email address to send the invitation to, or set a password.", field="email")
    user = User(
        username=username,
        first_name=details.first_name,
        last_name=details.last_name,
        email=details.email,
        title=details.title,
        time_zone=details.time_zone,
        role=details.role,
    )
    if password:
        try:
            validate_password(password, user)
        except ValidationError as error:
            raise AdminError(" ".join(error.messages), field="password") from None
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    user.regions.set(details.regions)
    _claim_line_and_alias(user, details, before_line=None, before_alias=None)
    _record(
        actor=actor,
        change="user.created",
        request=request,
        obj=user,
        username=user.username,
        role=user.role,
        invited=not password,
    )
    if not password:
        url = _invitation_url(user, request)
        transaction.on_commit(lambda: _send_invitation(user, url, actor), robust=True)
    return user


@transaction.atomic(durable=True)
def resend_invitation(*, actor, user: User, request=None) -> None:
    """Email a fresh set-password link to a user who has not set a password yet."""
    require_administrator(actor)
    if user.has_usable_password():
        raise AdminError(f"{user.full_name} has already set a password.")
    if not user.email:
        raise AdminError(f"{user.full_name} has no email address to send the invitation to.")
    _record(actor=actor, change="user.invited", request=request, obj=user, email=user.email)
    url = _invitation_url(user, request)
    transaction.on_commit(lambda: _send_invitation(user, url, actor), robust=True)


USER_FIELDS = ("first_name", "last_name", "email", "title", "time_zone", "role")


@transaction.atomic(durable=True)
def update_user(*, actor, user: User, details: UserDetails, request=None) -> list[str]:
    """Change a user's names, contact, role, regions, direct line and email alias. Returns what changed (nothing
    written and nothing audited when nothing changed)."""
    require_administrator(actor)
    user = User.objects.select_for_update().get(pk=user.pk)
    before = {name: getattr(user, name) for name in USER_FIELDS}
    after = {name: getattr(details, name) for name in USER_FIELDS}
    changed = {
        name: {"from": before[name], "to": after[name]} for name in USER_FIELDS if before[name] != after[name]
    }
    if changed:
        for name in changed:
            setattr(user, name, after[name])
        user.save(update_fields=list(changed))
    region_ids = {r.pk for r in details.regions}
    if set(user.regions.values_list("pk", flat=True)) != region_ids:
        user.regions.set(details.regions)
        changed["regions"] = sorted(r.code for r in details.regions)
    changed.update(
        _claim_line_and_alias(
            user, details, before_line=current_direct_line(user), before_alias=current_email_alias(user)
        )
    )
    if changed:
        _record(actor=actor, change="user.updated", request=request, obj=user, fields=changed)
    return list(changed)


def open_assignments(user: User) -> QuerySet[Communication]:
    """Open communications assigned to ``user``, newest first: the ones to reassign after a deactivation."""
    return (
        Communication.objects.filter(assignee=user, status=Communication.Status.OPEN)
        .select_related("patient", "sending_line")
        .order_by("-last_message_at", "-id")
    )


@transaction.atomic(durable=True)
def deactivate_user(*, actor, user: User, request=None) -> None:
    """Deactivate a user: they cannot sign in (their sessions end on the next request) and drop out of assignee lists;
    everything they did stays, and their open assignments are listed for reassignment."""
    require_administrator(actor)
    if user.pk == actor.pk:
        raise AdminError("You cannot deactivate yourself; ask another administrator.")
    user = User.objects.select_for_update().get(pk=user.pk)
    if not user.is_active:
        raise AdminError(f"{user.full_name} is already deactivated.")
    user.is_active = False
    user.save(update_fields=["is_active"])
    _record(
        actor=actor,
        change="user.deactivated",
        request=request,
        obj=user,
        open_assignments=open_assignments(user).count(),
    )


@transaction.atomic(durable=True)
def reactivate_user(*, actor, user: User, request=None) -> None:
    require_administrator(actor)
    user = User.objects.select_for_update().get(pk=user.pk)
    if user.is_active:
        raise AdminError(f"{user.full_name} is already active.")
    user.is_active = True
    user.save(update_fields=["is_active"])
    _record(actor=actor, change="user.reactivated", request=request, obj=user)


# --- Explicit patient grants (django-guardian) -----------------------------------------------------------------


def granted_patients(user: User) -> QuerySet[Patient]:
    """Patients ``user`` may see through an explicit ``view_patient`` grant (outside their care team)."""
    grants = PatientUserObjectPermission.objects.filter(user=user, permission__codename="view_patient")
    return Patient.objects.filter(pk__in=grants.values("content_object_id")).order_by(
        "last_name", "first_name"
    )


def find_patients(query: str, *, limit: int = 8) -> list[Patient]:
    """Patients by exact MRN or by name ("Lopez", "Maria Lopez"), for granting access. Administrators search every
    patient: deciding who may see a patient is their job."""
    query = " ".join(query.split())
    if len(query) < 2:
        return []
    name_q = (
        Q(first_name__icontains=query) | Q(last_name__icontains=query) | Q(preferred_name__icontains=query)
    )
    parts = query.split(" ")
    if len(parts) == 2:
        name_q |= Q(first_name__iexact=parts[0], last_name__iexact=parts[1])
    exact = list(Patient.objects.filter(mrn__iexact=query)[:1])
    others = (
        Patient.objects.filter(name_q)
        .exclude(pk__in=[p.pk for p in exact])
        .order_by("last_name", "first_name")
    )
    return exact + list(others[: limit - len(exact)])


@transaction.atomic(durable=True)
def grant_patient_access(*, actor, user: User, patient: Patient, request=None) -> bool:
    """Let ``user`` see ``patient`` outside their care team. Returns False when they already could this way."""
    require_administrator(actor)
    if granted_patients(user).filter(pk=patient.pk).exists():
        return False
    assign_perm(VIEW_PATIENT, user, patient)
    _record(
        actor=actor,
        change="patient_access.granted",
        request=request,
        obj=user,
        patient=patient,
        user=user.username,
    )
    return True


@transaction.atomic(durable=True)
def revoke_patient_access(*, actor, user: User, patient: Patient, request=None) -> bool:
    require_administrator(actor)
    if not granted_patients(user).filter(pk=patient.pk).exists():
        return False
    remove_perm(VIEW_PATIENT, user, patient)
    _record(
        actor=actor,
        change="patient_access.revoked",
        request=request,
        obj=user,
        patient=patient,
        user=user.username,
    )
    return True


# --- Feature settings --------------------------------------------------------------------------------------------


def feature_state(key: FeatureSetting.Key) -> tuple[bool, dict]:
    row = FeatureSetting.objects.filter(key=key).first()
    if row is None:
        is_enabled, value = FeatureSetting.DEFAULTS[key]
        return is_enabled, dict(value)
    return row.is_enabled, row.value


@transaction.atomic(durable=True)
def update_feature_setting(
    *, actor, key: FeatureSetting.Key, is_enabled: bool, value: dict, request=None
) -> bool:
    """Admin Portal → Feature Settings → Environment. Returns False (and writes nothing) when nothing changed."""
    require_administrator(actor)
    row = FeatureSetting.objects.select_for_update().filter(key=key).first()
    before = (
        (row.is_enabled, row.value)
        if row
        else (FeatureSetting.DEFAULTS[key][0], FeatureSetting.DEFAULTS[key][1])
    )
    if before == (is_enabled, value):
        return False
    if row is None:
        try:
            with transaction.atomic():
                row = FeatureSetting.objects.create(
                    key=key, is_enabled=is_enabled, value=value, updated_by=actor
                )
        except IntegrityError:  # another administrator created the row first: change theirs
            row = FeatureSetting.objects.select_for_update().get(key=key)
    row.is_enabled, row.value, row.updated_by = is_enabled, value, actor
    row.save(update_fields=["is_enabled", "value", "updated_by", "updated_at"])
    _record(
        actor=actor,
        change="feature_setting.changed",
        request=request,
        obj=row,
        key=key.value if hasattr(key, "value") else key,
        before={"is_enabled": before[0], "value": before[1]},
        after={"is_enabled": is_enabled, "value": value},
    )
    return True


# --- Sending lines and inbound addresses -------------------------------------------------------------------------


def _snapshot(obj, fields: tuple[str, ...]) -> dict:
    return {name: (str(getattr(obj, name)) if name == "owner" else getattr(obj, name)) for name in fields}


LINE_FIELDS = ("number", "label", "is_active", "owner")
ADDRESS_FIELDS = ("address", "label", "is_active", "owner")


def _save_owned(*, actor, model, obj, values: dict, fields, unique: str, kind: str, what: str, request):
    """Create or change a sending line / inbound address; audit what changed."""
    require_administrator(actor)
    clash = model.objects.filter(**{f"{unique}__iexact": values[unique]})
    if obj is not None:
        clash = clash.exclude(pk=obj.pk)
    if clash.exists():
        raise AdminError(f"{values[unique]} is already {what}.", field=unique)
    created = obj is None
    if created:
        obj = model(**values)
        before = {}
    else:
        obj = model.objects.select_for_update().get(pk=obj.pk)
        before = _snapshot(obj, fields)
        for name, value in values.items():
            setattr(obj, name, value)
    after = _snapshot(obj, fields)
    if not created and before == after:
        return obj, False
    try:
        with transaction.atomic():
            obj.save()
    except IntegrityError:
        raise AdminError(f"{values[unique]} is already {what}.", field=unique) from None
    changed = {k: {"from": before.get(k), "to": v} for k, v in after.items() if before.get(k) != v}
    _record(
        actor=actor,
        change=f"{kind}.{'created' if created else 'updated'}",
        request=request,
        obj=obj,
        fields=changed,
    )
    return obj, True


@transaction.atomic(durable=True)
def save_sending_line(
    *, actor, line: SendingLine | None, number: str, label: str, is_active: bool, owner, request=None
) -> tuple[SendingLine, bool]:
    """Add or change an organisational number (E.164, validated by the form). An owner makes it their direct line."""
    values = {"number": number, "label": label, "is_active": is_active, "owner": owner}
    return _save_owned(
        actor=actor,
        model=SendingLine,
        obj=line,
        values=values,
        fields=LINE_FIELDS,
        unique="number",
        kind="sending_line",
        what="a sending line",
        request=request,
    )


def line_senders(line: SendingLine) -> QuerySet[User]:
    """Users granted ``send_from_line`` on ``line`` (deactivated ones too: their grant still restricts the line).
    None means every Inbox user may send from it (``inbox.selectors.sending_lines_usable_by``)."""
    grants = SendingLineUserObjectPermission.objects.filter(
        content_object_id=line.pk, permission__codename=SEND_FROM_LINE
    )
    return User.objects.filter(pk__in=grants.values("user_id")).order_by(
        "first_name", "last_name", "username"
    )


@transaction.atomic(durable=True)
def add_line_sender(*, actor, line: SendingLine, user: User, request=None) -> bool:
    """Let ``user`` send from ``line``. The first sender restricts the line: from then on only its senders (and its
    owner) may use it. Returns False (and writes nothing) when ``user`` already was a sender."""
    require_administrator(actor)
    line = SendingLine.objects.select_for_update().get(pk=line.pk)  # one change to a line's senders at a time
    if not user.is_active:
        raise AdminError(f"{user.full_name} is deactivated; reactivate them first.", field="user")
    senders = line_senders(line)
    if senders.filter(pk=user.pk).exists():
        return False
    restricts = not senders.exists()
    assign_perm(f"inbox.{SEND_FROM_LINE}", user, line)
    _record(
        actor=actor,
        change="sending_line.sender_added",
        request=request,
        obj=line,
        line=line.number,
        user=user.username,
        restricted=restricts,
    )
    return True


@transaction.atomic(durable=True)
def remove_line_sender(*, actor, line: SendingLine, user: User, request=None) -> bool:
    """Stop ``user`` sending from ``line``. Removing the last sender opens the line to every Inbox user again.
    Returns False (and writes nothing) when ``user`` was not a sender."""
    require_administrator(actor)
    line = SendingLine.objects.select_for_update().get(pk=line.pk)
    if not line_senders(line).filter(pk=user.pk).exists():
        return False
    remove_perm(f"inbox.{SEND_FROM_LINE}", user, line)
    _record(
        actor=actor,
        change="sending_line.sender_removed",
        request=request,
        obj=line,
        line=line.number,
        user=user.username,
        open_to_everyone=not line_senders(line).exists(),
    )
    return True


@transaction.atomic(durable=True)
def save_inbound_address(
    *, actor, address: InboundAddress | None, email: str, label: str, is_active: bool, owner, request=None
) -> tuple[InboundAddress, bool]:
    """Add or change an address the organisation receives on (lower-cased). An owner makes it their email alias."""
    values = {"address": email.strip().lower(), "label": label, "is_active": is_active, "owner": owner}
    return _save_owned(
        actor=actor,
        model=InboundAddress,
        obj=address,
        values=values,
        fields=ADDRESS_FIELDS,
        unique="address",
        kind="inbound_address",
        what="an inbound address",
        request=request,
    )


# --- Ingestion health ----------------------------------------------------------------------------------------


STUCK_AFTER = dt.timedelta(minutes=1)
HEALTH_ROWS = 100


@dataclass(frozen=True)
class IngestionHealth:
    waiting: list[RawInbound]
    waiting_count: int
    failed: list[RawInbound]
    failed_count: int


def ingestion_health(*, now: dt.datetime | None = None) -> IngestionHealth:
    """Inbound items unprocessed for over a minute (the broker or worker may be down) and items that failed."""
    now = now or timezone.now()
    pending = RawInbound.objects.filter(processed_at__isnull=True).defer("raw")
    waiting = pending.filter(error="", received_at__lt=now - STUCK_AFTER).order_by("received_at", "pk")
    failed = pending.exclude(error="").order_by("-received_at", "-pk")
    return IngestionHealth(
        waiting=list(waiting[:HEALTH_ROWS]),
        waiting_count=waiting.count(),
        failed=list(failed[:HEALTH_ROWS]),
        failed_count=failed.count(),
    )


def reprocess_inbound(*, actor, raw: RawInbound, request=None) -> RawInbound:
    """Clear an item's error and process it again (after a fix). The attempt is audited first, in its own
    transaction, so the audit event exists whatever the processing does."""
    require_administrator(actor)
    if raw.processed_at is not None:
        raise AdminError("This item is already processed.")
    with transaction.atomic(durable=True):
        _record(
            actor=actor,
            change="inbound.reprocessed",
            request=request,
            obj=raw,
            source=raw.source,
            provider_id=raw.provider_id,
            previous_error=raw.error[:500],
        )
    requeue(raw)
    return RawInbound.objects.defer("raw").get(pk=raw.pk)


# --- Audit log -----------------------------------------------------------------------------------------------

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
AUDIT_PAGE_SIZE = 50
CSV_BATCH = 2000


@dataclass(frozen=True)
class AuditFilters:
    actor: User | None = None
    patient: Patient | None = None
    action: str = ""
    since: dt.datetime | None = None  # inclusive
    until: dt.datetime | None = None  # exclusive

    @property
    def is_filtered(self) -> bool:
        return any((self.actor, self.patient, self.action, self.since, self.until))


def encode_audit_cursor(event: AuditEvent) -> str:
    """(at, id) as exact integers: microseconds since the epoch, and the id."""
    return f"{(event.at - EPOCH) // dt.timedelta(microseconds=1)}_{event.pk}"


def decode_audit_cursor(cursor: str) -> tuple[dt.datetime, int]:
    """``ValueError`` for a malformed cursor."""
    micros, sep, pk = cursor.partition("_")
    if not sep:
        raise ValueError("malformed cursor")
    return EPOCH + dt.timedelta(microseconds=int(micros)), int(pk)


def audit_events(filters: AuditFilters) -> QuerySet[AuditEvent]:
    """Audit events matching ``filters``, newest first by (at, id) — the order of ``audit_recent_idx``; the actor,
    patient and action filters are served by ``audit_actor_idx`` / ``audit_patient_idx`` / ``audit_action_idx``."""
    qs = AuditEvent.objects.all()
    if filters.actor is not None:
        qs = qs.filter(actor=filters.actor)
    if filters.patient is not None:
        qs = qs.filter(patient=filters.patient)
    if filters.action:
        qs = qs.filter(action=filters.action)
    if filters.since is not None:
        qs = qs.filter(at__gte=filters.since)
    if filters.until is not None:
        qs = qs.filter(at__lt=filters.until)
    return qs.order_by("-at", "-id")


def _older_than(qs: QuerySet, at: dt.datetime, pk: int) -> QuerySet:
    # ``at <= X`` is an index condition that starts the scan at the cursor; the few rows tied on ``at`` are
    # filtered by id. (An OR of the two would make the database scan from the newest row every time.)
    return qs.filter(at__lte=at).exclude(at=at, id__gte=pk)


def _newer_than(qs: QuerySet, at: dt.datetime, pk: int) -> QuerySet:
    return qs.filter(at__gte=at).exclude(at=at, id__lte=pk)


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditEvent]
    older: str | None
    newer: str | None


def audit_page(
    filters: AuditFilters, *, after: str = "", before: str = "", limit: int = AUDIT_PAGE_SIZE
) -> AuditPage:
    """One page of the audit log by keyset pagination: ``after`` a cursor (older events) or ``before`` one
    (newer events). The cost of a page does not grow with how deep it is; nothing is counted."""
    qs = audit_events(filters).select_related("actor", "patient")
    if before:
        at, pk = decode_audit_cursor(before)
        rows = list(_newer_than(qs, at, pk).order_by("at", "id")[: limit + 1])
        has_newer = len(rows) > limit
        rows = rows[:limit][::-1]
        has_older = True
    else:
        if after:
            at, pk = decode_audit_cursor(after)
            qs = _older_than(qs, at, pk)
        rows = list(qs[: limit + 1])
        has_older = len(rows) > limit
        rows = rows[:limit]
        has_newer = bool(after)
    return AuditPage(
        rows=rows,
        older=encode_audit_cursor(rows[-1]) if rows and has_older else None,
        newer=encode_audit_cursor(rows[0]) if rows and has_newer else None,
    )


def change_label(event: AuditEvent) -> str:
    change = event.detail.get("change") if isinstance(event.detail, dict) else None
    return CHANGE_LABELS.get(change, "") if change else ""


CSV_HEADER = (
    "at_utc",
    "actor_id",
    "actor",
    "action",
    "action_label",
    "change",
    "patient_id",
    "patient_mrn",
    "communication_id",
    "object_type",
    "object_id",
    "ip",
    "user_agent",
    "detail",
)


def _csv_safe(value) -> str:
    """Spreadsheet-safe text: a cell starting with = + - @ (or a tab/CR) is prefixed with ' so it is not a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_row(event: AuditEvent) -> list[str]:
    return [
        _csv_safe(value)
        for value in (
            event.at.astimezone(dt.UTC).isoformat(),
            event.actor_id,
            event.actor_label or (event.actor.full_name if event.actor else ""),
            event.action,
            event.get_action_display(),
            change_label(event),
            event.patient_id,
            event.patient.mrn if event.patient else "",
            event.communication_id,
            event.object_type,
            event.object_id,
            event.ip,
            event.user_agent,
            json.dumps(event.detail, sort_keys=True, default=str),
        )
    ]


def audit_csv_chunk(filters: AuditFilters, cursor: str | None) -> tuple[str, str | None]:
    """One chunk of the CSV export: the header (when ``cursor`` is ``None``) or the next ``CSV_BATCH`` rows after
    ``cursor`` (``""`` starts at the newest). Returns (text, next cursor or ``None`` at the end)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if cursor is None:
        writer.writerow(CSV_HEADER)
        return buffer.getvalue(), ""
    qs = audit_events(filters).select_related("actor", "patient")
    if cursor:
        qs = _older_than(qs, *decode_audit_cursor(cursor))
    rows = list(qs[:CSV_BATCH])
    writer.writerows(_csv_row(event) for event in rows)
    next_cursor = encode_audit_cursor(rows[-1]) if len(rows) == CSV_BATCH else None
    return buffer.getvalue(), next_cursor


def audit_csv(filters: AuditFilters) -> Iterator[str]:
    """The CSV export, streamed in keyset batches (never the whole log in memory), for a WSGI server."""
    cursor: str | None = None
    while True:
        chunk, cursor = audit_csv_chunk(filters, cursor)
        if chunk:
            yield chunk
        if cursor is None:
            return


async def audit_csv_async(filters: AuditFilters) -> AsyncIterator[str]:
    """The same stream for an ASGI server, which would otherwise read a synchronous iterator whole before sending."""
    cursor: str | None = None
    while True:
        chunk, cursor = await sync_to_async(audit_csv_chunk)(filters, cursor)
        if chunk:
            yield chunk
        if cursor is None:
            return


def viewer_zone(user) -> ZoneInfo:
    try:
        return ZoneInfo(user.time_zone)
    except (ZoneInfoNotFoundError, ValueError, AttributeError):
        return ZoneInfo("UTC")
