"""Durable storage of inbound items exactly as received, before anything acknowledges them, and their hand-off
to the processing task after commit."""

import hashlib
import logging
from email import policy
from email.parser import BytesHeaderParser

from django.db import IntegrityError, transaction

from inbox.models import RawInbound

from .common import safe_text

logger = logging.getLogger(__name__)
PROVIDER_ID_MAX = 255
HEADER_SCAN_BYTES = 1024 * 1024  # the Message-ID is in the header block; do not scan a 25 MB body for it


def email_provider_id(raw: bytes) -> str:
    """The id that makes an email idempotent: its Message-ID, or a digest of the bytes when it has none.

    Message-IDs longer than the column are digested too, so two different long ids never collide by truncation.
    """
    message_id = ""
    try:
        headers = BytesHeaderParser(policy=policy.compat32).parsebytes(raw[:HEADER_SCAN_BYTES])
        message_id = safe_text(" ".join(str(headers.get("Message-ID", "") or "").split()))
    except Exception:  # a header block too broken to read still gets an id: the digest of the bytes
        logger.info("could not read Message-ID of an inbound email", exc_info=True)
    if message_id and len(message_id) <= PROVIDER_ID_MAX:
        return message_id
    return "sha256:" + hashlib.sha256(message_id.encode() if message_id else raw).hexdigest()


def enqueue(raw_id: int) -> bool:
    """Queue processing of one raw item; a broker that is down is logged, not raised (the sweeper retries).

    In eager mode the task runs here; its failure is recorded on the raw item and must not fail the caller.
    """
    from inbox.tasks import process_inbound

    try:
        process_inbound.delay(raw_id)
    except Exception:
        logger.exception(
            "could not enqueue inbound processing; the sweeper will retry", extra={"raw_id": raw_id}
        )
        return False
    return True


def store_raw(
    *,
    source: str,
    provider_id: str = "",
    raw: bytes = b"",
    payload: dict | None = None,
    envelope: dict | None = None,
) -> tuple[RawInbound, bool]:
    """Store one inbound item in its own transaction and queue its processing after commit.

    Returns ``(row, created)``. The same provider id twice returns the row stored the first time (a provider
    retrying a delivery we already hold); it is queued again only while it is still unprocessed.
    Database errors propagate: the caller must then refuse the item (HTTP 503, SMTP 451) so the sender retries.
    """
    provider_id = provider_id[:PROVIDER_ID_MAX]
    # Insert first and let the unique constraint find a duplicate: a new item (the usual case) costs one INSERT
    # and the commit, nothing more, which is what the sender waits for.
    try:
        with transaction.atomic(durable=True):
            row = RawInbound.objects.create(
                source=source,
                provider_id=provider_id,
                raw=raw,
                payload=payload or {},
                envelope=envelope or {},
            )
            transaction.on_commit(lambda: enqueue(row.pk))
    except IntegrityError:
        if not provider_id:
            raise
        # A provider retrying a delivery we already hold (or the same item arriving twice at once).
        row = RawInbound.objects.defer("raw", "payload", "envelope").get(
            source=source, provider_id=provider_id
        )
        if row.processed_at is None:
            enqueue(row.pk)
        return row, False
    return row, True


def requeue(raw: RawInbound) -> None:
    """Process an item again after a fix (ingestion health): clears its error and attempt count."""
    RawInbound.objects.filter(pk=raw.pk, processed_at__isnull=True).update(error="", attempts=0)
    enqueue(raw.pk)
