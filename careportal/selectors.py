"""Reads of the Care Portal: the patient panel, encounters, a patient's communications."""

from django.db.models import QuerySet
from django.utils import timezone

from .access import patients_visible_to
from .models import Encounter, Patient

PANEL_ENCOUNTERS = 5


def patient_for(*, user, pk) -> Patient:
    """A patient the user may see (``Patient.DoesNotExist`` otherwise, which views turn into 404)."""
    return (
        patients_visible_to(user)
        .select_related("region")
        .prefetch_related("contact_methods", "contacts", "care_team__user")
        .get(pk=pk)
    )


def panel_encounters(patient: Patient, *, now=None, limit: int = PANEL_ENCOUNTERS) -> list[Encounter]:
    """Up to five encounters: upcoming from now first (soonest first), then the most recent past ones to make five."""
    now = now or timezone.now()
    base = patient.encounters.select_related("provider")
    upcoming = list(base.filter(starts_at__gte=now).order_by("starts_at", "pk")[:limit])
    past = (
        list(base.filter(starts_at__lt=now).order_by("-starts_at", "-pk")[: limit - len(upcoming)])
        if len(upcoming) < limit
        else []
    )
    return upcoming + past


def patient_communications(*, user, patient: Patient) -> QuerySet:
    """The patient's communication center: every communication linked to the patient, newest first."""
    from inbox.models import Communication

    if not patients_visible_to(user).filter(pk=patient.pk).exists():
        return Communication.objects.none()
    return (
        Communication.objects.filter(patient=patient)
        .select_related("sending_line", "assignee", "contact")
        .order_by("-last_message_at", "-id")
    )


PATIENT_SEARCH_LIMIT = 20


def search_visible_patients(user, term: str, *, limit: int = PATIENT_SEARCH_LIMIT) -> list[Patient]:
    """Visible patients by name (every word), MRN, email or phone number — for Link and New message."""
    from django.db.models import Q

    from inbox.selectors import normalize_phone, search_term

    term = search_term(term)
    if not term:
        return []
    by_name = Q()
    for word in term.split()[:4]:
        by_name &= (
            Q(first_name__icontains=word) | Q(last_name__icontains=word) | Q(preferred_name__icontains=word)
        )
    q = by_name | Q(mrn__iexact=term) | Q(contact_methods__value__iexact=term.lower())
    phone = normalize_phone(term)
    if phone:
        q |= Q(contact_methods__value=phone)
    matches = patients_visible_to(user).filter(q).values("pk").distinct()
    return list(
        Patient.objects.filter(pk__in=matches)
        .prefetch_related("contacts", "contact_methods")
        .order_by("last_name", "first_name", "pk")[:limit]
    )


def visible_candidates(user, communication) -> list[Patient]:
    """The candidate patients of an Unrecognized communication that this user may see, with their contacts."""
    return list(
        patients_visible_to(user)
        .filter(pk__in=communication.candidate_patients.values("pk"))
        .prefetch_related("contacts", "contact_methods")
        .order_by("last_name", "first_name", "pk")
    )
