"""Hostile bytes never lose an inbound item: a NUL (which PostgreSQL text cannot hold), a lone surrogate, an RTL mark
or a very long value in an SMTP envelope, header or body, or in any field of a signed Twilio SMS, is acknowledged,
kept exactly as received on the raw item, and then filed with clean text or failed with a clear error on the
ingestion health page."""

import smtplib
from urllib.parse import urlencode

import pytest
import requests
from django.urls import reverse

from inbox.ingest.common import safe_id, safe_text
from inbox.ingest.pipeline import process
from inbox.ingest.raw import store_raw
from inbox.models import Message, RawInbound
from tests.factories import InboundAddressFactory, PatientContactMethodFactory, SendingLineFactory
from tests.inbox.ingest_support import (  # noqa: F401  (eager_celery, hook_secrets: autouse fixtures)
    eager_celery,
    hook_secrets,
    twilio_signature,
)
from tests.network import smtp_receiver_running

pytestmark = pytest.mark.django_db(transaction=True)

MARIA_EMAIL = "maria@mail.example"
MARIA = "+15550102030"
LINE = "+15550100000"
SMS_URL = "/hooks/sms/twilio/"
STATUS_URL = "/hooks/sms/twilio/status/"
RTL = "\u200f\u202e"  # RIGHT-TO-LEFT MARK, RIGHT-TO-LEFT OVERRIDE


@pytest.fixture
def maria(patient):
    PatientContactMethodFactory(patient=patient, kind="email", value=MARIA_EMAIL)
    PatientContactMethodFactory(patient=patient, kind="phone", value=MARIA)
    InboundAddressFactory(address="care@clinic.example")
    SendingLineFactory(number=LINE)
    return patient


@pytest.fixture
def server():
    with smtp_receiver_running(max_bytes=2_000_000) as controller:
        yield controller


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(url, **kwargs):
        raise AssertionError(f"network access in a test: {url!r}")

    monkeypatch.setattr(requests, "get", refuse)


def mime(*, sender=f"Maria <{MARIA_EMAIL}>", subject="Refill", body="Please refill.") -> bytes:
    headers = (
        f"Subject: {subject}\r\nTo: care@clinic.example\r\nMessage-ID: <m{abs(hash(body))}@mail.example>\r\n"
    )
    if sender is not None:
        headers = f"From: {sender}\r\n" + headers
    return (headers + "\r\n" + body + "\r\n").encode("utf-8", "surrogateescape")


def command(client: smtplib.SMTP, line: bytes) -> int:
    """Send one SMTP command as these exact bytes; its reply code."""
    client.send(line + b"\r\n")
    return client.getreply()[0]


def deliver(server, *, helo: bytes, mail_from: bytes, rcpt_to: bytes, content: bytes) -> list[int]:
    """One delivery with the envelope sent byte for byte; the reply code of every step."""
    with smtplib.SMTP(server.hostname, server.port, timeout=30) as client:
        codes = [command(client, b"EHLO " + helo), command(client, b"MAIL FROM:" + mail_from)]
        codes.append(command(client, b"RCPT TO:" + rcpt_to))
        codes.append(client.data(content)[0])
    return codes


def health_page(client, administrator) -> str:
    client.force_login(administrator)
    response = client.get(reverse("adminportal:ingestion"))
    assert response.status_code == 200
    return response.content.decode()


# --- SMTP ------------------------------------------------------------------------------------------------


def test_a_nul_in_mail_from_gets_250_at_every_step_and_is_kept_exactly_and_filed(server, maria):
    content = mime(sender=None, body="Refill please.")  # no From header: the envelope sender is the sender
    codes = deliver(
        server, helo=b"mx.mail.example", mail_from=b"<a\x00b@example.org>", rcpt_to=b"<care@clinic.example>",
        content=content,
    )  # fmt: skip
    assert codes == [250, 250, 250, 250]
    raw = RawInbound.objects.get()
    assert raw.envelope["mail_from"] == "a\x00b@example.org"
    assert bytes(raw.raw).replace(b"\r\n", b"\n") == content.replace(b"\r\n", b"\n")
    assert raw.processed_at is not None and raw.error == ""
    assert raw.message.sender_address == "ab@example.org"
    assert raw.message.body_text == "Refill please."


