"""Inbound SMS/MMS from Twilio: one communication per (patient, sending line) for a recognised number, one
Unrecognized communication per SMS otherwise; STOP/START/HELP keywords; MMS media fetched into
attachments, only from Twilio's media hosts."""

import logging
import re
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from careportal.models import Contact, ContactKind, Patient, PatientContactMethod
from inbox import events
from inbox.models import Channel, Communication, Message, RawInbound, SendingLine
from inbox.services import apply_inbound

from .common import (
    IncomingFile,
    IngestError,
    add_notes,
    auto_assign,
    clean_filename,
    lock_raw,
    mark_processed,
    max_attachment_bytes,
    record_received,
    safe_id,
    safe_text,
    store_attachments,
)
from .recognize import normalize_sender_phone, recognize_phone

logger = logging.getLogger(__name__)

OPT_OUT_KEYWORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}
OPT_IN_KEYWORDS = {"START", "YES", "UNSTOP"}
HELP_KEYWORDS = {"HELP", "INFO"}
MAX_MEDIA = 10  # Twilio sends at most ten media items per message
MEDIA_TIMEOUT = (5, 30)  # connect, read (seconds)
MEDIA_DOWNLOAD_ATTEMPTS = 3  # then the text is filed with a note; the media URLs stay on the raw item
MEDIA_REDIRECTS = 3  # Twilio answers a media URL with one redirect to its CDN
REDIRECT_STATUSES = {301, 302, 303, 307, 308}


class MediaTooLarge(Exception):
    def __init__(self, size: int):
        super().__init__(f"{size} bytes")
        self.size = size


class MediaRefused(requests.exceptions.InvalidURL):
    """A media URL that is not fetched at all: not https, or not on a Twilio media host (``TWILIO_MEDIA_HOSTS``)."""


def is_media_host(host: str) -> bool:
    """``host`` is one of ``TWILIO_MEDIA_HOSTS`` (``*.twiliocdn.com`` matches any subdomain of twiliocdn.com)."""
    host = (host or "").lower().rstrip(".")
    for allowed in getattr(settings, "TWILIO_MEDIA_HOSTS", ()):
        allowed = allowed.strip().lower().rstrip(".")
        if allowed.startswith("*.") and host.endswith(allowed[1:]) and len(host) > len(allowed) - 1:
            return True
        if host and host == allowed:
            return True
    return False


