"""Patient pages of the Care Portal: the list, the profile and its edit form, the communication center, encounter
detail, and the patient panel partial the Inbox shows beside a conversation."""

import copy
import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Q
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import dateformat, timezone
from django.utils.translation import get_language_info
from django.views.decorators.http import require_GET, require_http_methods

from designer.models import MenuItem, Policy
from designer.selectors import has_policy, role_access
from inbox import audit
from inbox.folders import InboxKind
from inbox.models import AuditEvent, Communication
from inbox.selectors import decode_cursor, encode_cursor, inboxes_for, search_term

from .. import selectors
from ..access import patients_visible_to
from ..forms_patients import PatientProfileForm
from ..models import ContactKind, Encounter, Patient
from ..selectors import panel_encounters, patient_for
from .common import require_menu

COMMUNICATIONS_PAGE_SIZE = 25
PROFILE_ENCOUNTERS = 10
PROFILE_DOCUMENTS = 20
PROFILE_RECENT_COMMUNICATIONS = 5
# Where a communication opens in the Inbox: the widest inbox the user has (DESIGN.md: Inboxes and folders).
INBOX_FOR_PATIENT_COMMUNICATIONS = (
    (InboxKind.ALL_PATIENTS, "directed"),
    (InboxKind.CARE_TEAM, "directed"),
    (InboxKind.MY, "assigned"),
)


# ---------------------------------------------------------------------------------------------------------------
# Presentation helpers (pure functions of a patient and the viewer)


def language_name(tag: str) -> str:
    """English name of a BCP 47 tag ("es" → "Spanish", "es-mx" → "Mexican Spanish"); the tag itself when unknown."""
    if not tag:
        return ""
    try:
        return str(get_language_info(tag.lower())["name"])
    except KeyError:
        return tag


def phone_display(value: str) -> str:
    """A stored E.164 number as people read it: national format for US numbers, international otherwise."""
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return value
    # By calling code, not by number validity: reserved ranges such as 555-01xx still read as US numbers.
    region = phonenumbers.region_code_for_country_code(parsed.country_code)
    fmt = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if region == "US"
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(parsed, fmt)