def test_the_same_nul_envelope_twice_is_accepted_both_times(server, maria):
    content = mime(body="Twice.")
    for _ in range(2):
        codes = deliver(
            server, helo=b"mx", mail_from=b"<a\x00b@example.org>", rcpt_to=b"<care@clinic.example>",
            content=content,
        )  # fmt: skip
        assert codes == [250, 250, 250, 250]
    assert RawInbound.objects.count() == 1 and Message.objects.count() == 1


def test_a_nul_in_rcpt_to_and_ehlo_is_kept_and_the_mail_filed_for_the_address_it_names(server, maria):
    codes = deliver(
        server, helo=b"mx\x00.mail.example", mail_from=f"<{MARIA_EMAIL}>".encode(),
        rcpt_to=b"<care\x00@clinic.example>", content=mime(body="From the NUL route."),
    )  # fmt: skip
    assert codes == [250, 250, 250, 250]
    raw = RawInbound.objects.get()
    assert raw.envelope["helo"] == "mx\x00.mail.example"
    assert raw.envelope["rcpt_tos"] == ["care\x00@clinic.example"]
    message = raw.message
    assert message.communication.patient == maria
    assert message.communication.inbound_address.address == "care@clinic.example"
    assert message.body_text == "From the NUL route."


def test_undecodable_bytes_in_the_envelope_are_kept_as_lone_surrogates(server, maria):
    # aiosmtpd reads 8-bit envelope bytes as UTF-8 with surrogateescape: b"\xff" arrives as "\udcff".
    codes = deliver(
        server, helo=b"mx\xff.example", mail_from=b"<\xff\xfe@example.org>", rcpt_to=b"<care@clinic.example>",
        content=mime(sender=None, body="Eight bit."),
    )  # fmt: skip
    assert codes == [250, 250, 250, 250]
    raw = RawInbound.objects.get()
    assert raw.envelope["mail_from"] == "\udcff\udcfe@example.org"
    assert raw.envelope["helo"] == "mx\udcff.example"
    assert raw.envelope["mail_from"].encode("utf-8", "surrogateescape") == b"\xff\xfe@example.org"
    assert raw.message.sender_address == "\ufffd\ufffd@example.org"


def test_rtl_marks_and_very_long_envelope_values_are_kept(server, maria):
    helo = "mx." + "h" * 1500 + ".example"
    sender = f"{RTL}{'x' * 1500}@example.org"
    codes = deliver(
        server, helo=helo.encode(), mail_from=f"<{sender}> SMTPUTF8".encode(),
        rcpt_to=b"<care@clinic.example>", content=mime(sender=None, body="Long envelope."),
    )  # fmt: skip
    assert codes == [250, 250, 250, 250]
    raw = RawInbound.objects.get()
    assert raw.envelope["helo"] == helo and raw.envelope["mail_from"] == sender
    assert raw.processed_at is not None, raw.error
    assert raw.message.body_text == "Long envelope."
    assert (
        raw.message.sender_address == sender.lower()[:254]
    )  # shown cut to the column; kept whole on the raw item


def test_nul_in_headers_and_body_is_kept_in_the_raw_bytes_and_removed_from_the_filed_text(server, maria):
    content = mime(subject="Re\x00fill", body="Please\x00 refill " + RTL + "now.")
    codes = deliver(
        server, helo=b"mx", mail_from=f"<{MARIA_EMAIL}>".encode(), rcpt_to=b"<care@clinic.example>",
        content=content,
    )  # fmt: skip
    assert codes == [250, 250, 250, 250]
    raw = RawInbound.objects.get()
    assert b"Re\x00fill" in bytes(raw.raw) and b"Please\x00 refill" in bytes(raw.raw)
    message = raw.message
    assert message.subject == "Refill"
    assert message.body_text == "Please refill " + RTL + "now."
    assert message.communication.patient == maria


