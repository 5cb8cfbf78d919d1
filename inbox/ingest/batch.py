"""Filing pending raw items in batches (the worker's ``process_pending`` task).

Plain inbound SMS (no media, no keyword, to an active sending line) are filed many to one transaction: the batch
claims its raw rows (``FOR UPDATE SKIP LOCKED``, so two worker processes never take the same row), recognises every
sender, locks every patient and communication it will touch, then files message by message with the same rules as
``inbox.ingest.sms`` and writes the audit events and the processed marks in bulk. Everything else — email, chat,
status callbacks, MMS, STOP/START/HELP, a malformed SMS — goes through ``pipeline.process`` one item per transaction,
and so does every item of a batch that fails: one bad item never holds back or rolls back the others for good.
"""

import logging
import time
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from adminportal.models import WebhookSubscription
from careportal.models import Patient
from inbox import events, notifications
from inbox.models import AuditEvent, Channel, Communication, Message, RawInbound, SendingLine
from inbox.services import apply_inbound

from .common import auto_assign, received_event, safe_id, safe_text
from .pipeline import TRANSIENT_ERRORS, process
from .recognize import normalize_sender_phone, recognize_phones
from .sms import _media_count, keyword_of

logger = logging.getLogger(__name__)

BATCH_SIZE = 50  # raw items claimed per transaction
DRAIN_SECONDS = 30.0  # a drain hands over to a fresh task after this long, so one task never runs for hours


@dataclass
class _Sms:
    """A claimed raw item that is a plain inbound SMS, parsed."""

    raw: RawInbound
    sid: str
    sender: str
    line: SendingLine
    body: str


@dataclass
class _Batch:
    sms: list[_Sms] = field(default_factory=list)
    others: list[int] = field(default_factory=list)  # raw ids for pipeline.process, after the batch commits


def _claim(limit: int) -> list[RawInbound]:
    """The oldest pending items no other worker holds, locked until the batch commits. Failed items (with an
    error) are left to the sweeper's retries, as before."""
    return list(
        RawInbound.objects.select_for_update(skip_locked=True)
        .filter(processed_at__isnull=True, error="")
        .defer("raw", "envelope")
        .order_by("received_at", "id")[:limit]
    )


def _plan(rows: list[RawInbound]) -> _Batch:
    """Split the claimed items: plain SMS to an active line for the batch, everything else for one by one."""
    batch, parsed = _Batch(), []
    for raw in rows:
        payload = raw.payload if isinstance(raw.payload, dict) else {}
        if raw.source != RawInbound.Source.TWILIO_SMS:
            batch.others.append(raw.pk)
            continue
        sid = safe_id(str(payload.get("MessageSid") or payload.get("SmsMessageSid") or raw.provider_id or ""))
        sender = normalize_sender_phone(str(payload.get("From") or ""))
        to = normalize_sender_phone(str(payload.get("To") or ""))
        body = safe_text(str(payload.get("Body") or "")).strip()
        if not sid or not sender or not to or _media_count(payload) or keyword_of(body):
            batch.others.append(raw.pk)  # errors, media and keywords: the one-by-one path, unchanged
            continue
        parsed.append((raw, sid, sender, to, body))
    lines = {
        line.number: line
        for line in SendingLine.objects.filter(number__in={p[3] for p in parsed}, is_active=True).select_related(
            "owner"
        )
    } if parsed else {}  # fmt: skip
    for raw, sid, sender, to, body in parsed:
        if to not in lines:
            batch.others.append(raw.pk)  # not an active line: the one-by-one path records the error
            continue
        batch.sms.append(_Sms(raw=raw, sid=sid, sender=sender, line=lines[to], body=body))
    return batch


