"""Provider webhooks: inbound email (raw MIME, HMAC-signed) and Twilio SMS and status callbacks.

Each verifies its sender's signature (these are the project's only ``csrf_exempt`` views), stores the raw item in
its own transaction and only then acknowledges; when the database cannot store it, it answers 503 so the sender
retries. What the sender legitimately sent is always storable (a NUL or a lone surrogate in any field included:
``RawInbound``'s fields keep any text, and the body is kept as bytes), so a 503 means an outage, never the content.
Parsing happens later, in the ``process_inbound`` task.
"""

import hashlib
import hmac
import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.request_validator import RequestValidator

from .ingest.raw import email_provider_id, store_raw
from .ingest.status import status_provider_id
from .models import RawInbound

logger = logging.getLogger(__name__)

DEFAULT_MAX_EMAIL_BYTES = 25 * 1024 * 1024
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
SIGNATURE_HEADER = "HTTP_X_INBOX_SIGNATURE"
TWILIO_SIGNATURE_HEADER = "HTTP_X_TWILIO_SIGNATURE"


def _max_bytes() -> int:
    return int(getattr(settings, "INBOUND_MAX_EMAIL_BYTES", DEFAULT_MAX_EMAIL_BYTES))


def _too_large(request) -> bool:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0) > _max_bytes()
    except ValueError:
        return False


def _body(request) -> bytes | None:
    """The request body, or None when it is over the limit (checked before and after reading it)."""
    if _too_large(request):
        return None
    try:
        body = request.body
    except RequestDataTooBig:
        return None
    return None if len(body) > _max_bytes() else body


def _text(message: str, status: int) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


TOO_LARGE = ("The request is larger than the inbound limit.", 413)
UNAVAILABLE = ("Temporarily unable to store the item; retry later.", 503)


def _store(**kwargs) -> RawInbound | None:
    try:
        row, _ = store_raw(**kwargs)
    except DatabaseError:
        logger.exception(
            "could not store an inbound item; answered 503", extra={"source": kwargs.get("source")}
        )
        return None
    return row


def email_signature(secret: str, body: bytes) -> str:
    """The ``X-Inbox-Signature`` value for ``body``: ``sha256=<hex HMAC-SHA256 with INBOUND_EMAIL_SECRET>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@csrf_exempt
@require_POST
def email_inbound(request):
    """Raw MIME posted by an email provider, authenticated by an HMAC of the body."""
    secret = getattr(settings, "INBOUND_EMAIL_SECRET", "")
    if not secret:
        return _text("The inbound email webhook is not configured.", 503)
    body = _body(request)
    if body is None:
        return _text(*TOO_LARGE)
    provided = request.META.get(SIGNATURE_HEADER, "")
    if not provided or not hmac.compare_digest(email_signature(secret, body), provided):
        return _text("Invalid or missing signature.", 403)
    row = _store(
        source=RawInbound.Source.EMAIL_WEBHOOK,
        provider_id=email_provider_id(body),
        raw=body,
        envelope={"peer": request.META.get("REMOTE_ADDR", "")},
    )
    if row is None:
        return _text(*UNAVAILABLE)
    return JsonResponse({"status": "accepted", "id": row.pk})


def _twilio_verified(request) -> HttpResponse | None:
    """None when the request carries a valid ``X-Twilio-Signature``, else the response to give."""
    token = getattr(settings, "TWILIO_AUTH_TOKEN", "")
    if not token:
        return _text("The Twilio webhooks are not configured.", 503)
    if (
        _body(request) is None
    ):  # read before the form is parsed, so the bytes can be kept whatever the form type
        return _text(*TOO_LARGE)
    signature = request.META.get(TWILIO_SIGNATURE_HEADER, "")
    # The URL exactly as Twilio called it (https behind the proxy, per SECURE_PROXY_SSL_HEADER).
    url = request.build_absolute_uri()
    if not signature or not RequestValidator(token).validate(url, request.POST, signature):
        return _text("Invalid or missing signature.", 403)
    return None


def _twiml() -> HttpResponse:
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")


def _twilio_item(request) -> dict:
    """What a Twilio webhook stores: the form body exactly as received (bytes) and its parameters."""
    return {
        "raw": request.body,  # read (and size-checked) by ``_twilio_verified`` before the form was parsed
        "payload": dict(request.POST.items()),
        "envelope": {"peer": request.META.get("REMOTE_ADDR", "")},
    }


@csrf_exempt
@require_POST
def twilio_sms(request):
    """An inbound SMS/MMS from Twilio (deduplicated on MessageSid)."""
    refusal = _twilio_verified(request)
    if refusal is not None:
        return refusal
    item = _twilio_item(request)
    payload = item["payload"]
    row = _store(
        source=RawInbound.Source.TWILIO_SMS,
        provider_id=payload.get("MessageSid") or payload.get("SmsMessageSid") or "",
        **item,
    )
    return _text(*UNAVAILABLE) if row is None else _twiml()


@csrf_exempt
@require_POST
def twilio_status(request):
    """A delivery status callback for an outbound SMS (deduplicated on MessageSid and status)."""
    refusal = _twilio_verified(request)
    if refusal is not None:
        return refusal
    item = _twilio_item(request)
    row = _store(
        source=RawInbound.Source.TWILIO_STATUS, provider_id=status_provider_id(item["payload"]), **item
    )
    return _text(*UNAVAILABLE) if row is None else _twiml()
