"""Processing one raw item: dispatch by source to its ingest service; a failure is kept on the raw item (with the
attempt counted) instead of being raised, except database outages, which the task retries."""

import logging

from django.db import IntegrityError, InterfaceError, OperationalError
from django.db.models import F

from inbox.models import RawInbound

from .chat import ingest_chat
from .common import IngestError, safe_text
from .email import ingest_email
from .secure import ingest_secure_reply
from .sms import ingest_sms
from .status import ingest_sms_status

logger = logging.getLogger(__name__)

INGESTERS = {
    RawInbound.Source.SMTP: ingest_email,
    RawInbound.Source.EMAIL_WEBHOOK: ingest_email,
    RawInbound.Source.TWILIO_SMS: ingest_sms,
    RawInbound.Source.TWILIO_STATUS: ingest_sms_status,
    RawInbound.Source.SECURE_REPLY: ingest_secure_reply,
    RawInbound.Source.CHAT: ingest_chat,
}
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


def record_failure(raw_id: int, error: str) -> None:
    # The error may quote received text (a NUL in a MessageSid): kept storable, or recording it would fail too.
    RawInbound.objects.filter(pk=raw_id, processed_at__isnull=True).update(
        error=safe_text(error)[:4000], attempts=F("attempts") + 1
    )


def process(raw_id: int) -> str:
    """Process one raw item; safe to run any number of times (a processed item is left alone).

    Returns "processed", "already processed", "failed" or "missing". Raises only transient database errors.
    """
    raw = RawInbound.objects.filter(pk=raw_id).first()
    if raw is None:
        return "missing"
    if raw.processed_at is not None:
        return "already processed"
    ingester = INGESTERS.get(raw.source)
    if ingester is None:
        record_failure(raw_id, f"No ingestion is configured for {raw.get_source_display()} items.")
        return "failed"
    try:
        try:
            ingester(raw)
        except IntegrityError:
            # Another worker filed the same provider id at the same moment; the second run finds its message.
            raw.refresh_from_db()
            ingester(raw)
    except TRANSIENT_ERRORS:
        raise
    except IngestError as exc:
        logger.info("inbound item not filed", extra={"raw_id": raw_id, "error": str(exc)})
        record_failure(raw_id, str(exc))
        return "failed"
    except Exception as exc:
        logger.exception("inbound item failed", extra={"raw_id": raw_id})
        record_failure(raw_id, f"Unexpected error: {exc.__class__.__name__}: {exc}")
        return "failed"
    return "processed"
