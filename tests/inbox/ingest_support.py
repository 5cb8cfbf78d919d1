"""Shared helpers of the ingestion tests: eager Celery, building raw emails, signing webhooks, receiving items."""

import hashlib
import hmac
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from twilio.request_validator import RequestValidator

from inbox.ingest.pipeline import process
from inbox.ingest.raw import email_provider_id, store_raw
from inbox.models import RawInbound

EMAIL_SECRET = "test-inbound-secret"
TWILIO_TOKEN = "test-twilio-token"


@pytest.fixture(autouse=True)
def eager_celery():
    """Run Celery tasks in-process whatever the environment (CI sets REDIS_URL, where eager is off)."""
    from inbox_project.celery import app

    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


@pytest.fixture(autouse=True)
def hook_secrets(settings):
    settings.INBOUND_EMAIL_SECRET = EMAIL_SECRET
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.TWILIO_ACCOUNT_SID = "ACtest"


def build_email(
    *,
    sender: str = "Maria Lopez <maria@mail.example>",
    to: str = "care@clinic.example",
    subject: str = "Question about my medication",
    body: str | None = "Hi, can I take it with food?",
    html: str | None = None,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    headers: dict | None = None,
    attachments: tuple = (),
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or make_msgid(domain="mail.example")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    for name, value in (headers or {}).items():
        msg[name] = value
    if body is not None:
        msg.set_content(body)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    for filename, data, maintype, subtype in attachments:
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def receive_email(raw: bytes, *, source=RawInbound.Source.EMAIL_WEBHOOK, envelope=None) -> RawInbound:
    """Store a raw email as a webhook or SMTP would, process it, and return the raw row as it ends up."""
    row, _ = store_raw(source=source, provider_id=email_provider_id(raw), raw=raw, envelope=envelope or {})
    process(row.pk)
    row.refresh_from_db()
    return row


def file_one(raw_id: int) -> None:
    """How ``receive_sms`` files what it stored: the one-by-one path (``process``) unless a test module's
    ``sms_filing`` fixture switches it to the worker's batch path."""
    process(raw_id)


def file_in_a_batch(raw_id: int) -> None:
    from inbox.ingest.batch import process_batch

    assert process_batch() >= 1, "the batch did not claim the stored item"


@pytest.fixture(params=["one by one", "in a batch"])
def sms_filing(request, monkeypatch):
    """Run a test once per filing path: ``pipeline.process`` (eager mode, the sweeper) and ``batch.process_batch``
    (the worker's drain), which must file SMS identically."""
    import inbox.ingest.raw
    import tests.inbox.ingest_support as support

    if request.param == "in a batch":
        # Stored items wait for the drain, as with a worker (eager mode would file them at once, one by one).
        monkeypatch.setattr(inbox.ingest.raw, "enqueue", lambda raw_id: True)
        monkeypatch.setattr(support, "file_one", file_in_a_batch)
    else:
        monkeypatch.setattr(support, "file_one", process)
    return request.param


def receive_sms(*, sender: str, to: str, body: str = "Hi", sid: str | None = None, **extra) -> RawInbound:
    sid = sid or "SM" + hashlib.sha256(f"{sender}{to}{body}{extra}".encode()).hexdigest()[:32]
    payload = {"MessageSid": sid, "From": sender, "To": to, "Body": body, "NumMedia": "0", **extra}
    row, _ = store_raw(source=RawInbound.Source.TWILIO_SMS, provider_id=sid, payload=payload)
    import tests.inbox.ingest_support as support

    support.file_one(row.pk)
    row.refresh_from_db()
    return row


def email_signature(body: bytes, secret: str = EMAIL_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def twilio_signature(url: str, params: dict, token: str = TWILIO_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


def post_email(client, body: bytes):
    """Raw MIME to the email webhook, signed as the provider signs it."""
    return client.post(
        "/hooks/email/inbound/",
        body,
        content_type="message/rfc822",
        HTTP_X_INBOX_SIGNATURE=email_signature(body),
    )


def post_twilio(client, path: str, params: dict, *, scheme: str = "http", **extra):
    signature = twilio_signature(f"{scheme}://testserver{path}", params)
    return client.post(path, params, HTTP_X_TWILIO_SIGNATURE=signature, **extra)