def test_a_nul_in_the_message_id_is_digested_not_cleaned(server, maria):
    nul_id = b"Message-ID: <a\x00b@mail.example>"
    plain_id = b"Message-ID: <ab@mail.example>"
    for message_id in (nul_id, plain_id):
        content = mime(body="Same body.").replace(b"Message-ID: <", b"X-Was: <", 1)
        content = message_id + b"\r\n" + content
        assert deliver(
            server, helo=b"mx", mail_from=f"<{MARIA_EMAIL}>".encode(), rcpt_to=b"<care@clinic.example>",
            content=content,
        ) == [250, 250, 250, 250]  # fmt: skip
    ids = set(RawInbound.objects.values_list("provider_id", flat=True))
    assert ids == {safe_id("<a\x00b@mail.example>"), "<ab@mail.example>"}
    assert (
        Message.objects.count() == 2
    )  # two emails, two messages: the NUL one is not a duplicate of the other


# --- Twilio SMS ------------------------------------------------------------------------------------------


def sms(sid="SM" + "0" * 32, **fields) -> dict:
    return {"MessageSid": sid, "AccountSid": "ACtest", "From": MARIA, "To": LINE, "Body": "Hi", "NumMedia": "0",
            **fields}  # fmt: skip


def post_twilio(client, path: str, params: dict):
    """Form-encoded and signed, as Twilio posts its webhooks."""
    signature = twilio_signature(f"http://testserver{path}", params)
    return client.post(
        path,
        urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
    )


def assert_kept_exactly(raw: RawInbound, params: dict) -> None:
    assert raw.payload == params
    assert bytes(raw.raw) == urlencode(params).encode()


@pytest.mark.parametrize(
    ("field", "value", "filed_body"),
    [
        ("Body", "Hi\x00 there", "Hi there"),
        ("Body", f"{RTL}Hi", f"{RTL}Hi"),
        ("Body", "long " * 4000, ("long " * 4000).strip()),
        ("From", "+1555010\x002030", "Hi"),
        ("To", "+1555010\x000000", "Hi"),
        ("MessageSid", "SM\x00" + "1" * 32, "Hi"),
        ("AccountSid", "AC\x00test", "Hi"),
        ("Extra\x00Name", "value\x00", "Hi"),
    ],
)
def test_a_signed_sms_with_a_nul_or_odd_text_in_any_field_is_acknowledged_kept_and_filed(
    client, maria, field, value, filed_body
):
    params = sms(**{field: value})
    response = post_twilio(client, SMS_URL, params)
    assert response.status_code == 200
    raw = RawInbound.objects.get()
    assert_kept_exactly(raw, params)
    assert raw.provider_id == safe_id(params["MessageSid"])
    assert raw.processed_at is not None, raw.error
    message = raw.message
    assert message.body_text == filed_body
    assert message.communication.patient == maria
    assert message.sender_address == MARIA and message.recipient_address == LINE
    assert message.provider_id == safe_id(params["MessageSid"])


def test_the_workers_batch_files_a_nul_sms_as_the_one_by_one_path_does(maria, monkeypatch):
    import inbox.ingest.raw
    from inbox.ingest.batch import process_batch

    monkeypatch.setattr(
        inbox.ingest.raw, "enqueue", lambda raw_id: True
    )  # wait for the drain, as with a worker
    params = sms(sid="SM\x00batch", From="+1555010\x002030", Body="Bat\x00ch")
    row, _ = store_raw(source=RawInbound.Source.TWILIO_SMS, provider_id=params["MessageSid"], payload=params)
    assert process_batch() >= 1
    row.refresh_from_db()
    assert row.payload == params and row.processed_at is not None, row.error
    assert row.message.body_text == "Batch" and row.message.sender_address == MARIA
    assert row.message.provider_id == safe_id("SM\x00batch")


