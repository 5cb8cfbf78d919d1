"""Durable storage of inbound items exactly as received, before anything acknowledges them, and their hand-off
to the processing task after commit."""

import hashlib
import logging
from email import policy
from email.parser import BytesHeaderParser

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.db import IntegrityError, transaction
from django.db.models import sql
from django.db.models.constants import OnConflict

from inbox.models import RawInbound

from .common import ID_MAX, safe_id

logger = logging.getLogger(__name__)
PROVIDER_ID_MAX = ID_MAX
HEADER_SCAN_BYTES = 1024 * 1024  # the Message-ID is in the header block; do not scan a 25 MB body for it


def email_provider_id(raw: bytes) -> str:
    """The id that makes an email idempotent: its Message-ID, or a digest of the bytes when it has none.

    Message-IDs longer than the column or holding what the database cannot store (a NUL) are digested
    (``safe_id``), so two different ids never collide by truncation or cleaning.
    """
    message_id = ""
    try:
        headers = BytesHeaderParser(policy=policy.compat32).parsebytes(raw[:HEADER_SCAN_BYTES])
        message_id = " ".join(str(headers.get("Message-ID", "") or "").split())
        message_id = message_id.encode("utf-8", "surrogateescape").decode("utf-8")  # 8-bit ids read as UTF-8
    except UnicodeError:  # not UTF-8: digested as received
        pass
    except Exception:  # a header block too broken to read still gets an id: the digest of the bytes
        logger.info("could not read Message-ID of an inbound email", exc_info=True)
    if message_id:
        return safe_id(message_id)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


KICK_KEY = "inbox:ingest:drain-queued"
KICK_SECONDS = 10  # the mark outlives a lost drain task by at most this long (then items queue a new one)


def enqueue(raw_id: int) -> bool:
    """Ask for one stored raw item to be processed; a broker that is down is logged, not raised (the sweeper
    retries).

    With a worker, one ``process_pending`` drain is queued unless one is already queued and not yet started
    (``kick``): that drain files this item with the others in batches. In eager mode (no broker: the embedded
    default and the tests) the item's own task runs here; its failure is recorded on the raw item and must not
    fail the caller.
    """
    from inbox.tasks import process_inbound

    if not _eager():
        return kick()
    try:
        process_inbound.delay(raw_id)
    except Exception:
        logger.exception(
            "could not enqueue inbound processing; the sweeper will retry", extra={"raw_id": raw_id}
        )
        return False
    return True


def _eager() -> bool:
    from inbox_project.celery import app

    return bool(app.conf.task_always_eager)


def kick() -> bool:
    """Queue a ``process_pending`` drain unless one is already queued and has not started yet.

    The mark (``KICK_KEY`` in the shared cache, set atomically) is cleared by the drain when it starts, before it
    reads the pending items; so an item committed while the mark is set is read by that drain, and one committed
    after it was cleared queues the next. A lost drain (its worker killed, Redis restarted) holds the mark for at
    most ``KICK_SECONDS``; the items it would have filed wait for the next drain or the sweeper.
    """
    from inbox.tasks import process_pending

    try:
        if not _cache().add(KICK_KEY, 1, KICK_SECONDS):
            return True  # a drain is queued and will read this item
    except Exception:
        logger.warning("could not read the drain mark; queuing a drain", exc_info=True)
    try:
        process_pending.delay()
    except Exception:
        logger.exception("could not enqueue inbound processing; the sweeper will retry")
        unmark_kick()
        return False
    return True


_shared: dict = {}


def _cache():
    """The default cache, one instance per process: ``django.core.cache.cache`` is one per request context under
    ASGI, and a Redis cache instance opens its own connection pool, so every webhook paid a Redis connect."""
    if "cache" not in _shared:
        _shared["cache"] = caches.create_connection(DEFAULT_CACHE_ALIAS)
    return _shared["cache"]


def unmark_kick() -> None:
    try:
        _cache().delete(KICK_KEY)
    except Exception:  # the cache is down: the mark (if any) expires by itself
        logger.warning("could not clear the drain mark", exc_info=True)


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
    retrying a delivery we already hold); it is queued again only while it is still unprocessed. Any text fits:
    ``payload`` and ``envelope`` keep NUL and lone surrogates (``LosslessJSONField``), and a provider id the column
    cannot hold as sent is stored as its digest (``safe_id``).
    Database errors propagate: the caller must then refuse the item (HTTP 503, SMTP 451) so the sender retries.
    """
    provider_id = safe_id(provider_id)
    row = RawInbound(
        source=source, provider_id=provider_id, raw=raw, payload=payload or {}, envelope=envelope or {}
    )
    # One statement, INSERT … ON CONFLICT DO NOTHING RETURNING id: a new item (the usual case) costs one round trip,
    # committed (and flushed to disk) when it returns, which is what the sender waits for; a provider id we already
    # hold inserts nothing. Outside a transaction the statement is its own transaction; inside one (only a test's
    # wrapping transaction gets past the durable check) it is wrapped in a durable atomic block, as before.
    connection = transaction.get_connection()
    if connection.in_atomic_block:
        with transaction.atomic(durable=True):
            row.pk = _insert(row, connection)
    else:
        row.pk = _insert(row, connection)
    if row.pk is not None:
        row._state.adding = False
        transaction.on_commit(lambda: enqueue(row.pk))  # in autocommit mode this runs at once
        return row, True
    if not provider_id:
        raise IntegrityError("an inbound item without a provider id was refused by the database")
    # A provider retrying a delivery we already hold (or the same item arriving twice at once).
    row = RawInbound.objects.defer("raw", "payload", "envelope").get(source=source, provider_id=provider_id)
    if row.processed_at is None:
        enqueue(row.pk)
    return row, False


def _insert(row: RawInbound, connection) -> int | None:
    """Insert ``row`` unless its (source, provider id) is already stored; its new id, or None."""
    query = sql.InsertQuery(RawInbound, on_conflict=OnConflict.IGNORE)
    query.insert_values([f for f in RawInbound._meta.concrete_fields if not f.primary_key], [row])
    compiler = query.get_compiler(connection=connection)
    compiler.returning_fields = [RawInbound._meta.pk]
    ((statement, params),) = compiler.as_sql()
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        found = cursor.fetchone()
    return found[0] if found else None


def requeue(raw: RawInbound) -> None:
    """Process an item again after a fix (ingestion health): clears its error and attempt count."""
    RawInbound.objects.filter(pk=raw.pk, processed_at__isnull=True).update(error="", attempts=0)
    enqueue(raw.pk)
