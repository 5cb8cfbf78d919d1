"""The provider webhooks: signed inbound email, Twilio SMS and status callbacks — stored before they are
acknowledged, refused (and nothing stored) when forged, oversize or when the database is down."""

import pytest
from django.db import OperationalError

from inbox import views
from inbox.models import Communication, Message, RawInbound
from tests.factories import (
    InboundAddressFactory,
    MessageFactory,
    PatientContactMethodFactory,
    SendingLineFactory,
)
from tests.inbox.ingest_support import (  # noqa: F401  (eager_celery, hook_secrets: autouse fixtures)
    build_email,
    eager_celery,
    email_signature,
    hook_secrets,
    post_twilio,
)

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL_URL = "/hooks/email/inbound/"
SMS_URL = "/hooks/sms/twilio/"
STATUS_URL = "/hooks/sms/twilio/status/"
MARIA = "+15550102030"


@pytest.fixture
def maria(patient):
    PatientContactMethodFactory(patient=patient, kind="email", value="maria@mail.example")
    PatientContactMethodFactory(patient=patient, kind="phone", value=MARIA)
    InboundAddressFactory(address="care@clinic.example")
    return patient


@pytest.fixture
def line(db):
    return SendingLineFactory(number="+15550100000")


def post_email(client, body: bytes, signature: str | None = None, **extra):
    headers = {} if signature is None else {"HTTP_X_INBOX_SIGNATURE": signature}
    return client.post(EMAIL_URL, body, content_type="message/rfc822", **headers, **extra)


def sms_params(sid: str = "SM00000000000000000000000000000001", body: str = "Hi there") -> dict:
    return {"MessageSid": sid, "AccountSid": "ACtest", "From": MARIA, "To": "+15550100000", "Body": body,
            "NumMedia": "0"}  # fmt: skip


# --- email ---------------------------------------------------------------------------------------------------


def test_signed_email_is_stored_and_filed(client, maria):
    body = build_email()
    response = post_email(client, body, email_signature(body))
    assert response.status_code == 200
    raw = RawInbound.objects.get()
    assert response.json() == {"status": "accepted", "id": raw.pk}
    assert bytes(raw.raw) == body and raw.source == RawInbound.Source.EMAIL_WEBHOOK
    assert raw.processed_at is not None
    assert raw.message.communication.patient == maria
    assert raw.message.provider == Message.Provider.EMAIL_WEBHOOK


@pytest.mark.parametrize("signature", ["sha256=" + "0" * 64, "", "sha256=", "deadbeef"])
def test_email_with_a_forged_signature_is_refused_and_nothing_stored(client, maria, signature):
    body = build_email()
    assert post_email(client, body, signature).status_code == 403
    assert not RawInbound.objects.exists()


def test_email_without_a_signature_is_refused_and_nothing_stored(client, maria):
    assert post_email(client, build_email()).status_code == 403
    assert not RawInbound.objects.exists()


def test_email_signed_for_another_body_is_refused(client, maria):
    assert post_email(client, build_email(body="tampered"), email_signature(build_email())).status_code == 403
    assert not RawInbound.objects.exists()


def test_email_webhook_without_a_configured_secret_answers_503(client, settings):
    settings.INBOUND_EMAIL_SECRET = ""
    body = build_email()
    response = post_email(client, body, email_signature(body, secret=""))
    assert response.status_code == 503 and b"not configured" in response.content
    assert not RawInbound.objects.exists()


def test_email_webhook_rejects_get(client):
    assert client.get(EMAIL_URL).status_code == 405


def test_oversize_email_is_refused_with_413_and_nothing_stored(client, settings, maria):
    settings.INBOUND_MAX_EMAIL_BYTES = 500
    body = build_email(body="x" * 1000)
    assert post_email(client, body, email_signature(body)).status_code == 413
    assert not RawInbound.objects.exists()


def test_email_webhook_answers_503_when_the_database_is_down(client, monkeypatch, maria):
    def database_down(**kwargs):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(views, "store_raw", database_down)
    body = build_email()
    response = post_email(client, body, email_signature(body))
    assert response.status_code == 503
    assert not RawInbound.objects.exists()


def test_the_same_email_webhook_1000_times_gives_one_message(client, maria):
    body = build_email(message_id="<dup@mail.example>")
    signature = email_signature(body)
    statuses = {post_email(client, body, signature).status_code for _ in range(1000)}
    assert statuses == {200}
    assert RawInbound.objects.count() == 1
    assert Message.objects.count() == 1
    assert Communication.objects.count() == 1


# --- Twilio SMS ----------------------------------------------------------------------------------------------


def test_signed_sms_is_stored_filed_and_answered_with_empty_twiml(client, maria, line):
    response = post_twilio(client, SMS_URL, sms_params())
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert response.content.endswith(b"<Response/>")
    raw = RawInbound.objects.get()
    assert raw.provider_id == "SM00000000000000000000000000000001"
    assert raw.payload["Body"] == "Hi there" and raw.processed_at is not None
    assert raw.message.communication.patient == maria


