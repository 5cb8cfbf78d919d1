"""The one access rule: which patients (and so which communications) a user may see.

Every page, partial, WebSocket group, assignee list and API view goes through this module.
"""

from django.db.models import BooleanField, Exists, Expression, OuterRef, Q, QuerySet

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
    return _remembered(
        user, ("patient", prefix), lambda full_patient: _build_patient_q(user, prefix, full_patient)
    )


def _remembered(user, key: tuple, build):
    """``build(full_patient)``, kept on the user object (a request's ``request.user``, a socket's user) like the role
    access and regions that decide it (``designer.selectors.role_access``, ``_region_ids``). Building these ``Q``s
    (correlated sub-queries) costs milliseconds of ORM work, and a page asks for them several times (rows, counts,
    the open conversation). Care teams and grants are read by the query itself, so a remembered ``Q`` never goes
    stale with them."""
    remembered = user.__dict__.setdefault("_access_q", {})
    if key not in remembered:
        remembered[key] = build(has_policy(user, Policy.INBOX_FULL_PATIENT))
    return remembered[key]


def _build_patient_q(user, prefix: str, full_patient: bool) -> Q | None:
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
    if full_patient:
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

    q = _communications_q(user)
    if q is None:
        return Communication.objects.all()
    if q is NOBODY:
        return Communication.objects.none()
    condition = _remembered(user, ("communication-sql",), lambda _: CompiledCondition.of(Communication, q))
    return Communication.objects.filter(q if condition is None else condition)


class CompiledCondition(Expression):
    """A ``WHERE`` condition on ``model``'s table compiled to SQL once and reused by every query built on it.

    The access rule for a user without Inbox Full Patient is five correlated sub-queries; Django compiles them
    again for every query (about 3 ms of CPU each time, several times a page: rows, counts, the conversation).
    The SQL names the table by its own name, which is the alias of a query's base table, so it is valid as long as
    the query is not nested in another one; nesting relabels aliases (``relabeled_clone``), and then the
    resolved condition it came from is used instead and compiled as usual. ``tests/careportal/test_access.py``
    holds the rule nested, combined and against care-team changes.
    """

    conditional = True
    output_field = BooleanField()

    def __init__(self, query, using: str, sql: str, params: tuple):
        super().__init__()
        self.where, self.subq_aliases = query.where, query.subq_aliases
        self.using, self.sql, self.params = using, sql, params

    @classmethod
    def of(cls, model, q: Q) -> "CompiledCondition | None":
        """The condition ``q`` compiled, or ``None`` when it joins other tables (a region rule reads the patient's
        table): a join must be part of the query, not of its ``WHERE``."""
        query = model.objects.filter(q).query
        if len(query.alias_map) > 1:
            return None
        using = model.objects.db
        sql, params = query.get_compiler(using=using).compile(query.where)
        return cls(query, using, sql, tuple(params))

    def resolve_expression(self, query=None, *args, **kwargs):
        if query is not None:
            # What the condition's own query knew: its base table is in use (so nesting renames it and calls
            # relabeled_clone) and which alias prefixes its sub-queries took (so nesting picks another one).
            query.get_initial_alias()
            query.subq_aliases = query.subq_aliases | self.subq_aliases
        return self

    def as_sql(self, compiler, connection):
        if connection.alias != self.using:
            return compiler.compile(self.where)
        return self.sql, list(self.params)

    def relabeled_clone(self, change_map):
        return self.where.relabeled_clone(change_map)


def _communications_q(user) -> Q | None:
    patient_q = _patient_q(user, "patient__")
    if patient_q is None or patient_q is NOBODY:
        return patient_q
    return _remembered(
        user, ("communication",), lambda full_patient: _build_communications_q(user, full_patient)
    )


def _build_communications_q(user, full_patient: bool) -> Q:
    from inbox.models import Communication

    Candidate = Communication.candidate_patients.through
    unrecognized = Q(assignee=user) | Q(
        Exists(Candidate.objects.filter(_patient_q(user, "patient__"), communication_id=OuterRef("pk")))
    )
    if full_patient:
        unrecognized |= ~Q(Exists(Candidate.objects.filter(communication_id=OuterRef("pk"))))
    return (Q(is_unrecognized=False) & _patient_q(user, "patient__")) | (
        Q(is_unrecognized=True) & unrecognized
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