def _lock_communications(items: list[_Sms], recognition: dict) -> dict[tuple, Communication]:
    """Lock the patients (in id order, ``FOR NO KEY UPDATE``: two first messages of one patient still make one
    communication, and foreign-key checks of other writers are not blocked), then their SMS communications on the
    batch's lines; keyed (patient, contact, line) → the oldest, as ``sms._communication_for`` picks it."""
    recognised = [recognition[item.sender] for item in items if recognition[item.sender].is_recognized]
    patient_ids = sorted({r.patient.pk for r in recognised})
    if not patient_ids:
        return {}
    list(
        Patient.objects.select_for_update(no_key=True)
        .filter(pk__in=patient_ids)
        .order_by("pk")
        .values_list("pk")
    )
    found: dict[tuple, Communication] = {}
    rows = (
        Communication.objects.select_for_update()
        .filter(
            channel=Channel.SMS, patient_id__in=patient_ids, sending_line_id__in={i.line.pk for i in items}
        )
        .order_by("created_at", "id")
    )
    for communication in rows:
        found.setdefault(
            (communication.patient_id, communication.contact_id, communication.sending_line_id), communication
        )
    return found


def _file(items: list[_Sms]) -> None:
    """File the batch's SMS inside the caller's transaction; raises on any error (the caller then files them one
    by one)."""
    existing = dict(
        Message.objects.filter(
            provider=Message.Provider.TWILIO, provider_id__in=[i.sid for i in items]
        ).values_list("provider_id", "pk")
    )
    recognition = recognize_phones({i.sender for i in items})
    communications = _lock_communications(items, recognition)
    primary_contacts = notifications.primary_contacts_of(
        {r.patient.pk for r in recognition.values() if r.is_recognized}
    )
    webhooks = WebhookSubscription.objects.filter(is_active=True).exists()
    changed: dict[int, tuple[Communication, set[str]]] = {}
    audit_events: list[AuditEvent] = []
    done: list[RawInbound] = []
    now = timezone.now()
    for item in items:
        raw = item.raw
        if item.sid in existing:  # already filed (the one-by-one path's rule): mark it, file nothing
            raw.message_id = existing[item.sid]
            done.append(raw)
            continue
        communication, fields = _communication_for(item, recognition[item.sender], communications)
        message = Message.objects.create(
            communication=communication,
            direction=Message.Direction.INBOUND,
            sender_name=recognition[item.sender].sender_name,
            sender_address=item.sender[:254],
            recipient_address=item.line.number,
            body_text=item.body,
            provider=Message.Provider.TWILIO,
            provider_id=item.sid,
            delivery_status=Message.DeliveryStatus.RECEIVED,
            created_at=raw.received_at,
        )
        existing[item.sid] = message.pk
        fields += apply_inbound(communication, message, save=False, primary_contacts=primary_contacts)
        changed.setdefault(communication.pk, (communication, set()))[1].update(fields)
        auto_assign(communication, item.line.owner, via="direct line")
        audit_events.append(received_event(communication, message, raw, keyword="", media=0))
        raw.message = message
        done.append(raw)
        events.publish_communication_changed(communication, kind="message", webhooks=webhooks)
    # One UPDATE for every communication the batch changed (all locked by this transaction or created in it, so
    # writing a field that did not change rewrites the value it already has).
    changed_fields = set().union(*(names for _, names in changed.values())) if changed else set()
    if changed_fields:
        rows = [communication for communication, names in changed.values() if names]
        for communication in rows:
            communication.updated_at = now
        _update_rows(Communication, rows, sorted(changed_fields | {"updated_at"}))
    AuditEvent.objects.bulk_create(audit_events)
    for raw in done:
        raw.processed_at, raw.error, raw.attempts = now, "", raw.attempts + 1
    _update_rows(RawInbound, done, ["processed_at", "message", "error", "attempts"])