def zone_or_utc(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@dataclass(frozen=True)
class ContactRow:
    kind: str
    value: str
    display: str
    label: str
    href: str
    is_primary: bool
    is_verified: bool
    is_opted_out: bool

    @property
    def is_phone(self) -> bool:
        return self.kind == ContactKind.PHONE


def contact_rows(patient: Patient) -> list[ContactRow]:
    """Phones first (as ``tel:`` links), then emails; primary ones first within each kind."""
    rows = []
    for method in patient.contact_methods.all():
        is_phone = method.kind == ContactKind.PHONE
        rows.append(
            ContactRow(
                kind=method.kind,
                value=method.value,
                display=phone_display(method.value) if is_phone else method.value,
                label=method.label,
                href=f"tel:{method.value}" if is_phone else f"mailto:{method.value}",
                is_primary=method.is_primary,
                is_verified=method.is_verified,
                is_opted_out=method.is_opted_out,
            )
        )
    rows.sort(key=lambda r: (not r.is_phone, not r.is_primary))
    return rows


@dataclass(frozen=True)
class LocalTime:
    """The patient's current local time and how it relates to the viewer's clock."""

    now: dt.datetime
    zone: str
    abbreviation: str
    relative: str

    @property
    def time_text(self) -> str:
        return dateformat.format(self.now, "g:i A")

    @property
    def day_text(self) -> str:
        return dateformat.format(self.now, "D, M j")


def local_time(patient: Patient, viewer_zone: ZoneInfo, *, now: dt.datetime | None = None) -> LocalTime:
    now = now or timezone.now()
    patient_now = now.astimezone(zone_or_utc(patient.time_zone))
    viewer_now = now.astimezone(viewer_zone)
    minutes = int((patient_now.utcoffset() - viewer_now.utcoffset()).total_seconds() // 60)
    if minutes == 0:
        relative = "Same time as you"
    else:
        hours = f"{abs(minutes) / 60:g}"
        relative = f"{hours} h {'ahead of' if minutes > 0 else 'behind'} you"
    return LocalTime(
        now=patient_now, zone=patient.time_zone, abbreviation=patient_now.tzname() or "", relative=relative
    )


def viewer_zone(user) -> ZoneInfo:
    return zone_or_utc(getattr(user, "time_zone", "") or "UTC")


def _render(request, template: str, context: dict, **kwargs):
    """Render with the viewer's time zone active, so every time on the page reads in their clock."""
    with timezone.override(viewer_zone(request.user)):
        return render(request, template, context, **kwargs)


def _visible_patient(user, pk: int) -> Patient:
    """The patient if the access rule lets ``user`` see them; a 404 that says nothing about the patient otherwise."""
    try:
        return patient_for(user=user, pk=pk)
    except Patient.DoesNotExist:
        raise Http404("No such patient.") from None


def _can_edit(user) -> bool:
    return has_policy(user, Policy.EDIT_PATIENT_PROFILE)


def _summary_context(request, patient: Patient) -> dict:
    """What the patient header, the panel and the profile share."""
    zone = viewer_zone(request.user)
    return {
        "patient": patient,
        "initials": f"{(patient.preferred_name or patient.first_name)[:1]}{patient.last_name[:1]}".upper(),
        "age": patient.age(today=patient.local_now().date()),
        "language": language_name(patient.preferred_language),
        "local_time": local_time(patient, zone),
        "contacts": contact_rows(patient),
        "care_team": list(patient.care_team.all()),
        "can_edit": _can_edit(request.user),
        "viewer_zone": zone.key,
    }


def _split_encounters(
    encounters: list[Encounter], now: dt.datetime
) -> tuple[list[Encounter], list[Encounter]]:
    upcoming = [e for e in encounters if e.starts_at >= now]
    return upcoming, [e for e in encounters if e.starts_at < now]


def inbox_link_base(user) -> str | None:
    """The Inbox folder a patient's communication opens in for ``user`` (None when they have no Inbox)."""
    kinds = inboxes_for(user)
    for kind, folder in INBOX_FOR_PATIENT_COMMUNICATIONS:
        if kind in kinds:
            return reverse("careportal:inbox_folder", args=[kind.value, folder])
    return None


def _audit_view(request, patient: Patient, view: str, obj=None) -> None:
    audit.record(
        actor=request.user,
        action=AuditEvent.Action.PATIENT_VIEWED,
        patient=patient,
        obj=obj,
        request=request,
        detail={"view": view},
    )


# ---------------------------------------------------------------------------------------------------------------
# Views


@login_required
@require_GET
def patient_list(request):
    require_menu(request.user, MenuItem.PATIENTS)
    query = search_term(request.GET.get("q", ""))
    patients = patients_visible_to(request.user).order_by("last_name", "first_name", "pk")
    if query:
        patients = patients.filter(
            Q(first_name__icontains=query)
            | Q(last_name__icontains=query)
            | Q(preferred_name__icontains=query)
            | Q(mrn__iexact=query)
        )
    page = Paginator(patients, 50).get_page(request.GET.get("page"))
    rows = [{"patient": p, "language": language_name(p.preferred_language)} for p in page.object_list]
    return render(
        request,
        "careportal/patients/list.html",
        {"active_nav": "patients", "page": page, "rows": rows, "query": query},
    )


@login_required
@require_GET
def patient_panel(request, pk: int):
    """The patient panel beside a conversation. Not audited: the communication view it sits beside already is."""
    require_menu(request.user, MenuItem.INBOX)
    patient = _visible_patient(request.user, pk)
    now = timezone.now()
    upcoming, past = _split_encounters(panel_encounters(patient, now=now), now)
    context = {
        **_summary_context(request, patient),
        "upcoming": upcoming,
        "past": past,
        "can_open_profile": MenuItem.PATIENTS in role_access(request.user).menu,
    }
    if request.htmx:
        return _render(request, "careportal/patients/_panel.html", context)
    return _render(request, "careportal/patients/panel_page.html", {**context, "active_nav": "inbox"})


@login_required
@require_GET
def patient_detail(request, pk: int):
    require_menu(request.user, MenuItem.PATIENTS)
    patient = _visible_patient(request.user, pk)
    now = timezone.now()
    upcoming, past = _split_encounters(panel_encounters(patient, now=now, limit=PROFILE_ENCOUNTERS), now)
    documents = list(patient.documents.select_related("uploaded_by")[: PROFILE_DOCUMENTS + 1])
    communications = selectors.patient_communications(user=request.user, patient=patient).select_related(
        "inbound_address"
    )
    _audit_view(request, patient, "profile")
    return _render(
        request,
        "careportal/patients/detail.html",
        {
            **_summary_context(request, patient),
            "active_nav": "patients",
            "tab": "profile",
            "upcoming": upcoming,
            "past": past,
            "related_contacts": [
                (person, phone_display(person.phone) if person.phone else "")
                for person in patient.contacts.all()
            ],
            "documents": documents[:PROFILE_DOCUMENTS],
            "more_documents": len(documents) > PROFILE_DOCUMENTS,
            "recent_communications": list(communications[:PROFILE_RECENT_COMMUNICATIONS]),
            "day_ago": now - dt.timedelta(days=1),
            "inbox_base": inbox_link_base(request.user),
        },
    )


def _save_profile(*, user, form: PatientProfileForm, request) -> list[str]:
    """Save the changed fields and audit them in one transaction; returns the names of the changed fields."""
    changed = list(form.changed_data)
    if not changed:
        return []
    with transaction.atomic(durable=True):
        patient = form.save(commit=False)
        patient.save(update_fields=[*changed, "updated_at"])
        audit.record(
            actor=user,
            action=AuditEvent.Action.PATIENT_UPDATED,
            patient=patient,
            request=request,
            detail={"changed": changed},
        )
    return changed


@login_required
@require_http_methods(["GET", "POST"])
def patient_edit(request, pk: int):
    """Only a role holding Edit patient profile edits, and only a patient the user may see (403 vs 404)."""
    require_menu(request.user, MenuItem.PATIENTS)
    patient = _visible_patient(request.user, pk)
    if not _can_edit(request.user):
        raise PermissionDenied("Your role may not edit patient profiles.")
    if request.method == "POST":
        # The form writes the input onto its instance while validating: give it a copy, so that after invalid
        # input the page header still shows what is stored.
        form = PatientProfileForm(request.POST, instance=copy.copy(patient))
        if form.is_valid():
            changed = _save_profile(user=request.user, form=form, request=request)
            if changed:
                messages.success(request, f"Saved {form.instance.full_name}'s profile.")
            else:
                messages.info(request, "Nothing changed.")
            return redirect("careportal:patient_detail", pk=patient.pk)
    else:
        form = PatientProfileForm(instance=copy.copy(patient))
    return _render(
        request,
        "careportal/patients/edit.html",
        {**_summary_context(request, patient), "active_nav": "patients", "tab": "edit", "form": form},
    )


def _communication_page(qs, cursor: str):
    if cursor:
        at, last_pk = decode_cursor(cursor)
        qs = qs.filter(Q(last_message_at__lt=at) | Q(last_message_at=at, pk__lt=last_pk))
    rows = list(qs[: COMMUNICATIONS_PAGE_SIZE + 1])
    next_cursor = (
        encode_cursor(rows[COMMUNICATIONS_PAGE_SIZE - 1]) if len(rows) > COMMUNICATIONS_PAGE_SIZE else None
    )
    return rows[:COMMUNICATIONS_PAGE_SIZE], next_cursor


@login_required
@require_GET
def patient_communications(request, pk: int):
    """The patient's communication center: every communication linked to the patient, newest first, by keyset
    pages (an HTMX "Show more" appends the next page)."""
    require_menu(request.user, MenuItem.PATIENTS)
    patient = _visible_patient(request.user, pk)
    qs = selectors.patient_communications(user=request.user, patient=patient).select_related(
        "inbound_address"
    )
    cursor = request.GET.get("after", "")
    try:
        rows, next_cursor = _communication_page(qs, cursor)
    except ValueError:
        return HttpResponseBadRequest("Malformed page cursor.")
    context = {
        "patient": patient,
        "rows": rows,
        "next_cursor": next_cursor,
        "inbox_base": inbox_link_base(request.user),
        "day_ago": timezone.now() - dt.timedelta(days=1),
    }
    _audit_view(request, patient, "communications")
    if request.htmx and cursor:
        return _render(request, "careportal/patients/_communication_rows.html", context)
    totals = qs.order_by().aggregate(
        total=Count("pk"), open=Count("pk", filter=Q(status=Communication.Status.OPEN))
    )
    return _render(
        request,
        "careportal/patients/communications.html",
        {
            **_summary_context(request, patient),
            **context,
            "totals": totals,
            "active_nav": "patients",
            "tab": "communications",
        },
    )


@login_required
@require_GET
def encounter_detail(request, pk: int, encounter_pk: int):
    require_menu(request.user, MenuItem.PATIENTS)
    patient = _visible_patient(request.user, pk)
    try:
        encounter = patient.encounters.select_related("provider").get(pk=encounter_pk)
    except Encounter.DoesNotExist:
        raise Http404("No such encounter.") from None
    zone = viewer_zone(request.user)
    patient_zone = zone_or_utc(patient.time_zone)
    _audit_view(request, patient, "encounter", obj=encounter)
    return _render(
        request,
        "careportal/patients/encounter.html",
        {
            **_summary_context(request, patient),
            "active_nav": "patients",
            "tab": "profile",
            "encounter": encounter,
            "is_upcoming": encounter.starts_at >= timezone.now(),
            "duration_minutes": int((encounter.ends_at - encounter.starts_at).total_seconds() // 60),
            "same_zone": encounter.starts_at.astimezone(patient_zone).utcoffset()
            == encounter.starts_at.astimezone(zone).utcoffset(),
        },
    )
