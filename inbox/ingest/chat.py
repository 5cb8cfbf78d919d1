"""Live chat messages written on the patient's chat page: filed as inbound messages of the patient's chat
communication (created with the first message), through the same raw-first pipeline as email and SMS; outside
business hours the first message of a closed period gets an automatic reply (DESIGN.md: Live chat)."""

import logging
from dataclasses import dataclass
from types import SimpleNamespace

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from careportal import chat, chat_hours
from careportal.models import Contact, Patient
from inbox import audit, events
from inbox.models import Channel, Communication, Message, RawInbound
from inbox.services import apply_inbound

from .common import IngestError, lock_raw, mark_processed, safe_text

logger = logging.getLogger(__name__)
AUTO_REPLY_LABEL = "Chat auto-reply"


@dataclass(frozen=True)
class ChatItem:
    patient_id: int
    contact_id: int | None
    text: str


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def parse_chat_item(raw: RawInbound) -> ChatItem:
    """The payload stored by the chat page: ``patient_id``, ``contact_id`` (or null), ``client_id``, ``text``."""
    payload = raw.payload if isinstance(raw.payload, dict) else {}
    patient_id, contact_id = payload.get("patient_id"), payload.get("contact_id")
    if not _is_id(patient_id):
        raise IngestError("The chat message names no patient.")
    if contact_id is not None and not _is_id(contact_id):
        raise IngestError("The chat message names an invalid contact.")
    text = safe_text(str(payload.get("text") or "")).strip()
    if not text:
        raise IngestError("The chat message has no text.")
    if len(text) > chat.MAX_MESSAGE_CHARS:
        raise IngestError(f"The chat message is longer than {chat.MAX_MESSAGE_CHARS} characters.")
    if not raw.provider_id:
        raise IngestError("The chat message has no client id.")
    return ChatItem(patient_id=patient_id, contact_id=contact_id, text=text)


def ingest_chat(raw: RawInbound) -> Message:
    """File one message from the chat page; the same client id twice gives one message."""
    return _file_chat(raw.pk, parse_chat_item(raw))


def _communication_for(patient: Patient, contact: Contact | None) -> tuple[Communication, bool]:
    """The patient's (or contact's) chat, locked; created with the first message. The patient row is locked first
    so two first messages at once make one communication."""
    Patient.objects.select_for_update().filter(pk=patient.pk).first()
    communication = (
        chat.chat_communications(patient.pk, contact.pk if contact else None).select_for_update().first()
    )
    if communication is not None:
        return communication, False
    now = timezone.now()
    communication = Communication.objects.create(
        channel=Channel.CHAT, patient=patient, contact=contact, counterpart=chat.chat_counterpart(patient, contact),
        subject="Live chat", status=Communication.Status.OPEN, opened_at=now, created_at=now,
    )  # fmt: skip
    return communication, True


@transaction.atomic(durable=True)
def _file_chat(raw_id: int, item: ChatItem) -> Message:
    """Store the inbound chat message, reopen the communication, audit as the patient, answer out of hours, publish
    on commit — and tell the page that sent it which communication it is in (its first message made it)."""
    raw = lock_raw(raw_id)
    if raw.processed_at is not None:
        return raw.message
    existing = Message.objects.filter(provider=Message.Provider.CHAT, provider_id=raw.provider_id).first()
    if existing is not None:
        mark_processed(raw, existing)
        return existing
    patient = Patient.objects.filter(pk=item.patient_id).first()
    if patient is None:
        raise IngestError(f"Patient {item.patient_id} does not exist.")
    contact = None
    if item.contact_id is not None:
        contact = Contact.objects.filter(pk=item.contact_id, patient=patient).first()
        if contact is None:
            raise IngestError(f"Contact {item.contact_id} is not a contact of patient {patient.pk}.")
    communication, created = _communication_for(patient, contact)
    message = Message.objects.create(
        communication=communication,
        direction=Message.Direction.INBOUND,
        sender_name=(contact.full_name if contact else patient.full_name)[:200],
        sender_address=communication.counterpart[:254],
        body_text=item.text,
        provider=Message.Provider.CHAT,
        provider_id=raw.provider_id,
        delivery_status=Message.DeliveryStatus.RECEIVED,
        created_at=raw.received_at,
    )
    apply_inbound(communication, message)
    envelope = raw.envelope if isinstance(raw.envelope, dict) else {}
    origin = SimpleNamespace(  # where the patient wrote from, as the chat page's connection saw it
        META={
            "REMOTE_ADDR": envelope.get("remote_addr") or "",
            "HTTP_USER_AGENT": envelope.get("user_agent") or "",
        }
    )
    audit.record(
        actor=None, action=audit.Action.MESSAGE_RECEIVED, request=origin, communication=communication, obj=message,
        actor_label=chat.PATIENT_LABEL if contact is None else f"contact {contact.full_name}"[:200],
        detail={
            "channel": communication.channel, "provider": message.provider, "raw_id": raw.pk, "via": chat.VIA,
            "new_communication": created,
        },
    )  # fmt: skip
    _answer_out_of_hours(communication, message)
    mark_processed(raw, message)
    events.publish_communication_changed(communication, kind="message")
    _tell_page(envelope.get("reply_channel"), communication.pk)
    return message


def _answer_out_of_hours(communication: Communication, message: Message) -> Message | None:
    """Outside business hours (Admin setting), the first patient message of a closed period gets an automatic reply
    saying when the team will answer. Judged at the time the patient wrote, not when the worker got to it.

    The reply is delivered over the chat page's WebSocket like any staff message; it does not become the
    communication's last message, so the Inbox keeps showing the patient's words and the conversation stays Open.
    """
    hours = chat_hours.business_hours()
    at = message.created_at
    if hours.is_open(at):
        return None
    already = communication.messages.filter(
        direction=Message.Direction.OUTBOUND, is_auto_reply=True, created_at__gte=hours.closed_since(at)
    ).exists()
    if already:
        return None
    now = timezone.now()
    reply = Message.objects.create(
        communication=communication,
        direction=Message.Direction.OUTBOUND,
        author=None,
        recipient_address=communication.counterpart[:254],
        body_text=chat_hours.out_of_hours_text(hours, at, communication.patient.time_zone),
        is_auto_reply=True,
        provider=Message.Provider.CHAT,
        delivery_status=Message.DeliveryStatus.SENT,
        created_at=at,  # beside the message it answers; also how the next message finds it in the closed period
        sent_at=now,
    )
    audit.record(
        actor=None, action=audit.Action.MESSAGE_SENT, communication=communication, obj=reply,
        actor_label=AUTO_REPLY_LABEL,
        detail={"channel": communication.channel, "auto_reply": True, "reason": "outside business hours"},
    )  # fmt: skip
    return reply


def _tell_page(reply_channel, communication_id: int) -> None:
    """After commit, a hint to the WebSocket that sent the message: "your chat is communication N". The page's first
    message creates the communication, so the page could not join its group before; it checks and joins now."""
    if not isinstance(reply_channel, str) or not reply_channel:
        return

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            async_to_sync(layer.send)(
                reply_channel, {"type": "chat.filed", "communication_id": communication_id}
            )
        except Exception:  # a hint that cannot be delivered must never break the filing it follows
            logger.warning("could not tell the chat page about its communication", exc_info=True)

    transaction.on_commit(send)
