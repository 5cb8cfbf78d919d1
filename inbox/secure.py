"""Secure email: the patient receives an ordinary email with a link, never the content; the link opens a page where
the patient proves who they are with a one-time code sent to the address on file, reads the thread and replies
(DESIGN.md: Secure email). This module owns the signed link, the one-time codes and the patient-side actions."""

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.html import format_html

from careportal.models import Contact, ContactKind, PatientContactMethod

from . import audit
from .errors import InboxError
from .models import Attachment, Communication, Message, RawInbound, SecureAccessCode

SALT = "inbox.secure-message"
TOKEN_MAX_AGE = 14 * 24 * 3600  # links expire after two weeks

CODE_DIGITS = 6
CODE_LIFETIME = timedelta(minutes=10)
MAX_ATTEMPTS = 5  # wrong codes, then the communication's codes are locked for LOCK_COOL_DOWN
LOCK_COOL_DOWN = timedelta(minutes=15)
RESEND_INTERVAL = timedelta(seconds=60)
MAX_CODES_PER_HOUR = 5
ACCESS_LIFETIME = timedelta(minutes=30)  # how long a verified session may read and reply
MAX_REPLY_CHARS = 10_000
NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
CODE_HMAC_SALT = "inbox.secure.SecureAccessCode"
VIA = "secure_page"


# --- Errors: ``str(error)`` is shown to the patient -------------------------------------------------------------


class SecureAccessError(InboxError):
    """A step of the secure message page that cannot be taken."""


class LinkNotValid(SecureAccessError):
    def __init__(self, text: str = "This link is not valid or has expired."):
        super().__init__(text)


class LinkExpired(LinkNotValid):
    pass


class AddressNotOnFile(SecureAccessError):
    def __init__(self):
        super().__init__(
            "This secure message can no longer be opened online because the email address it was sent to is no "
            "longer on file. Please contact your care team."
        )


class CodeRefused(SecureAccessError):
    """A code that cannot be sent or accepted now."""


class CodeRateLimited(CodeRefused):
    def __init__(self, text: str, retry_at: datetime):
        super().__init__(text)
        self.retry_at = retry_at


class CodeLocked(CodeRefused):
    def __init__(self, until: datetime):
        minutes = max(1, round((until - timezone.now()).total_seconds() / 60))
        super().__init__(
            f"Too many incorrect codes were entered, so this page is locked for now. You can request a new code "
            f"in about {minutes} minute{'s' if minutes != 1 else ''}."
        )
        self.until = until


class CodeNotValid(CodeRefused):
    def __init__(self, text: str, attempts_left: int | None = None):
        super().__init__(text)
        self.attempts_left = attempts_left


class CodeExpired(CodeRefused):
    def __init__(self):
        super().__init__("This code has expired. Please request a new code.")


class CodeMissing(CodeRefused):
    def __init__(self):
        super().__init__("There is no active code for this message. Please request a new code.")


class CodeNotSent(CodeRefused):
    def __init__(self):
        super().__init__("We could not send the code just now. Please try again in a minute.")


class ReplyRefused(SecureAccessError):
    pass


# --- The link -----------------------------------------------------------------------------------------------


def make_token(message) -> str:
    """The signed link names only the message: the patient's address and the communication stay out of URLs
    (browser history, proxy logs); both are read from the database when the link is opened."""
    return signing.dumps({"m": message.pk}, salt=SALT)


def read_token(token: str, *, max_age: int = TOKEN_MAX_AGE) -> dict:
    """The signed claims, or ``signing.BadSignature`` / ``signing.SignatureExpired``."""
    return signing.loads(token, salt=SALT, max_age=max_age)


def secure_url(message) -> str:
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/secure/{make_token(message)}/"


def secure_notice(message) -> tuple[str, str]:
    """Text and HTML of the notice email: who wrote, and the link; no message content."""
    url = secure_url(message)
    team = settings.CARE_TEAM_NAME
    text = (
        f"You have a new secure message from {team}.\n\n"
        f"Open it here: {url}\n\n"
        "For your privacy the message is not included in this email. You will be asked for a one-time code "
        "sent to this address."
    )
    html = format_html(
        '<p>You have a new secure message from {}.</p><p><a href="{}">Read your secure message</a></p>'
        "<p>For your privacy the message is not included in this email. You will be asked for a one-time code "
        "sent to this address.</p>",
        team,
        url,
    )
    return text, str(html)


