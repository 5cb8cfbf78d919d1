"""Inbound email: parse raw MIME with the standard library (structure with ``compat32``, shown headers decoded by
``policy.default``) and file it — threaded into the communication it answers, or a new one recognised by the
sender's address; bounces become delivery failures of the outbound message they answer (DESIGN.md: Recognition and
linking)."""

import codecs
import logging
import re
import time
from dataclasses import dataclass, field
from email import policy
from email.header import decode_header, make_header
from email.message import Message as MimeMessage
from email.parser import BytesHeaderParser, BytesParser
from email.utils import getaddresses

from django.db import transaction
from django.utils import timezone

from inbox import events
from inbox.models import Channel, Communication, InboundAddress, Message, RawInbound
from inbox.sanitize import clean_html, html_to_text
from inbox.services import apply_inbound

from .common import (
    IncomingFile,
    IngestError,
    add_notes,
    auto_assign,
    clean_filename,
    lock_raw,
    mark_processed,
    record_received,
    safe_text,
    store_attachments,
)
from .raw import email_provider_id
from .recognize import normalize_email, recognize_email

logger = logging.getLogger(__name__)

MAX_DEPTH = 20  # multipart nesting deeper than any real mail client produces
MAX_PARTS = 200
MAX_HEADER_CHARS = 4096
PARSE_BUDGET_SECONDS = 20.0
MAX_THREAD_IDS = 100
MESSAGE_ID = re.compile(r"<[^<>\s]{1,500}@[^<>\s]{1,500}>")
AUTO_REPLY_PRECEDENCE = {"auto_reply", "bulk", "junk"}
DAEMON_LOCALPARTS = {"mailer-daemon", "postmaster"}
EMAIL_CHANNELS = (Channel.EMAIL, Channel.SECURE_EMAIL)


@dataclass(frozen=True)
class Bounce:
    """A delivery report: the Message-IDs it names and whether it reports a failure (not just a delay)."""

    referenced_ids: tuple[str, ...]
    is_failure: bool
    reason: str


@dataclass
class ParsedEmail:
    provider_id: str
    message_id: str
    sender_name: str
    sender_address: str
    recipients: list[str]
    subject: str
    in_reply_to: str
    references: list[str]
    body_text: str = ""
    body_html: str = ""
    files: list[IncomingFile] = field(default_factory=list)
    is_auto_reply: bool = False
    bounce: Bounce | None = None

    @property
    def thread_ids(self) -> list[str]:
        """Ids this email answers, nearest first: In-Reply-To, then References from the newest."""
        ids = [*MESSAGE_ID.findall(self.in_reply_to), *reversed(self.references)]
        return list(dict.fromkeys(ids))[:MAX_THREAD_IDS]


# --- parsing -----------------------------------------------------------------------------------------------


# The MIME structure is walked with ``compat32``, whose header and parameter handling is linear. The structured
# parser of ``policy.default`` is quadratic on hostile input (a crafted 5 MB email of parameter-stuffed parts takes
# a minute; an 80 kB From header alone takes one), so it decodes only the few headers we show, each cut to
# MAX_HEADER_CHARS first. References and Message-IDs are read from the raw values.
STRUCTURE_POLICY = policy.compat32
WRITE_POLICY = policy.compat32.clone(linesep="\r\n", max_line_length=0)  # re-emit headers unwrapped


def _raw_header(msg: MimeMessage, name: str) -> str:
    """A header's value as received (unfolded, undecoded)."""
    raw = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), "")
    return safe_text(" ".join(str(raw).split()))


def _header(msg: MimeMessage, name: str) -> str:
    """A header decoded by ``policy.default`` (encoded words, display names); its raw value if that fails."""
    raw = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)
    if raw is None:
        return ""
    try:
        text = str(policy.default.header_fetch_parse(name, str(raw)[:MAX_HEADER_CHARS]))
    except Exception:
        text = str(raw)
    return safe_text(" ".join(text.split()))


