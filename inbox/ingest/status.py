"""Twilio status callbacks: the delivery status of an outbound SMS (sent, delivered, undelivered, failed)."""

from django.db import transaction

from inbox import events
from inbox.models import Message, RawInbound

from .common import IngestError, lock_raw, mark_processed, safe_id, safe_text

Status = Message.DeliveryStatus
TWILIO_STATUSES = {
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "read": Status.DELIVERED,
    "undelivered": Status.UNDELIVERED,
    "failed": Status.FAILED,
}
# Callbacks can arrive out of order; a status never goes back to an earlier stage.
STAGE = {Status.QUEUED: 0, Status.SENT: 1, Status.DELIVERED: 2, Status.UNDELIVERED: 2, Status.FAILED: 2}


def status_provider_id(payload) -> str:
    """One raw item per (MessageSid, status): the same callback twice is one item, each new status another."""
    sid = payload.get("MessageSid") or payload.get("SmsSid") or ""
    status = payload.get("MessageStatus") or payload.get("SmsStatus") or ""
    return f"{sid}:{status}" if sid else ""


@transaction.atomic(durable=True)
def ingest_sms_status(raw: RawInbound) -> Message | None:
    """Update the outbound message whose provider id is the callback's MessageSid.

    An unknown MessageSid is kept as an error and retried by the sweeper: the callback can overtake the commit
    of the delivery that learned the SID.
    """
    payload = raw.payload or {}
    sid = safe_id(str(payload.get("MessageSid") or payload.get("SmsSid") or ""))
    twilio_status = str(payload.get("MessageStatus") or payload.get("SmsStatus") or "").strip().lower()
    if not sid:
        raise IngestError("The status callback has no MessageSid.")
    raw = lock_raw(raw.pk)
    if raw.processed_at is not None:
        return raw.message
    message = (
        Message.objects.select_for_update(of=("self",))
        .select_related("communication")
        .filter(direction=Message.Direction.OUTBOUND, provider_id=sid)
        .first()
    )
    if message is None:
        raise IngestError(f"No outbound message has the MessageSid {sid} (yet).")
    new_status = TWILIO_STATUSES.get(twilio_status)
    if new_status and STAGE[new_status] > STAGE.get(message.delivery_status, 0):
        error_code = str(payload.get("ErrorCode") or "").strip()
        error_text = str(payload.get("ErrorMessage") or "").strip()
        message.delivery_status = new_status
        message.delivery_error = (
            safe_text(
                " ".join(filter(None, [f"Twilio error {error_code}" if error_code else "", error_text]))
            )
            if new_status in (Status.UNDELIVERED, Status.FAILED)
            else ""
        )
        message.save(update_fields=["delivery_status", "delivery_error"])
        events.publish_communication_changed(message.communication, kind="delivery")
    mark_processed(raw, message)
    return message