def mask_address(address: str) -> str:
    """``maria.lopez@mail.example`` → ``m•••@mail.example``: enough to recognise, not enough to learn."""
    local, at, domain = (address or "").partition("@")
    if not at:
        return "•••"
    return f"{local[:1]}•••@{domain}"


def patient_label(address: str) -> str:
    """Who acted, in the audit log, for every step taken on the secure message page."""
    return f"patient {mask_address(address)}"[:200]


@dataclass(frozen=True)
class SecureLink:
    """A verified link: the secure message it was sent for, its communication and the address it went to."""

    token: str
    communication: Communication
    message: Message
    address: str

    @property
    def masked_address(self) -> str:
        return mask_address(self.address)


def open_link(token: str) -> SecureLink:
    """The secure message a link names; ``LinkExpired`` after two weeks, ``LinkNotValid`` for anything forged,
    altered, or naming a message that is not an outbound secure message of a linked communication."""
    try:
        claims = read_token(token)
    except signing.SignatureExpired:
        raise LinkExpired() from None
    except signing.BadSignature:
        raise LinkNotValid() from None
    message_id = claims.get("m") if isinstance(claims, dict) else None
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        raise LinkNotValid()
    message = (
        Message.objects.select_related("communication__patient", "communication__contact")
        .filter(pk=message_id, direction=Message.Direction.OUTBOUND, is_secure=True, is_internal_note=False)
        .first()
    )
    if message is None or not message.recipient_address or message.communication.patient_id is None:
        raise LinkNotValid()
    return SecureLink(
        token=token, communication=message.communication, message=message, address=message.recipient_address
    )


def is_address_on_file(communication: Communication, address: str) -> bool:
    """The address is still one of the patient's email contact methods, or the email of one of their contacts."""
    address = (address or "").strip().lower()
    if not address or communication.patient_id is None:
        return False
    return (
        PatientContactMethod.objects.filter(
            patient_id=communication.patient_id, kind=ContactKind.EMAIL, value=address
        ).exists()
        or Contact.objects.filter(patient_id=communication.patient_id, email=address).exists()
    )


def require_address_on_file(link: SecureLink) -> None:
    if not is_address_on_file(link.communication, link.address):
        raise AddressNotOnFile()


# --- One-time codes -----------------------------------------------------------------------------------------


def _hash_code(code: str, salt: str) -> str:
    digest = salted_hmac(CODE_HMAC_SALT, f"{salt}:{code}", algorithm="sha256").hexdigest()
    return f"{salt}${digest}"


def _code_matches(row: SecureAccessCode, code: str) -> bool:
    salt, _, _ = row.code_hash.partition("$")
    return constant_time_compare(_hash_code(code, salt), row.code_hash)


def _active_lock(communication: Communication, now: datetime) -> SecureAccessCode | None:
    return (
        SecureAccessCode.objects.filter(communication=communication, locked_until__gt=now)
        .order_by("-locked_until")
        .first()
    )


def _local_time(value: datetime, communication: Communication) -> str:
    local = value.astimezone(ZoneInfo(communication.patient.time_zone))
    return f"{local:%I:%M %p}".lstrip("0")


