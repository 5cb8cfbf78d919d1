"""Property-based: arbitrary text in every field of every provider webhook and in the SMTP envelope is acknowledged
and every inbound item is kept — never a 5xx, never a 451, never an item lost.

Webhook fields get any text a provider can send (valid UTF-8: NUL, control and format characters, right-to-left
marks, noncharacters, 100 KB strings); the SMTP envelope gets any bytes but the line ending (8-bit bytes arrive as
lone surrogates). The explicit cases of each transport are in ``tests/inbox/test_hostile_inbound.py``.
"""

import itertools
import re
import smtplib
from urllib.parse import urlencode

import pytest
from django.test import Client
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from inbox.ingest.common import safe_id
from inbox.ingest.raw import email_provider_id
from inbox.models import RawInbound
from tests.factories import InboundAddressFactory, PatientContactMethodFactory, SendingLineFactory
from tests.inbox.ingest_support import (  # noqa: F401  (eager_celery, hook_secrets: autouse fixtures)
    eager_celery,
    email_signature,
    hook_secrets,
    twilio_signature,
)
from tests.network import smtp_receiver_running

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),  # the 100 KB example
]

MARIA = "+15550102030"
LINE = "+15550100000"
ADDRESS = "care@clinic.example"
BIG = "x" * 100_000
HOSTILE = ["\x00", "a\x00b", "\u200f\u202eevil", BIG, "\ufffe\uffff", "\r\n\t", "%00", "=&?"]
PROPERTY = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# What a provider can put in a form field: any Unicode scalar value (no lone surrogates: not valid UTF-8).
provider_text = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_categories=()), max_size=60),
    st.sampled_from(HOSTILE),
)
unique = itertools.count()


@pytest.fixture
def world(patient):
    PatientContactMethodFactory(patient=patient, kind="phone", value=MARIA)
    PatientContactMethodFactory(patient=patient, kind="email", value="maria@mail.example")
    InboundAddressFactory(address=ADDRESS)
    SendingLineFactory(number=LINE)
    return patient


def post_twilio(path: str, params: dict):
    return Client().post(
        path,
        urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=twilio_signature(f"http://testserver{path}", params),
    )


SMS_FIELDS = ["MessageSid", "AccountSid", "From", "To", "Body", "NumMedia", "MediaUrl0", "MediaContentType0"]


@pytest.mark.parametrize("field", [*SMS_FIELDS, "an unknown field"])
def test_any_text_in_any_field_of_a_signed_sms_is_acknowledged_and_kept(world, field):
    @PROPERTY
    @given(value=provider_text)
    @example(value="\x00")
    @example(value=BIG)
    def check(value):
        number = next(unique)
        params = {
            "MessageSid": f"SM{number:032d}",
            "AccountSid": "ACtest",
            "From": MARIA,
            "To": LINE,
            "Body": "Hi",
            "NumMedia": "0",
        }
        params[field] = value if field != "MessageSid" else f"{value}{number}"
        response = post_twilio("/hooks/sms/twilio/", params)
        assert response.status_code == 200, (field, response.status_code)
        raw = RawInbound.objects.get(
            source=RawInbound.Source.TWILIO_SMS, provider_id=safe_id(params["MessageSid"])
        )
        assert raw.payload == params
        assert raw.processed_at is not None or raw.error, "neither filed nor failed with a reason"

    check()


@pytest.mark.parametrize("field", ["MessageSid", "MessageStatus", "ErrorCode", "To", "an unknown field"])
def test_any_text_in_any_field_of_a_signed_status_callback_is_acknowledged_and_kept(world, field):
    @PROPERTY
    @given(value=provider_text)
    @example(value="a\x00b")
    def check(value):
        number = next(unique)
        params = {"MessageSid": f"SM{number:032d}", "MessageStatus": "delivered", "To": MARIA, "From": LINE}
        params[field] = value if field != "MessageSid" else f"{value}{number}"
        before = RawInbound.objects.filter(source=RawInbound.Source.TWILIO_STATUS).count()
        response = post_twilio("/hooks/sms/twilio/status/", params)
        assert response.status_code == 200, (field, response.status_code)
        assert RawInbound.objects.filter(source=RawInbound.Source.TWILIO_STATUS).count() == before + 1

    check()


def mime(*, sender: str, subject: str, body: str, number: int) -> bytes:
    text = f"From: {sender}\r\nTo: {ADDRESS}\r\nSubject: {subject}\r\nMessage-ID: <p{number}@mail.example>\r\n\r\n{body}\r\n"
    return text.encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("field", ["sender", "subject", "body"])