def check_media_url(url: str) -> str:
    """The host of an https URL on a Twilio media host; ``MediaRefused`` for any other URL."""
    shown = safe_text(url)[:200]
    if not url.isprintable() or any(c.isspace() for c in url):
        raise MediaRefused(f"the address {shown!r} is not a valid URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise MediaRefused(f"the address {shown!r} is not a valid URL") from exc
    if parts.scheme != "https":
        raise MediaRefused(f"the address {shown!r} is not https")
    if not is_media_host(parts.hostname or "") or port not in (None, 443):
        raise MediaRefused(f"{parts.hostname or 'the address'} is not a Twilio media host")
    return parts.hostname


def download_media(url: str, *, max_bytes: int) -> tuple[bytes, str]:
    """Fetch one MMS media URL with the account's credentials, reading at most ``max_bytes``.

    Only https URLs on a Twilio media host are requested, redirects included (followed here, at most
    ``MEDIA_REDIRECTS``); the credentials go to the URL's own host only, never to the host of a redirect.
    Returns ``(data, content_type)``; raises ``MediaRefused`` (nothing requested), ``MediaTooLarge`` or
    ``requests.RequestException``.
    """
    origin = check_media_url(url)
    auth = (settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN) if settings.TWILIO_ACCOUNT_SID else None
    for _ in range(MEDIA_REDIRECTS + 1):
        host = check_media_url(url)
        with requests.get(
            url,
            auth=auth if host == origin else None,
            timeout=MEDIA_TIMEOUT,
            stream=True,
            allow_redirects=False,
        ) as response:
            response.raise_for_status()
            if "Location" in response.headers and response.status_code in REDIRECT_STATUSES:
                url = urljoin(url, response.headers["Location"])
                continue
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > max_bytes:
                raise MediaTooLarge(declared)
            chunks, total = [], 0
            for chunk in response.iter_content(64 * 1024):
                total += len(chunk)
                if total > max_bytes:
                    raise MediaTooLarge(total)
                chunks.append(chunk)
            return b"".join(chunks), response.headers.get("Content-Type", "")
    raise requests.TooManyRedirects(f"more than {MEDIA_REDIRECTS} redirects")


def keyword_of(body: str) -> str:
    """The opt-out/opt-in/help keyword an SMS consists of (case and punctuation ignored), or ''."""
    word = re.sub(r"[^\w]", "", (body or "").strip().upper())
    return word if word in OPT_OUT_KEYWORDS | OPT_IN_KEYWORDS | HELP_KEYWORDS else ""


def _media_count(payload: dict) -> int:
    try:
        return max(0, min(int(payload.get("NumMedia") or 0), MAX_MEDIA))
    except (TypeError, ValueError):
        return 0


def _fetch_media(raw: RawInbound, payload: dict) -> list[IncomingFile]:
    """Download the MMS media before the filing transaction (no network inside a transaction).

    A download that fails is retried by re-processing the raw item a few times; after that the SMS is filed
    with a note, so the text is never held back for good.
    """
    count = _media_count(payload)
    files, limit = [], max_attachment_bytes()
    for index in range(count):
        url = str(payload.get(f"MediaUrl{index}") or "")
        declared_type = (
            safe_text(str(payload.get(f"MediaContentType{index}") or "")) or "application/octet-stream"
        )
        name = clean_filename("", declared_type, f"mms-{index + 1}")
        if not url:
            continue
        try:
            data, content_type = download_media(url, max_bytes=limit)
        except MediaRefused as exc:  # never requested, so never retried: the text is filed with a note
            logger.warning("mms media url refused", extra={"raw_id": raw.pk, "error": str(exc)})
            files.append(
                IncomingFile(
                    filename=name, content_type=declared_type, data=None,
                    problem=f"its address was refused ({exc}), so it was not fetched. The address is kept with the "
                    "received item.",
                )
            )  # fmt: skip
        except MediaTooLarge as exc:
            files.append(IncomingFile(filename=name, content_type=declared_type, data=None, size=exc.size))
        except requests.RequestException as exc:
            if raw.attempts + 1 < MEDIA_DOWNLOAD_ATTEMPTS:
                raise IngestError(
                    f"MMS media {index + 1} could not be downloaded yet ({exc}); will retry."
                ) from exc
            logger.warning("mms media not downloaded", extra={"raw_id": raw.pk, "error": str(exc)})
            files.append(
                IncomingFile(
                    filename=name, content_type=declared_type, data=None,
                    problem="it could not be downloaded from Twilio. Its address is kept with the received item.",
                )
            )  # fmt: skip
        else:
            content_type = (content_type or declared_type).split(";")[0].strip()
            files.append(IncomingFile(filename=name, content_type=content_type, data=data, size=len(data)))
    return files


def ingest_sms(raw: RawInbound) -> Message | None:
    """File one inbound SMS (Twilio form payload: From, To, Body, MessageSid, NumMedia, MediaUrlN)."""
    payload = raw.payload or {}
    # The message keeps the id as the raw item does: as sent, or its digest when it is not storable (a NUL).
    sid = safe_id(str(payload.get("MessageSid") or payload.get("SmsMessageSid") or raw.provider_id or ""))
    if not sid:
        raise IngestError("The SMS has no MessageSid.")
    sender = normalize_sender_phone(str(payload.get("From") or ""))
    if not sender:
        raise IngestError("The SMS has no sender number (From).")
    to = normalize_sender_phone(str(payload.get("To") or ""))
    line = SendingLine.objects.filter(number=to, is_active=True).select_related("owner").first()
    if line is None:
        raise IngestError(f"The SMS was sent to {to or 'no number'}, which is not an active sending line.")
    if raw.processed_at is not None:
        return raw.message
    if (
        not _media_count(payload)
        or Message.objects.filter(provider=Message.Provider.TWILIO, provider_id=sid).exists()
    ):
        files = []  # no media, or already filed: do not fetch its media again
    else:
        files = _fetch_media(raw, payload)
    return _file_sms(raw.pk, sid=sid, sender=sender, line=line, body=safe_text(str(payload.get("Body") or "")).strip(),
                     files=files)  # fmt: skip


def _apply_keyword(keyword: str, number: str) -> None:
    """STOP and its synonyms set the opt-out flag on every contact method and contact with this number; START
    and its synonyms clear it; HELP is only recorded. Opt-out belongs to the number, not to one patient."""
    if keyword in OPT_OUT_KEYWORDS | OPT_IN_KEYWORDS:
        opted_out = keyword in OPT_OUT_KEYWORDS
        PatientContactMethod.objects.filter(kind=ContactKind.PHONE, value=number).update(
            is_opted_out=opted_out
        )
        Contact.objects.filter(phone=number).update(is_opted_out=opted_out)


def _communication_for(sender: str, line: SendingLine, recognition) -> Communication:
    """A recognised number joins the communication of (patient, contact, line), created if missing; an
    unrecognised number makes its own Unrecognized communication every time, with the candidates kept."""
    now = timezone.now()
    if not recognition.is_recognized:
        communication = Communication.objects.create(
            channel=Channel.SMS, sending_line=line, counterpart=sender, is_unrecognized=True,
            status=Communication.Status.OPEN, opened_at=now,
        )  # fmt: skip
        if recognition.candidate_ids:
            communication.candidate_patients.set(recognition.candidate_ids)
        return communication
    # Lock the patient so two first messages arriving at once make one communication, not two. FOR NO KEY UPDATE:
    # exclusive among ingesters, but it does not block other writers' foreign-key checks (KEY SHARE) on the patient.
    Patient.objects.select_for_update(no_key=True).filter(pk=recognition.patient.pk).first()
    communication = (
        Communication.objects.select_for_update()
        .filter(
            channel=Channel.SMS, patient=recognition.patient, contact=recognition.contact, sending_line=line
        )
        .order_by("created_at", "id")
        .first()
    )
    if communication is None:
        return Communication.objects.create(
            channel=Channel.SMS, patient=recognition.patient, contact=recognition.contact, sending_line=line,
            counterpart=sender, status=Communication.Status.OPEN, opened_at=now,
        )  # fmt: skip
    if communication.counterpart != sender:
        # The patient wrote from another of their numbers: replies go to the number that wrote last.
        communication.counterpart = sender
        communication.save(update_fields=["counterpart", "updated_at"])
    return communication


@transaction.atomic(durable=True)
def _file_sms(
    raw_id: int, *, sid: str, sender: str, line: SendingLine, body: str, files: list[IncomingFile]
) -> Message:
    """Pick the communication, store the message and media, apply keywords, reopen, auto-assign to the line's
    owner, audit, publish on commit. The same MessageSid twice gives one message."""
    raw = lock_raw(raw_id)
    if raw.processed_at is not None:
        return raw.message
    existing = Message.objects.filter(provider=Message.Provider.TWILIO, provider_id=sid).first()
    if existing is not None:
        mark_processed(raw, existing)
        return existing
    keyword = keyword_of(body)
    _apply_keyword(keyword, sender)
    recognition = recognize_phone(sender)
    communication = _communication_for(sender, line, recognition)
    message = Message.objects.create(
        communication=communication,
        direction=Message.Direction.INBOUND,
        sender_name=recognition.sender_name,
        sender_address=sender[:254],
        recipient_address=line.number,
        body_text=body,
        provider=Message.Provider.TWILIO,
        provider_id=sid,
        delivery_status=Message.DeliveryStatus.RECEIVED,
        created_at=raw.received_at,
    )
    add_notes(message, store_attachments(message, files))
    apply_inbound(communication, message)
    auto_assign(communication, line.owner, via="direct line")
    record_received(communication, message, raw, keyword=keyword, media=len(files))
    mark_processed(raw, message)
    events.publish_communication_changed(communication, kind="message")
    return message
