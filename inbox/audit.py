"""Writing audit events. Callers run it inside their own transaction so the event commits with the change."""

from inbox.models import AuditEvent
from inbox_project import proxies
from inbox_project.unstorable import storable

Action = AuditEvent.Action


def client_ip(request) -> str | None:
    """The client's address by the trusted-proxies rule (``inbox_project.proxies``)."""
    return proxies.client_ip(request)


def record(**fields) -> AuditEvent:
    """Append one audit event (who, what, which patient, when, from where); ``fields`` as ``build`` takes them."""
    event = build(**fields)
    event.save(force_insert=True)
    return event


def build(
    *,
    actor,
    action: str,
    request=None,
    patient=None,
    communication=None,
    obj=None,
    actor_label: str = "",
    detail: dict | None = None,
) -> AuditEvent:
    """One audit event, not yet saved (``record`` saves it; batch ingestion saves a batch's with one INSERT)."""
    if communication is not None and patient is None:
        patient = communication.patient
    user = actor if getattr(actor, "is_authenticated", False) else None
    return AuditEvent(
        actor=user,
        actor_label=actor_label or (user.full_name if user else ""),
        action=action,
        patient=patient,
        communication=communication,
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        detail=detail or {},
        ip=client_ip(request),
        user_agent=(storable(request.META.get("HTTP_USER_AGENT", ""))[:400] if request is not None else ""),
    )
