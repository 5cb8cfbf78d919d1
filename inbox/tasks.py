"""Celery tasks: thin, idempotent wrappers around delivery and ingestion services."""

import logging
from datetime import timedelta

from celery import shared_task
from celery.signals import worker_process_init
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from . import events
from .delivery import deliver
from .models import Message, RawInbound

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


# --- Inbound ingestion -------------------------------------------------------------------------------------
SWEEP_BATCH = 2000  # rows re-enqueued per sweep: a backlog after an outage drains over a few sweeps
SWEEP_MAX_FAILED_ATTEMPTS = 5  # an item that keeps failing stops being retried and waits for a fix
# Ingestion tasks retry database outages with backoff; when retries run out the rows stay pending for the sweeper.
INGEST_TASK_OPTIONS = {
    "bind": True,
    "acks_late": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 10,
}


@shared_task(**INGEST_TASK_OPTIONS)
def process_inbound(self, raw_id: int) -> str:
    """Parse and file one raw inbound item; a processed item is a no-op, a bad one keeps its error on the row.

    Database outages are retried with backoff; when retries run out the row stays unprocessed for the sweeper.
    """
    from .ingest.pipeline import process

    return process(raw_id)


@shared_task(**INGEST_TASK_OPTIONS)
def process_pending(self) -> int:
    """File every pending raw item, in batches (``inbox.ingest.batch``); queued by ``inbox.ingest.raw.kick``.

    It first clears the "a drain is queued" mark, so an item stored from now on queues another drain if this one
    has already passed it; when its time is up with items left it queues its successor. Items it never reaches
    (a worker killed, retries run out) are the sweeper's.
    """
    from .ingest.batch import drain
    from .ingest.raw import kick, unmark_kick

    unmark_kick()
    claimed, finished = drain()
    if not finished:
        kick()
    return claimed


@worker_process_init.connect
def _publish_from_a_loop_of_its_own(**kwargs) -> None:
    """Each worker process publishes real-time hints from one event loop that keeps its Redis connection."""
    events.use_own_loop()


@shared_task
def sweep_unprocessed() -> int:
    """Re-enqueue raw items left unprocessed (broker down, worker killed) once they are older than the grace
    period: those without an error, and failed ones until they have had five attempts."""
    from .ingest.raw import enqueue

    grace = int(getattr(settings, "INBOUND_SWEEP_GRACE_SECONDS", 60))
    cutoff = timezone.now() - timedelta(seconds=grace)
    pending = (
        RawInbound.objects.filter(processed_at__isnull=True, received_at__lt=cutoff)
        .filter(Q(error="") | Q(attempts__lt=SWEEP_MAX_FAILED_ATTEMPTS))
        .order_by("received_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    queued = 0
    for raw_id in list(pending):
        if not enqueue(raw_id):
            break  # the broker is down: the next sweep tries again
        queued += 1
    if queued:
        logger.info("re-enqueued unprocessed inbound items", extra={"count": queued})
    return queued