def _decode_words(value: str) -> str:
    """RFC 2047 encoded words in a parameter (Outlook writes filenames that way)."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value[:MAX_HEADER_CHARS])))
    except Exception:
        return value


def _addresses(*values: str) -> list[tuple[str, str]]:
    try:
        pairs = getaddresses([v for v in values if v])
    except Exception:
        return []
    return [(safe_text(name), normalize_email(addr)) for name, addr in pairs if "@" in addr]


def _decode_text(part: MimeMessage) -> str:
    """The text of a part, tolerating unknown or lying charsets (declared, then UTF-8, then Windows-1252)."""
    payload = part.get_payload(decode=True) or b""
    if not isinstance(payload, bytes):
        payload = str(payload).encode("utf-8", "surrogateescape")
    try:
        declared = part.get_content_charset() or "utf-8"
        codecs.lookup(declared)
    except (LookupError, ValueError, TypeError):
        declared = "utf-8"
    for charset in dict.fromkeys([declared, "utf-8"]):
        try:
            return safe_text(payload.decode(charset))
        except (UnicodeError, LookupError, ValueError):
            continue
    return safe_text(payload.decode("cp1252", errors="replace"))


def _part_bytes(part: MimeMessage) -> bytes:
    if part.is_multipart():  # an attached email (message/rfc822): keep it whole as a .eml file
        inner = part.get_payload(0) if part.get_content_type() == "message/rfc822" else part
        return inner.as_bytes(policy=WRITE_POLICY)
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _as_file(part: MimeMessage, index: int) -> IncomingFile:
    content_type = part.get_content_type()
    try:
        filename = _decode_words(str(part.get_filename() or ""))
    except Exception:
        filename = ""
    fallback = "forwarded-email" if content_type == "message/rfc822" else f"attachment-{index}"
    data = _part_bytes(part)
    return IncomingFile(
        filename=clean_filename(filename, content_type, fallback),
        content_type=content_type,
        data=data,
        size=len(data),
    )


class _Walker:
    """Collects the body text, HTML and files of a message, depth-first, with limits on depth and part count."""

    def __init__(self, started: float):
        self.texts: list[str] = []
        self.htmls: list[str] = []
        self.files: list[IncomingFile] = []
        self.parts = 0
        self.started = started

    def walk(self, part: MimeMessage, depth: int = 0) -> None:
        self.parts += 1
        if depth > MAX_DEPTH:
            raise IngestError(f"The email's parts are nested more than {MAX_DEPTH} levels deep.")
        if self.parts > MAX_PARTS:
            raise IngestError(f"The email has more than {MAX_PARTS} parts.")
        if time.monotonic() - self.started > PARSE_BUDGET_SECONDS:
            raise IngestError(f"The email took more than {PARSE_BUDGET_SECONDS:.0f} seconds to read.")
        content_type = part.get_content_type()
        if content_type == "message/rfc822" or (
            part.is_multipart() and not content_type.startswith("multipart/")
        ):
            self.files.append(_as_file(part, len(self.files) + 1))
            return
        if part.is_multipart():
            payload = part.get_payload()
            for sub in payload if isinstance(payload, list) else []:
                self.walk(sub, depth + 1)
            return
        try:
            disposition = part.get_content_disposition()
        except Exception:
            disposition = None
        try:
            has_filename = bool(part.get_filename())
        except Exception:
            has_filename = False
        is_body = disposition != "attachment" and not has_filename
        if is_body and content_type == "text/plain":
            self.texts.append(_decode_text(part))
        elif is_body and content_type == "text/html":
            self.htmls.append(_decode_text(part))
        elif content_type in {"message/delivery-status", "text/rfc822-headers"} and not has_filename:
            return  # the machine-readable parts of a delivery report (read by _bounce)
        else:
            self.files.append(_as_file(part, len(self.files) + 1))


def _is_auto_reply(msg: MimeMessage) -> bool:
    auto_submitted = _header(msg, "Auto-Submitted").lower()
    return (
        (auto_submitted not in {"", "no"})
        or bool(_header(msg, "X-Autoreply") or _header(msg, "X-Autorespond"))
        or _header(msg, "Precedence").lower() in AUTO_REPLY_PRECEDENCE
    )


def _delivery_status_blocks(msg: MimeMessage) -> list:
    blocks = []
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            payload = part.get_payload()
            if isinstance(payload, list):
                blocks.extend(payload)
    return blocks


def _original_ids(msg: MimeMessage) -> list[str]:
    """Message-IDs of the original message inside a report (attached message or its headers)."""
    ids = []
    for part in msg.walk():
        content_type = part.get_content_type()
        if content_type == "message/rfc822" and part.is_multipart():
            ids += MESSAGE_ID.findall(_raw_header(part.get_payload(0), "Message-ID"))
        elif content_type == "text/rfc822-headers":
            headers = BytesHeaderParser(policy=policy.compat32).parsebytes(_part_bytes(part))
            ids += MESSAGE_ID.findall(str(headers.get("Message-ID", "")))
    return ids


def _bounce(msg: MimeMessage, parsed: ParsedEmail) -> Bounce | None:
    """A DSN (``multipart/report; report-type=delivery-status``) or a mailer-daemon notice, else None."""
    report_type = str(msg.get_param("report-type", "", header="content-type") or "").lower()
    is_dsn = msg.get_content_type() == "multipart/report" and report_type == "delivery-status"
    is_daemon = parsed.sender_address.split("@", 1)[0] in DAEMON_LOCALPARTS
    if not (is_dsn or is_daemon):
        return None
    blocks = _delivery_status_blocks(msg)
    actions = {str(block.get("Action", "")).strip().lower() for block in blocks} - {""}
    is_failure = "failed" in actions or not actions
    details = []
    for block in blocks:
        status, diagnostic = (
            str(block.get("Status", "")).strip(),
            str(block.get("Diagnostic-Code", "")).strip(),
        )
        recipient = str(block.get("Final-Recipient", "")).split(";")[-1].strip()
        if status or diagnostic:
            details.append(" ".join(filter(None, [recipient, status, diagnostic])))
    reason = safe_text("; ".join(details) or parsed.subject or "delivery failed")
    text_ids = MESSAGE_ID.findall(parsed.body_text)
    ids = [*_original_ids(msg), *parsed.thread_ids, *text_ids]
    return Bounce(
        referenced_ids=tuple(dict.fromkeys(ids))[:MAX_THREAD_IDS], is_failure=is_failure, reason=reason
    )


def parse_email(raw: bytes, *, envelope: dict | None = None) -> ParsedEmail:
    """Everything ingestion needs from one raw email. Raises ``IngestError`` with a clear message when the
    bytes are not an email we can file (empty, no sender, nested too deep); never anything else."""
    envelope = envelope or {}
    if not raw or not raw.strip():
        raise IngestError("The email is empty (0 bytes).")
    try:
        return _parse(raw, envelope)
    except IngestError:
        raise
    except RecursionError as exc:
        raise IngestError("The email's structure is nested too deeply to read.") from exc
    except Exception as exc:
        raise IngestError(f"The email could not be read: {exc.__class__.__name__}: {exc}"[:1000]) from exc


def _parse(raw: bytes, envelope: dict) -> ParsedEmail:
    started = time.monotonic()
    msg = BytesParser(policy=STRUCTURE_POLICY).parsebytes(raw)
    senders = _addresses(_header(msg, "From")) or _addresses(str(envelope.get("mail_from", "")))
    if not senders:
        raise IngestError("The email has no sender address (From).")
    sender_name, sender_address = senders[0]
    message_id_header = _raw_header(msg, "Message-ID")
    message_ids = MESSAGE_ID.findall(message_id_header)
    recipients = [
        *(normalize_email(r) for r in envelope.get("rcpt_tos", []) if isinstance(r, str)),
        *(
            addr
            for _, addr in _addresses(
                *(_header(msg, h) for h in ("Delivered-To", "X-Original-To", "To", "Cc"))
            )
        ),
    ]
    parsed = ParsedEmail(
        provider_id=email_provider_id(raw),
        message_id=(message_ids[0] if message_ids else message_id_header)[:998],
        sender_name=sender_name[:200],
        sender_address=sender_address[:254],
        recipients=list(dict.fromkeys(recipients)),
        subject=_header(msg, "Subject")[:255],
        in_reply_to=_raw_header(msg, "In-Reply-To")[:998],
        references=MESSAGE_ID.findall(_raw_header(msg, "References"))[-MAX_THREAD_IDS:],
    )
    walker = _Walker(started)
    walker.walk(msg)
    body_html = clean_html("\n".join(h for h in walker.htmls if h.strip())) if walker.htmls else ""
    body_text = "\n\n".join(t.strip() for t in walker.texts if t.strip())
    parsed.body_html = safe_text(body_html).strip()
    parsed.body_text = body_text or safe_text(html_to_text(body_html))
    parsed.files = walker.files
    parsed.is_auto_reply = _is_auto_reply(msg)
    parsed.bounce = _bounce(msg, parsed)
    return parsed


# --- filing ------------------------------------------------------------------------------------------------


def ingest_email(raw: RawInbound) -> Message | None:
    """File one raw email (SMTP or webhook). Parsing happens before the transaction; the filing is one service."""
    parsed = parse_email(bytes(raw.raw), envelope=raw.envelope)
    if parsed.bounce is not None:
        return _record_bounce(raw.pk, parsed)
    provider = (
        Message.Provider.SMTP if raw.source == RawInbound.Source.SMTP else Message.Provider.EMAIL_WEBHOOK
    )
    return _file_email(raw.pk, parsed, provider)


def _inbound_address(recipients: list[str]) -> InboundAddress | None:
    addresses = {a.address: a for a in InboundAddress.objects.filter(address__in=recipients, is_active=True)}
    return next((addresses[r] for r in recipients if r in addresses), None)


def _thread(parsed: ParsedEmail) -> Communication | None:
    """The communication whose stored Message-ID this email names (In-Reply-To first, then References)."""
    ids = parsed.thread_ids
    if not ids:
        return None
    found = dict(
        Message.objects.filter(email_message_id__in=ids, communication__channel__in=EMAIL_CHANNELS)
        .order_by("created_at", "id")
        .values_list("email_message_id", "communication_id")
    )
    communication_id = next((found[i] for i in ids if i in found), None)
    if communication_id is None:
        return None
    return Communication.objects.select_for_update().get(pk=communication_id)


def _new_communication(parsed: ParsedEmail, address: InboundAddress | None) -> Communication:
    recognition = recognize_email(parsed.sender_address)
    communication = Communication.objects.create(
        channel=Channel.EMAIL,
        patient=recognition.patient,
        contact=recognition.contact,
        inbound_address=address,
        subject=parsed.subject,
        counterpart=parsed.sender_address,
        is_unrecognized=not recognition.is_recognized,
        status=Communication.Status.OPEN,
        opened_at=timezone.now(),
    )
    if recognition.candidate_ids:
        communication.candidate_patients.set(recognition.candidate_ids)
    return communication


@transaction.atomic(durable=True)
def _file_email(raw_id: int, parsed: ParsedEmail, provider: str) -> Message:
    """Thread or recognise, store the message and attachments, reopen, auto-assign, audit, publish on commit.

    The same Message-ID twice (a sender retrying, the same mail by two routes of one provider) gives one message.
    """
    raw = lock_raw(raw_id)
    if raw.processed_at is not None:
        return raw.message
    existing = Message.objects.filter(provider=provider, provider_id=parsed.provider_id).first()
    if existing is not None:
        mark_processed(raw, existing)
        return existing
    address = _inbound_address(parsed.recipients)
    communication = _thread(parsed)
    threaded = communication is not None
    if communication is None:
        communication = _new_communication(parsed, address)
    elif address is not None and communication.inbound_address_id is None:
        communication.inbound_address = address  # replies now carry a Reply-To that threads back
        communication.save(update_fields=["inbound_address", "updated_at"])
    message = Message.objects.create(
        communication=communication,
        direction=Message.Direction.INBOUND,
        sender_name=parsed.sender_name,
        sender_address=parsed.sender_address,
        recipient_address=(address.address if address else (parsed.recipients[:1] or [""])[0])[:254],
        subject=parsed.subject,
        body_text=parsed.body_text,
        body_html=parsed.body_html,
        is_auto_reply=parsed.is_auto_reply,
        email_message_id=parsed.message_id,
        in_reply_to=parsed.in_reply_to,
        references=" ".join(parsed.references),
        provider=provider,
        provider_id=parsed.provider_id,
        delivery_status=Message.DeliveryStatus.RECEIVED,
        created_at=raw.received_at,
    )
    add_notes(message, store_attachments(message, parsed.files))
    apply_inbound(communication, message)
    auto_assign(communication, address.owner if address else None, via="email alias")
    record_received(communication, message, raw, threaded=threaded, auto_reply=parsed.is_auto_reply)
    mark_processed(raw, message)
    events.publish_communication_changed(communication, kind="message")
    return message


@transaction.atomic(durable=True)
def _record_bounce(raw_id: int, parsed: ParsedEmail) -> Message | None:
    """A bounce is recorded as a delivery failure of the outbound message it names, not as a new message."""
    raw = lock_raw(raw_id)
    if raw.processed_at is not None:
        return raw.message
    bounce = parsed.bounce
    outbound = (
        Message.objects.select_for_update(of=("self",))
        .filter(direction=Message.Direction.OUTBOUND, email_message_id__in=bounce.referenced_ids)
        .select_related("communication")
        .order_by("-created_at", "-id")
        .first()
        if bounce.referenced_ids
        else None
    )
    if outbound is None:
        logger.info(
            "bounce for no message we sent", extra={"raw_id": raw_id, "ids": bounce.referenced_ids[:5]}
        )
    elif bounce.is_failure and outbound.delivery_status != Message.DeliveryStatus.FAILED:
        outbound.delivery_status = Message.DeliveryStatus.FAILED
        outbound.delivery_error = f"Bounced: {bounce.reason}"[:2000]
        outbound.save(update_fields=["delivery_status", "delivery_error"])
        events.publish_communication_changed(outbound.communication, kind="delivery")
    mark_processed(raw, outbound)
    return outbound