def test_sms_with_a_forged_signature_is_refused_and_nothing_stored(client, maria, line):
    params = sms_params()
    response = client.post(SMS_URL, params, HTTP_X_TWILIO_SIGNATURE="bm90IGEgc2lnbmF0dXJl")
    assert response.status_code == 403
    assert not RawInbound.objects.exists()


def test_sms_signed_with_another_token_is_refused(client, maria, line):
    from tests.inbox.ingest_support import twilio_signature

    params = sms_params()
    signature = twilio_signature(f"http://testserver{SMS_URL}", params, token="someone-else")
    assert client.post(SMS_URL, params, HTTP_X_TWILIO_SIGNATURE=signature).status_code == 403
    assert not RawInbound.objects.exists()


def test_sms_with_altered_parameters_is_refused(client, maria, line):
    from tests.inbox.ingest_support import twilio_signature

    signature = twilio_signature(f"http://testserver{SMS_URL}", sms_params())
    altered = {**sms_params(), "Body": "Send me someone else's results"}
    assert client.post(SMS_URL, altered, HTTP_X_TWILIO_SIGNATURE=signature).status_code == 403
    assert not RawInbound.objects.exists()


def test_sms_without_a_signature_is_refused(client, maria, line):
    assert client.post(SMS_URL, sms_params()).status_code == 403
    assert not RawInbound.objects.exists()


def test_sms_signed_for_the_https_url_behind_the_proxy_is_accepted(client, settings, maria, line):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]  # the test client's address is the proxy's
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    response = post_twilio(client, SMS_URL, sms_params(), scheme="https", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200
    assert RawInbound.objects.count() == 1


def test_sms_signed_for_https_but_received_as_http_is_refused(client, maria, line):
    assert post_twilio(client, SMS_URL, sms_params(), scheme="https").status_code == 403


def test_sms_webhook_without_a_configured_token_answers_503(client, settings, line):
    settings.TWILIO_AUTH_TOKEN = ""
    assert client.post(SMS_URL, sms_params()).status_code == 503
    assert not RawInbound.objects.exists()


@pytest.mark.parametrize("url", [SMS_URL, STATUS_URL])
def test_twilio_webhooks_reject_get(client, url):
    assert client.get(url).status_code == 405


def test_sms_webhook_answers_503_when_the_database_is_down(client, monkeypatch, maria, line):
    def database_down(**kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(views, "store_raw", database_down)
    assert post_twilio(client, SMS_URL, sms_params()).status_code == 503
    assert not RawInbound.objects.exists()


def test_oversize_sms_webhook_is_refused_with_413(client, settings, line):
    settings.INBOUND_MAX_EMAIL_BYTES = 50
    assert post_twilio(client, SMS_URL, sms_params(body="x" * 200)).status_code == 413
    assert not RawInbound.objects.exists()


def test_the_same_sms_webhook_1000_times_gives_one_message(client, maria, line):
    params = sms_params()
    statuses = {post_twilio(client, SMS_URL, params).status_code for _ in range(1000)}
    assert statuses == {200}
    assert RawInbound.objects.count() == 1
    assert Message.objects.count() == 1


# --- Twilio status callbacks ---------------------------------------------------------------------------------


def test_status_callback_updates_the_outbound_message(client, maria, line):
    outbound = MessageFactory(
        communication__patient=maria, communication__channel="sms", communication__sending_line=line,
        direction=Message.Direction.OUTBOUND, provider_id="SMout1", delivery_status=Message.DeliveryStatus.SENT,
    )  # fmt: skip
    params = {"MessageSid": "SMout1", "MessageStatus": "undelivered", "ErrorCode": "30003", "To": MARIA}
    response = post_twilio(client, STATUS_URL, params)
    assert response.status_code == 200 and response.content.endswith(b"<Response/>")
    outbound.refresh_from_db()
    assert outbound.delivery_status == Message.DeliveryStatus.UNDELIVERED
    assert outbound.delivery_error == "Twilio error 30003"
    assert RawInbound.objects.get().provider_id == "SMout1:undelivered"


def test_the_same_status_callback_twice_is_one_raw_item(client, maria, line):
    params = {"MessageSid": "SMout2", "MessageStatus": "delivered"}
    post_twilio(client, STATUS_URL, params)
    post_twilio(client, STATUS_URL, params)
    post_twilio(client, STATUS_URL, {**params, "MessageStatus": "sent"})
    assert RawInbound.objects.filter(source=RawInbound.Source.TWILIO_STATUS).count() == 2


def test_forged_status_callback_is_refused(client, line):
    params = {"MessageSid": "SMout1", "MessageStatus": "delivered"}
    assert client.post(STATUS_URL, params, HTTP_X_TWILIO_SIGNATURE="forged").status_code == 403
    assert not RawInbound.objects.exists()