def test_any_text_in_an_emails_headers_or_body_through_the_webhook_is_acknowledged_and_kept(world, field):
    @PROPERTY
    @given(value=provider_text)
    @example(value="Re\x00fill")
    def check(value):
        number = next(unique)
        parts = {"sender": "Maria <maria@mail.example>", "subject": "Refill", "body": "Please."}
        parts[field] = value.replace("\r", " ").replace("\n", " ") if field != "body" else value
        content = mime(**parts, number=number)
        response = Client().post(
            "/hooks/email/inbound/",
            content,
            content_type="message/rfc822",
            HTTP_X_INBOX_SIGNATURE=email_signature(content),
        )
        assert response.status_code == 200, (field, response.status_code)
        raw = RawInbound.objects.get(
            source=RawInbound.Source.EMAIL_WEBHOOK, provider_id=email_provider_id(content)
        )
        assert bytes(raw.raw) == content
        assert raw.processed_at is not None or raw.error, "neither filed nor failed with a reason"

    check()


# --- The SMTP envelope ----------------------------------------------------------------------------------------


@pytest.fixture
def server():
    with smtp_receiver_running(max_bytes=2_000_000) as controller:
        yield controller


# Any bytes but the line ending (which would end the command) and ``>`` (which ends the address). What RFC 5321's
# grammar cannot read as an address (":" alone, a tab) is refused for good (501/553) — never "try later" (4xx), which
# is what "cannot store" would say; every address it reads, NUL and 8-bit bytes included, is accepted and kept.
envelope_bytes = st.binary(max_size=60).map(
    lambda raw: raw.replace(b"\r", b"").replace(b"\n", b"").replace(b">", b"")
)


# Any bytes (NUL, control, 8-bit) but whitespace and RFC 5322 specials before @example.org: always accepted.
PLAIN_ADDRESS = re.compile(rb'[^\s"(),.:;<>@\[\\\]]+@example\.org')


def command(client: smtplib.SMTP, line: bytes) -> int:
    client.send(line + b"\r\n")
    return client.getreply()[0]


def test_any_bytes_in_the_smtp_envelope_are_accepted_and_kept(server, world):
    @PROPERTY
    @given(helo=envelope_bytes, sender=envelope_bytes)
    @example(helo=b"mx\x00", sender=b"a\x00b@example.org")
    @example(helo=b"\xff\xfe", sender=b"\xed\xa0\x80@example.org")
    @example(helo=b"mx", sender=b"\x00\x01\x7f\xc3\x28@example.org")
    def check(helo, sender):
        number = next(unique)
        content = mime(sender="Maria <maria@mail.example>", subject="Refill", body="Please.", number=number)
        with smtplib.SMTP(server.hostname, server.port, timeout=60) as client:
            assert command(client, b"EHLO " + (helo.strip() or b"x")) == 250, helo
            code = command(client, b"MAIL FROM:<" + sender + b">")
            if code in (
                501,
                553,
            ):  # not an address by RFC 5321's grammar (e.g. ":" or a tab): refused for good
                assert not PLAIN_ADDRESS.fullmatch(sender), f"a plain address refused: {sender!r}"
                return
            assert code == 250, (sender, code)
            assert command(client, f"RCPT TO:<{ADDRESS}>".encode()) == 250
            assert client.data(content)[0] == 250
        raw = RawInbound.objects.get(source=RawInbound.Source.SMTP, provider_id=email_provider_id(content))
        assert bytes(raw.raw).replace(b"\r\n", b"\n") == content.replace(b"\r\n", b"\n")
        line = raw.envelope["mail_from_line"].encode("utf-8", "surrogateescape")
        assert line == b"FROM:<" + sender + b">" or line.strip() == (b"FROM:<" + sender + b">").strip(), line
        assert raw.processed_at is not None or raw.error, "neither filed nor failed with a reason"

    check()


def test_any_bytes_in_the_recipient_never_make_the_receiver_fail(server, world):
    """An address nobody configured is refused (550/553/501); what is accepted is kept; "cannot store" never."""

    @PROPERTY
    @given(local=envelope_bytes)
    @example(local=b"care\x00")
    def check(local):
        with smtplib.SMTP(server.hostname, server.port, timeout=60) as client:
            assert command(client, b"EHLO mx") == 250
            assert command(client, b"MAIL FROM:<maria@mail.example>") == 250
            code = command(client, b"RCPT TO:<" + local + b"@clinic.example>")
        assert code in (250, 501, 550, 553), (local, code)

    check()