def _send_code_email(address: str, code: str) -> None:
    """The code and how long it lasts; never the message, its subject or who wrote it."""
    minutes = int(CODE_LIFETIME.total_seconds() // 60)
    text = (
        f"Your verification code is {code}\n\n"
        f"Enter it on the secure message page to read your message from {settings.CARE_TEAM_NAME}. "
        f"It expires in {minutes} minutes and can be used once.\n\n"
        "If you did not ask for this code, you can ignore this email: nobody can read your messages without it."
    )
    html = format_html(
        "<p>Your verification code is</p><p><strong>{}</strong></p>"
        "<p>Enter it on the secure message page to read your message from {}. It expires in {} minutes and can "
        "be used once.</p><p>If you did not ask for this code, you can ignore this email: nobody can read your "
        "messages without it.</p>",
        code,
        settings.CARE_TEAM_NAME,
        minutes,
    )
    email = EmailMultiAlternatives(subject="Your verification code", body=text, to=[address])
    email.attach_alternative(str(html), "text/html")
    email.send(fail_silently=False)


def issue_code(*, link: SecureLink, request=None) -> SecureAccessCode:
    """Email a new 6-digit code to the address on file; only its keyed hash is stored.

    Refused while the communication is locked after five wrong codes, within a minute of the previous code, and
    after five codes in an hour. The limits are per communication, so several links to one conversation share
    them. A code that cannot be emailed is withdrawn (it does not count against the limits).
    """
    require_address_on_file(link)
    communication = link.communication
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    with transaction.atomic(durable=True):
        # Serialise requests for one communication so two clicks cannot both pass the rate limit.
        Communication.objects.select_for_update().filter(pk=communication.pk).first()
        now = timezone.now()
        lock = _active_lock(communication, now)
        if lock is not None:
            raise CodeLocked(lock.locked_until)
        recent = list(
            SecureAccessCode.objects.filter(
                communication=communication, created_at__gt=now - timedelta(hours=1)
            ).values_list("created_at", flat=True)
        )
        if recent and max(recent) > now - RESEND_INTERVAL:
            retry_at = max(recent) + RESEND_INTERVAL
            seconds = max(1, int((retry_at - now).total_seconds()))
            raise CodeRateLimited(
                f"A code was sent less than a minute ago. Please check your email, or wait {seconds} seconds "
                "before asking for another.",
                retry_at,
            )
        if len(recent) >= MAX_CODES_PER_HOUR:
            retry_at = min(recent) + timedelta(hours=1)
            raise CodeRateLimited(
                f"You have asked for {MAX_CODES_PER_HOUR} codes in the last hour. Please use the newest code, or "
                f"ask for another after {_local_time(retry_at, communication)}.",
                retry_at,
            )
        row = SecureAccessCode.objects.create(
            communication=communication,
            message=link.message,
            code_hash=_hash_code(code, secrets.token_hex(8)),
            sent_to=link.address,
            created_at=now,
            expires_at=now + CODE_LIFETIME,
        )
    try:
        _send_code_email(link.address, code)
    except Exception as exc:
        row.delete()
        raise CodeNotSent() from exc
    return row


def has_live_code(link: SecureLink) -> bool:
    """Whether a code was sent that can still be entered (so the page can offer "I have a code")."""
    now = timezone.now()
    row = (
        SecureAccessCode.objects.filter(communication=link.communication)
        .order_by("-created_at", "-id")
        .first()
    )
    return (
        row is not None
        and row.used_at is None
        and row.expires_at > now
        and not _active_lock(link.communication, now)
    )


def verify_code(*, link: SecureLink, code: str, request=None) -> datetime:
    """Check the code against the communication's newest one; returns until when the patient may read and reply.

    A wrong code counts an attempt; the fifth locks the communication's codes for fifteen minutes. An expired or
    already used code is refused without counting. Success and failure are audited as the patient's sign-in.
    """
    require_address_on_file(link)
    code = re.sub(r"[\s-]", "", code or "")
    if not re.fullmatch(rf"\d{{{CODE_DIGITS}}}", code):
        raise CodeNotValid(f"Enter the {CODE_DIGITS}-digit code from the email.")
    communication = link.communication
    refusal: CodeRefused | None = None
    with transaction.atomic(durable=True):
        now = timezone.now()
        row = (
            SecureAccessCode.objects.select_for_update()
            .filter(communication=communication)
            .order_by("-created_at", "-id")
            .first()
        )
        lock = _active_lock(communication, now)
        if lock is not None:
            refusal = CodeLocked(lock.locked_until)
        elif row is None or row.used_at is not None or row.attempts >= MAX_ATTEMPTS:
            refusal = CodeMissing()
        elif row.expires_at <= now:
            refusal = CodeExpired()
        elif not _code_matches(row, code):
            row.attempts += 1
            fields = ["attempts"]
            if row.attempts >= MAX_ATTEMPTS:
                row.locked_until = now + LOCK_COOL_DOWN
                fields.append("locked_until")
                refusal = CodeLocked(row.locked_until)
            else:
                left = MAX_ATTEMPTS - row.attempts
                refusal = CodeNotValid(
                    f"That code is not correct. You have {left} more attempt{'s' if left != 1 else ''}.", left
                )
            row.save(update_fields=fields)
            audit.record(
                actor=None, action=audit.Action.SIGN_IN_FAILED, request=request, communication=communication,
                obj=row, actor_label=patient_label(link.address),
                detail={"via": VIA, "attempts": row.attempts, "locked": row.locked_until is not None},
            )  # fmt: skip
        else:
            row.used_at = now
            row.save(update_fields=["used_at"])
            audit.record(
                actor=None, action=audit.Action.SIGN_IN, request=request, communication=communication, obj=row,
                actor_label=patient_label(link.address), detail={"via": VIA},
            )  # fmt: skip
    if refusal is not None:
        raise refusal
    return now + ACCESS_LIFETIME


# --- What the verified patient reads and does ------------------------------------------------------------------


def patient_thread(communication: Communication) -> QuerySet[Message]:
    """The conversation as the patient sees it: every message but internal notes, oldest first, with the staff
    author and the attachments of outbound messages, in a constant number of queries."""
    return (
        communication.messages.filter(is_internal_note=False)
        .select_related("author")
        .prefetch_related("attachments")
        .order_by("created_at", "id")
    )


def pending_replies(communication: Communication) -> QuerySet[RawInbound]:
    """Replies sent from the page that the pipeline has not filed yet (shown as "sending")."""
    return RawInbound.objects.filter(
        source=RawInbound.Source.SECURE_REPLY,
        processed_at__isnull=True,
        payload__communication_id=communication.pk,
    ).order_by("received_at", "id")


def patient_attachment(communication: Communication, attachment_id: int) -> Attachment:
    """An attachment of an outbound, non-internal message of the communication; ``Attachment.DoesNotExist``
    otherwise."""
    return Attachment.objects.select_related("document").get(
        pk=attachment_id,
        message__communication=communication,
        message__direction=Message.Direction.OUTBOUND,
        message__is_internal_note=False,
    )


def record_view(*, link: SecureLink, request=None) -> None:
    """Every view of the thread on the secure page is audited as the patient's."""
    audit.record(
        actor=None, action=audit.Action.COMMUNICATION_VIEWED, request=request, communication=link.communication,
        actor_label=patient_label(link.address), detail={"via": VIA},
    )  # fmt: skip


def record_download(*, link: SecureLink, attachment: Attachment, request=None) -> None:
    audit.record(
        actor=None, action=audit.Action.ATTACHMENT_DOWNLOADED, request=request,
        communication=link.communication, obj=attachment, actor_label=patient_label(link.address),
        detail={"via": VIA},
    )  # fmt: skip


def new_reply_nonce() -> str:
    """A fresh id for one rendering of the reply form: submitting the same form twice files one message."""
    return secrets.token_urlsafe(18)


def submit_reply(*, link: SecureLink, text: str, nonce: str, request=None) -> RawInbound:
    """Store the patient's reply raw-first (its own transaction); the ingestion pipeline files it as a secure
    inbound message (``inbox.ingest.secure.ingest_secure_reply``).

    The provider id is the communication, the form's nonce and a digest of the text, so a double submit of one
    form is one item while a different text is never mistaken for a duplicate.
    """
    from .ingest.common import safe_text
    from .ingest.raw import store_raw

    require_address_on_file(link)
    text = safe_text(text or "").replace("\r\n", "\n").strip()
    if not text:
        raise ReplyRefused("Write a message before sending.")
    if len(text) > MAX_REPLY_CHARS:
        raise ReplyRefused(f"A reply can be at most {MAX_REPLY_CHARS:,} characters long.")
    if not NONCE.fullmatch(nonce or ""):
        raise ReplyRefused(
            "This form has expired. Please copy your message, reload the page and send it again."
        )
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    meta = request.META if request is not None else {}
    row, _ = store_raw(
        source=RawInbound.Source.SECURE_REPLY,
        provider_id=f"secure:{link.communication.pk}:{nonce}:{digest}",
        payload={
            "communication_id": link.communication.pk,
            "message_id": link.message.pk,
            "text": text,
            "sender_address": link.address,
        },
        envelope={
            "remote_addr": audit.client_ip(request) or "",
            "user_agent": str(meta.get("HTTP_USER_AGENT", ""))[:400],
        },
    )
    return row
