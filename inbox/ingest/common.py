"""What every ingest service shares: text made safe to store, the attachment policy, locking and finishing a raw
item, auto-assignment and the "message received" audit event."""

import hashlib
import html
import mimetypes
import os
import re
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.utils import timezone
from django.utils.text import get_valid_filename

from careportal.access import can_view_patient
from inbox import audit, notifications
from inbox.models import Attachment, Communication, Message, RawInbound
from inbox.services import ALLOWED_UPLOAD_TYPES
from inbox.uploads import check_inbound

DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
MAX_ATTACHMENTS = 20
INBOUND_ALLOWED_TYPES = ALLOWED_UPLOAD_TYPES | {
    "image/webp", "image/bmp", "image/tiff", "image/heif", "text/vcard", "text/x-vcard", "text/calendar",
    "application/rtf", "application/vnd.ms-excel", "message/rfc822",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}  # fmt: skip
INBOUND_ALLOWED_MAJOR_TYPES = {"audio", "video"}


class IngestError(Exception):
    """An inbound item that cannot be turned into a message; ``str()`` is the error kept on the raw item."""


def safe_text(value: str) -> str:
    """Text the database can store: no NUL characters (PostgreSQL refuses them), no lone surrogates.

    The one normaliser of received text for display and matching (addresses and numbers go through it in
    ``recognize``); the raw item keeps the text as received. Bytes kept by ``surrogateescape`` are read as UTF-8
    again (an undecodable byte becomes U+FFFD); any other lone surrogate becomes U+FFFD.
    """
    if not value:
        return ""
    try:
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate surrogateescape did not make (e.g. from a JSON "\\ud800" escape)
        value = LONE_SURROGATE.sub("\ufffd", value)
    return value.replace("\x00", "")


LONE_SURROGATE = re.compile("[\ud800-\udfff]")
ID_MAX = 255  # the provider id columns (RawInbound, Message)


def safe_id(value: str) -> str:
    """A provider id the database can store and index, as stable and unique as the id itself: the id as sent when
    it is storable text that fits the column, else ``sha256:`` and the digest of its exact code points (a NUL, a
    lone surrogate or a very long id would otherwise be refused, or collide with another once cleaned or cut)."""
    value = value or ""
    if len(value) <= ID_MAX and safe_text(value) == value:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def max_attachment_bytes() -> int:
    return int(getattr(settings, "INBOUND_MAX_ATTACHMENT_BYTES", DEFAULT_MAX_ATTACHMENT_BYTES))


def is_allowed_type(content_type: str) -> bool:
    content_type = (content_type or "").split(";")[0].strip().lower()
    return content_type in INBOUND_ALLOWED_TYPES or content_type.split("/")[0] in INBOUND_ALLOWED_MAJOR_TYPES


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


@dataclass(frozen=True)
class IncomingFile:
    """A file that came with an inbound message; ``data`` is None when it could not be fetched (``problem``)."""

    filename: str
    content_type: str
    data: bytes | None
    size: int = 0
    problem: str = ""


def clean_filename(name: str, content_type: str, fallback: str) -> str:
    base = get_valid_filename(os.path.basename(safe_text(name or "").replace("\\", "/"))) if name else ""
    if not base:
        base = fallback + (mimetypes.guess_extension(content_type or "") or ".bin")
    stem, ext = os.path.splitext(base)
    return f"{stem[:100]}{ext[:20]}"


def store_attachments(message: Message, files: list[IncomingFile]) -> list[str]:
    """Store the files that pass the size and type limits; return a note for each one that does not.

    A file left out is still in the raw item, so nothing is lost.
    """
    notes, limit, stored = [], max_attachment_bytes(), 0
    for item in files:
        label = f"“{item.filename}”"
        if item.problem:
            notes.append(f"Attachment {label} was not stored: {item.problem}")
        elif item.size > limit:
            notes.append(
                f"Attachment {label} ({_megabytes(item.size)}) was not stored: it is larger than the "
                f"{_megabytes(limit)} limit. The original is kept with the received item."
            )
        elif not is_allowed_type(item.content_type):
            notes.append(
                f"Attachment {label} ({item.content_type}) was not stored: this file type is not accepted. "
                "The original is kept with the received item."
            )
        elif problem := check_inbound(item.filename, item.content_type, item.data or b""):
            notes.append(
                f"Attachment {label} ({item.content_type}) was not stored: {problem}. "
                "The original is kept with the received item."
            )
        elif stored >= MAX_ATTACHMENTS:
            notes.append(
                f"Attachment {label} was not stored: at most {MAX_ATTACHMENTS} files are kept per message."
            )
        else:
            attachment = Attachment(
                message=message,
                filename=item.filename[:255],
                content_type=item.content_type[:120],
                size=len(item.data or b""),
            )
            attachment.file.save(item.filename, ContentFile(item.data or b""), save=False)
            attachment.save()
            stored += 1
    return notes


def add_notes(message: Message, notes: list[str]) -> None:
    """Put notes about what was left out at the end of the message, where the care team reads it."""
    if not notes:
        return
    message.body_text = "\n\n".join([message.body_text, *notes]) if message.body_text else "\n\n".join(notes)
    fields = ["body_text"]
    if message.body_html:
        message.body_html += "".join(f"<p><em>{html.escape(note)}</em></p>" for note in notes)
        fields.append("body_html")
    message.save(update_fields=fields)


def lock_raw(raw_id: int) -> RawInbound:
    return RawInbound.objects.select_for_update().defer("raw", "payload", "envelope").get(pk=raw_id)


def mark_processed(raw: RawInbound, message: Message | None) -> None:
    raw.processed_at = timezone.now()
    raw.message = message
    raw.error = ""
    raw.attempts += 1
    raw.save(update_fields=["processed_at", "message", "error", "attempts"])


def auto_assign(communication: Communication, owner, *, via: str) -> bool:
    """An inbound message to an address or number that belongs to one user is assigned to that user.

    Only when nobody is assigned yet, and — for a linked communication — only to an owner who may see the patient
    (the assignee list holds only users with access; an Unrecognized one is visible to its assignee).
    """
    if owner is None or not owner.is_active or communication.assignee_id is not None:
        return False
    if communication.patient_id and not can_view_patient(owner, communication.patient_id):
        return False
    communication.assignee = owner
    communication.save(update_fields=["assignee", "updated_at"])
    audit.record(
        actor=None, action=audit.Action.ASSIGNMENT_CHANGED, communication=communication,
        actor_label="Auto-assignment", detail={"from": None, "to": owner.pk, "via": via},
    )  # fmt: skip
    notifications.notify_assigned(communication, owner)
    return True


def received_event(communication: Communication, message: Message, raw: RawInbound, **detail):
    """The "message received" audit event, not yet saved."""
    name, address = message.sender_name, message.sender_address
    label = f"{name} <{address}>" if name else address
    return audit.build(
        actor=None, action=audit.Action.MESSAGE_RECEIVED, communication=communication, obj=message,
        actor_label=label[:200],
        detail={"channel": communication.channel, "provider": message.provider, "raw_id": raw.pk, **detail},
    )  # fmt: skip


def record_received(communication: Communication, message: Message, raw: RawInbound, **detail) -> None:
    received_event(communication, message, raw, **detail).save(force_insert=True)
