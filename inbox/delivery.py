"""Outbound delivery behind one interface per channel: email through Django's email backends, SMS through the
configured SMS backend (console or in-memory here; Twilio when configured)."""

import logging
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.utils.module_loading import import_string

from .models import Channel, Message

logger = logging.getLogger(__name__)


class DeliveryError(Exception):
    pass


@dataclass(frozen=True)
class SmsResult:
    provider_id: str


class ConsoleSmsBackend:
    """Writes outbound SMS to the log (embedded default)."""

    def send(self, *, to: str, from_: str, body: str, media_urls: tuple[str, ...] = ()) -> SmsResult:
        provider_id = f"LOCAL{uuid.uuid4().hex}"
        logger.info("sms sent", extra={"to": to, "from": from_, "body": body, "provider_id": provider_id})
        return SmsResult(provider_id=provider_id)


class LocmemSmsBackend:
    """Keeps outbound SMS in ``LocmemSmsBackend.outbox`` (tests)."""

    outbox: list[dict] = []

    def send(self, *, to: str, from_: str, body: str, media_urls: tuple[str, ...] = ()) -> SmsResult:
        provider_id = f"LOCAL{uuid.uuid4().hex}"
        self.outbox.append(
            {"to": to, "from": from_, "body": body, "media_urls": media_urls, "sid": provider_id}
        )
        return SmsResult(provider_id=provider_id)


class TwilioSmsBackend:
    """Sends through Twilio's REST API (``TWILIO_ACCOUNT_SID`` / ``TWILIO_AUTH_TOKEN``); Twilio then reports
    delivered / undelivered / failed to ``/hooks/sms/twilio/status/`` under ``PUBLIC_BASE_URL``."""

    def send(self, *, to: str, from_: str, body: str, media_urls: tuple[str, ...] = ()) -> SmsResult:
        from twilio.rest import Client

        if not (settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN):
            raise DeliveryError("Twilio is not configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN).")
        client = Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN)
        options = {"media_url": list(media_urls)} if media_urls else {}
        sent = client.messages.create(
            to=to,
            from_=from_,
            body=body,
            status_callback=f"{settings.PUBLIC_BASE_URL.rstrip('/')}/hooks/sms/twilio/status/",
            **options,
        )
        return SmsResult(provider_id=sent.sid)


def sms_backend():
    return import_string(getattr(settings, "SMS_BACKEND", "inbox.delivery.ConsoleSmsBackend"))()


def send_sms(message: Message) -> str:
    communication = message.communication
    line = communication.sending_line
    if line is None:
        raise DeliveryError("The communication has no sending line.")
    return (
        sms_backend()
        .send(to=message.recipient_address, from_=line.number, body=message.body_text)
        .provider_id
    )


def build_email(message: Message) -> EmailMultiAlternatives:
    """The outbound email, threaded (Message-ID, In-Reply-To, References) and answerable to the inbound address."""
    communication = message.communication
    headers = {"Message-ID": message.email_message_id}
    if message.in_reply_to:
        headers["In-Reply-To"] = message.in_reply_to
    if message.references:
        headers["References"] = message.references
    reply_to = [communication.inbound_address.address] if communication.inbound_address_id else []
    subject = message.subject or communication.subject or "A message from your care team"
    if message.is_secure:
        from .secure import secure_notice

        text, html = secure_notice(message)
    else:
        text, html = message.body_text, message.body_html
    email = EmailMultiAlternatives(
        subject=subject, body=text, to=[message.recipient_address], reply_to=reply_to, headers=headers
    )
    if html:
        email.attach_alternative(html, "text/html")
    if not message.is_secure:
        for attachment in message.attachments.select_related("document"):
            source = attachment.document.file if attachment.document_id else attachment.file
            with source.open("rb") as fh:
                email.attach(attachment.filename, fh.read(), attachment.content_type)
    return email


def send_email(message: Message) -> str:
    build_email(message).send(fail_silently=False)
    return message.email_message_id


def deliver(message: Message) -> str:
    """Hand one outbound message to its channel; returns the provider id."""
    channel = message.communication.channel
    if channel == Channel.SMS:
        return send_sms(message)
    if channel in (Channel.EMAIL, Channel.SECURE_EMAIL):
        return send_email(message)
    if channel == Channel.CHAT:
        return f"chat-{message.pk}"  # chat messages are delivered over the patient's WebSocket
    raise DeliveryError(f"No delivery for channel {channel!r}.")