def _update_rows(model, rows: list, names: list[str]) -> None:
    """Write ``names`` of each of ``rows`` (rows this transaction holds) in one statement: UPDATE … FROM (VALUES …)
    on PostgreSQL (``bulk_update``'s CASE expressions cost more to build than the whole batch's inserts); one UPDATE
    per row elsewhere."""
    if not rows:
        return
    fields = [model._meta.get_field(name) for name in names]
    connection = transaction.get_connection()
    if connection.vendor != "postgresql":
        for row in rows:
            model.objects.filter(pk=row.pk).update(**{f.attname: getattr(row, f.attname) for f in fields})
        return
    qn = connection.ops.quote_name
    pk = model._meta.pk
    casts = [f"%s::{pk.db_type(connection)}", *(f"%s::{f.db_type(connection)}" for f in fields)]
    placeholder = "(" + ", ".join(casts) + ")"
    params = []
    for row in rows:
        params.append(row.pk)
        params.extend(f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields)
    columns = [qn(pk.column), *(qn(f.column) for f in fields)]
    # Identifiers come from the model's meta (quoted), every value is a parameter.
    statement = (
        f"UPDATE {qn(model._meta.db_table)} AS t SET "  # noqa: S608
        + ", ".join(f"{qn(f.column)} = v.{qn(f.column)}" for f in fields)
        + f" FROM (VALUES {', '.join([placeholder] * len(rows))}) AS v ({', '.join(columns)})"
        + f" WHERE t.{qn(pk.column)} = v.{qn(pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def _communication_for(item: _Sms, recognition, communications: dict) -> tuple[Communication, list[str]]:
    """``sms._communication_for`` on the locked rows: a recognised number joins (patient, contact, line), created if
    missing; an unrecognised one gets its own Unrecognized communication with the candidates kept. Returns the
    communication and the fields changed but not yet saved."""
    if not recognition.is_recognized:
        communication = Communication.objects.create(
            channel=Channel.SMS, sending_line=item.line, counterpart=item.sender, is_unrecognized=True,
            status=Communication.Status.OPEN, opened_at=timezone.now(),
        )  # fmt: skip
        if recognition.candidate_ids:
            communication.candidate_patients.set(recognition.candidate_ids)
        return communication, []
    contact = recognition.contact
    key = (recognition.patient.pk, contact.pk if contact else None, item.line.pk)
    communication = communications.get(key)
    if communication is None:
        communication = communications[key] = Communication.objects.create(
            channel=Channel.SMS, patient=recognition.patient, contact=contact, sending_line=item.line,
            counterpart=item.sender, status=Communication.Status.OPEN, opened_at=timezone.now(),
        )  # fmt: skip
        return communication, []
    communication.patient, communication.contact, communication.sending_line = (
        recognition.patient,
        contact,
        item.line,
    )  # the rows already loaded, so notifications and audit read no more
    if communication.counterpart != item.sender:
        # The patient wrote from another of their numbers: replies go to the number that wrote last.
        communication.counterpart = item.sender
        return communication, ["counterpart"]
    return communication, []


def process_batch(limit: int | None = None) -> int:
    """Claim and file up to ``limit`` pending items; returns how many were claimed (0: nothing was pending).

    Raises only transient database errors (the task retries; the rows stay pending).
    """
    limit = BATCH_SIZE if limit is None else limit
    claimed, batch = 0, _Batch()
    with events.batched():  # the batch's real-time hints go out together, after commit
        try:
            with transaction.atomic(durable=True):
                rows = _claim(limit)
                claimed = len(rows)
                batch = _plan(rows)
                if batch.sms:
                    _file(batch.sms)
        except TRANSIENT_ERRORS:
            raise
        except Exception:
            logger.exception("batch filing failed; filing its items one by one", extra={"count": claimed})
            batch.others.extend(item.raw.pk for item in batch.sms)
        for raw_id in batch.others:
            process(raw_id)
    return claimed


def drain(*, limit: int | None = None, max_seconds: float | None = None) -> tuple[int, bool]:
    """File pending items batch after batch until a batch comes back short or ``max_seconds`` have passed
    (defaults: ``BATCH_SIZE``, ``DRAIN_SECONDS``).

    Returns ``(claimed, finished)``; ``finished`` is False when time ran out with items possibly still pending.
    """
    limit = BATCH_SIZE if limit is None else limit
    max_seconds = DRAIN_SECONDS if max_seconds is None else max_seconds
    started, total = time.monotonic(), 0
    while True:
        claimed = process_batch(limit)
        total += claimed
        if claimed < limit:
            return total, True
        if time.monotonic() - started > max_seconds:
            return total, False
