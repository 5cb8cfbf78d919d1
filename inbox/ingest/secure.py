"""Replies written on the secure message page: filed as secure inbound messages of the communication the patient
verified for, through the same raw-first pipeline as email and SMS (DESIGN.md: Secure email)."""

from dataclasses import dataclass
from types import SimpleNamespace

from django.db import transaction

from careportal.models import ContactKind
from inbox import audit, events
from inbox.models import Communication, Message, RawInbound
from inbox.sanitize import text_to_html
from inbox.secure import MAX_REPLY_CHARS, VIA, patient_label
from inbox.services import apply_inbound

from .common import IngestError, lock_raw, mark_processed, safe_text
from .recognize import normalize_email


@dataclass(frozen=True)
class SecureReply:
    communication_id: int
    text: str
    sender_address: str


def parse_secure_reply(raw: RawInbound) -> SecureReply:
    """The payload stored by the page: ``communication_id``, ``text`` and ``sender_address`` (the verified
    address on file)."""
    payload = raw.payload if isinstance(raw.payload, dict) else {}
    communication_id = payload.get("communication_id")
    if not isinstance(communication_id, int) or isinstance(communication_id, bool):
        raise IngestError("The secure reply names no communication.")
    text = safe_text(str(payload.get("text") or "")).strip()
    if not text:
        raise IngestError("The secure reply has no text.")
    if len(text) > MAX_REPLY_CHARS:
        raise IngestError(f"The secure reply is longer than {MAX_REPLY_CHARS} characters.")
    sender = normalize_email(str(payload.get("sender_address") or ""))
    if "@" not in sender:
        raise IngestError("The secure reply has no sender address.")
    if not raw.provider_id:
        raise IngestError("The secure reply has no provider id.")
    return SecureReply(communication_id=communication_id, text=text, sender_address=sender[:254])


def ingest_secure_reply(raw: RawInbound) -> Message:
    """File one reply from the secure message page; the same item twice gives one message."""
    return _file_secure_reply(raw.pk, parse_secure_reply(raw))


def _sender_name(communication: Communication, address: str) -> str:
    """The patient's name when the address is theirs; the contact's when it is a contact's."""
    patient, contact = communication.patient, communication.contact
    if contact is not None and contact.email == address:
        return contact.full_name
    if patient.contact_methods.filter(kind=ContactKind.EMAIL, value=address).exists():
        return patient.full_name
    named = patient.contacts.filter(email=address).first()
    return named.full_name if named is not None else patient.full_name


@transaction.atomic(durable=True)
def _file_secure_reply(raw_id: int, reply: SecureReply) -> Message:
    """Store the inbound secure message, reopen the communication, audit as the patient, publish on commit.

    The communication keeps its channel (an email conversation stays one); the message is marked ``is_secure``
    with the provider "Secure message page", which is how the Inbox shows a Secure Email message.
    """
    raw = lock_raw(raw_id)
    if raw.processed_at is not None:
        return raw.message
    existing = Message.objects.filter(
        provider=Message.Provider.SECURE_PORTAL, provider_id=raw.provider_id
    ).first()
    if existing is not None:
        mark_processed(raw, existing)
        return existing
    communication = (
        Communication.objects.select_for_update(of=("self",))
        .select_related("patient", "contact")
        .filter(pk=reply.communication_id)
        .first()
    )
    if communication is None or communication.patient_id is None:
        raise IngestError(
            f"Communication {reply.communication_id} does not exist or is not linked to a patient."
        )
    message = Message.objects.create(
        communication=communication,
        direction=Message.Direction.INBOUND,
        sender_name=_sender_name(communication, reply.sender_address)[:200],
        sender_address=reply.sender_address,
        subject=communication.subject if communication.is_email else "",  # the patient writes no subject
        body_text=reply.text,
        body_html=text_to_html(reply.text),
        is_secure=True,
        provider=Message.Provider.SECURE_PORTAL,
        provider_id=raw.provider_id,
        delivery_status=Message.DeliveryStatus.RECEIVED,
        created_at=raw.received_at,
    )
    apply_inbound(communication, message)
    envelope = raw.envelope if isinstance(raw.envelope, dict) else {}
    origin = SimpleNamespace(  # where the patient wrote from, as the page saw it
        META={
            "REMOTE_ADDR": envelope.get("remote_addr") or "",
            "HTTP_USER_AGENT": envelope.get("user_agent") or "",
        }
    )
    audit.record(
        actor=None, action=audit.Action.MESSAGE_RECEIVED, request=origin, communication=communication,
        obj=message, actor_label=patient_label(reply.sender_address),
        detail={
            "channel": communication.channel, "provider": message.provider, "raw_id": raw.pk, "via": VIA,
            "secure": True,
        },
    )  # fmt: skip
    mark_processed(raw, message)
    events.publish_communication_changed(communication, kind="message")
    return message
