"""The one access rule: which patients (and so which communications) a user may see.

Every page, partial, WebSocket group, assignee list and API view goes through this module.
"""

from django.db.models import Exists, OuterRef, Q, QuerySet

from designer.models import Policy
from designer.selectors import has_policy

from .models import CareTeamMember, Patient, PatientUserObjectPermission

VIEW_PATIENT = "view_patient"
NOBODY = Q(pk__in=[])


def _region_ids(user) -> list[int]:
    """The user's regions, read once per user object (a request's ``request.user``)."""
    cached = getattr(user, "_region_ids", None)
    if cached is None:
        cached = user._region_ids = list(user.regions.values_list("pk", flat=True))
    return cached


def _patient_q(user, prefix: str) -> Q | None:
    """A ``Q`` restricting ``<prefix>`` patients to the ones ``user`` may see; ``None`` means every patient.

    A user sees a patient when any of these holds:
    - they are on the patient's care team;
    - their role holds **Inbox Full Patient** in the published configuration — every patient, or only the
      patients of their regions when they have regions;
    - they hold an explicit django-guardian ``view_patient`` grant on that patient.
    Inactive and anonymous users see nobody.
    """
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return NOBODY
    # Correlated EXISTS rather than IN (sub-select): PostgreSQL can then check a handful of rows by index when a
    # folder is read newest-first with LIMIT, instead of hashing the user's whole care team on every query.
    outer = OuterRef("pk") if not prefix else OuterRef(f"{prefix[:-2]}_id")
    granted = Q(
        Exists(
            PatientUserObjectPermission.objects.filter(
                user=user, permission__codename=VIEW_PATIENT, content_object_id=outer
            )
        )
    )
    on_team = Q(Exists(CareTeamMember.objects.filter(user=user, patient_id=outer)))
    if has_policy(user, Policy.INBOX_FULL_PATIENT):
        region_ids = _region_ids(user)
        if not region_ids:
            return None
        # Regions narrow Full Patient only; the care team and explicit grants still count on their own.
        return Q(**{f"{prefix}region_id__in": region_ids}) | on_team | granted
    return on_team | granted


def patients_visible_to(user) -> QuerySet[Patient]:
    q = _patient_q(user, "")
    return Patient.objects.all() if q is None else Patient.objects.filter(q)


def can_view_patient(user, patient: Patient | int | None) -> bool:
    if patient is None:
        return False
    patient_id = patient if isinstance(patient, int) else patient.pk
    return patients_visible_to(user).filter(pk=patient_id).exists()


def communications_visible_to(user):
    """Communications the user may see, derived from the patient rule.

    Linked: the patient is visible. Unrecognized (no patient yet): assigned to the user, or at least one
    candidate patient is visible, or — for holders of Inbox Full Patient — there are no candidates at all
    (an unknown sender concerns no known patient, and somebody must triage it).
    """
    from inbox.models import Communication

    patient_q = _patient_q(user, "patient__")
    if patient_q is None:
        return Communication.objects.all()
    if patient_q is NOBODY:
        return Communication.objects.none()
    Candidate = Communication.candidate_patients.through
    candidate_q = _patient_q(user, "patient__")
    unrecognized = Q(assignee=user) | Q(
        Exists(Candidate.objects.filter(candidate_q, communication_id=OuterRef("pk")))
    )
    if has_policy(user, Policy.INBOX_FULL_PATIENT):
        unrecognized |= ~Q(Exists(Candidate.objects.filter(communication_id=OuterRef("pk"))))
    return Communication.objects.filter(
        (Q(is_unrecognized=False) & patient_q) | (Q(is_unrecognized=True) & unrecognized)
    )


def can_view_communication(user, communication) -> bool:
    return communications_visible_to(user).filter(pk=communication.pk).exists()


def users_who_can_view(patient_ids) -> Q:
    """A ``Q`` over users: those who may see at least one of ``patient_ids`` — the same rule, read the other way.

    Used for assignee lists and for routing real-time events; it must agree with ``patients_visible_to``.
    """
    from designer.selectors import role_keys_with_policy

    patient_ids = list(patient_ids)
    if not patient_ids:
        return NOBODY
    full_roles = role_keys_with_policy(Policy.INBOX_FULL_PATIENT)
    patient_regions = list(
        Patient.objects.filter(pk__in=patient_ids, region__isnull=False).values_list("region_id", flat=True)
    )
    return (
        Q(pk__in=CareTeamMember.objects.filter(patient_id__in=patient_ids).values("user_id"))
        | Q(
            pk__in=PatientUserObjectPermission.objects.filter(
                content_object_id__in=patient_ids, permission__codename=VIEW_PATIENT
            ).values("user_id")
        )
        | (Q(role__in=full_roles) & (Q(regions__isnull=True) | Q(regions__in=patient_regions)))
    )