def test_a_nul_message_sid_is_stable_unique_and_never_confused_with_the_sid_without_it(client, maria):
    nul, plain = sms(sid="SM\x00abc", Body="first"), sms(sid="SMabc", Body="second")
    for params in (nul, nul, plain):  # Twilio retrying the first delivery
        assert post_twilio(client, SMS_URL, params).status_code == 200
    assert RawInbound.objects.count() == 2
    assert sorted(Message.objects.values_list("body_text", flat=True)) == ["first", "second"]
    assert (
        RawInbound.objects.filter(provider_id=safe_id("SM\x00abc")).get().payload["MessageSid"] == "SM\x00abc"
    )


def test_a_nul_in_a_media_url_is_kept_not_fetched_and_the_text_filed_with_a_note(client, maria):
    params = sms(NumMedia="1", MediaUrl0="https://api.twilio.com/2010-04-01/Media/ME\x001",
                 MediaContentType0="image/\x00jpeg", Body="Photo")  # fmt: skip
    assert post_twilio(client, SMS_URL, params).status_code == 200
    raw = RawInbound.objects.get()
    assert_kept_exactly(raw, params)
    message = raw.message
    assert message.body_text.startswith("Photo\n\nAttachment “mms-1")
    assert "refused" in message.body_text and "\x00" not in message.body_text
    assert message.attachments.count() == 0


def test_a_signed_sms_that_cannot_be_filed_is_kept_and_shown_on_the_health_page(client, maria, administrator):
    params = sms(To="+1999\x000000000")  # not a sending line of ours
    assert post_twilio(client, SMS_URL, params).status_code == 200
    raw = RawInbound.objects.get()
    assert_kept_exactly(raw, params)
    assert raw.processed_at is None
    assert raw.error == "The SMS was sent to +19990000000, which is not an active sending line."
    assert process(raw.pk) == "failed"  # processed again (the sweeper): fails the same way, counted, no loop
    raw.refresh_from_db()
    assert raw.attempts == 2
    page = health_page(client, administrator)
    assert f'data-raw="{raw.pk}"' in page and "not an active sending line" in page


def test_a_status_callback_with_a_nul_sid_is_acknowledged_kept_and_failed_clearly(
    client, maria, administrator
):
    params = {"MessageSid": "SM\x00out", "MessageStatus": "delivered", "AccountSid": "ACtest"}
    assert post_twilio(client, STATUS_URL, params).status_code == 200
    raw = RawInbound.objects.get(source=RawInbound.Source.TWILIO_STATUS)
    assert_kept_exactly(raw, params)
    assert raw.processed_at is None and raw.error.startswith("No outbound message has the MessageSid sha256:")
    assert f'data-raw="{raw.pk}"' in health_page(client, administrator)


# --- the one normaliser --------------------------------------------------------------------------------------


def test_safe_text_removes_nul_and_replaces_any_lone_surrogate():
    assert safe_text("a\x00b") == "ab"
    assert safe_text("\udcc3\udca9t\udcff") == "ét\ufffd"  # surrogateescape'd UTF-8 is read again
    assert safe_text("x\ud800y") == "x\ufffdy"  # a surrogate no decoder made (a JSON escape) no longer raises
    assert safe_text(RTL) == RTL


def test_safe_id_keeps_storable_ids_and_digests_the_rest():
    assert safe_id("SM123") == "SM123"
    assert safe_id("SM\x00123") != safe_id("SM123") and safe_id("SM\x00123").startswith("sha256:")
    assert safe_id("x" * 256).startswith("sha256:") and safe_id("x" * 255) == "x" * 255
    assert safe_id("\udcff") == safe_id("\udcff") != safe_id("\udcfe")
