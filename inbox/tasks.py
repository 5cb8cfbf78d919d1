"""Celery tasks: thin, idempotent wrappers around delivery and ingestion services."""

import logging

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from . import events
from .delivery import deliver
from .models import Message

logger = logging.getLogger(__name__)
DONE = {Message.DeliveryStatus.SENT, Message.DeliveryStatus.DELIVERED}


@shared_task(bind=True, acks_late=True, max_retries=5, default_retry_delay=30)
def deliver_message(self, message_id: int) -> str:
    """Deliver one outbound message; safe to run twice (a sent message is not sent again)."""
    with transaction.atomic():
        message = (
            Message.objects.select_for_update(of=("self",))
            .select_related("communication", "communication__sending_line", "communication__inbound_address")
            .get(pk=message_id)
        )
        if message.delivery_status in DONE or message.direction != Message.Direction.OUTBOUND:
            return message.delivery_status
        if message.is_internal_note:
            return "internal"
        try:
            provider_id = deliver(message)
        except Exception as exc:
            message.delivery_status = Message.DeliveryStatus.FAILED
            message.delivery_error = f"{exc.__class__.__name__}: {exc}"[:2000]
            message.save(update_fields=["delivery_status", "delivery_error"])
            logger.warning(
                "delivery failed", extra={"message_id": message_id, "error": message.delivery_error}
            )
        else:
            message.delivery_status = Message.DeliveryStatus.SENT
            message.delivery_error = ""
            message.sent_at = timezone.now()
            if provider_id and not message.provider_id:
                message.provider_id = provider_id
            message.save(update_fields=["delivery_status", "delivery_error", "sent_at", "provider_id"])
        events.publish_communication_changed(message.communication, kind="delivery")
    return message.delivery_status
