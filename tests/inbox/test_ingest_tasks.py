"""The ingestion tasks: processing is idempotent, a broker outage loses nothing (the sweeper re-enqueues), and
the Twilio SMS backend sends with a status callback."""

import datetime as dt

import pytest
from django.conf import settings as django_settings
from django.db import OperationalError
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerDown

from inbox import tasks
from inbox.delivery import DeliveryError, TwilioSmsBackend
from inbox.ingest.raw import store_raw
from inbox.models import Message, RawInbound
from inbox.services import ReplyContent, send_reply
from tests.factories import (
    CommunicationFactory,
    InboundAddressFactory,
    PatientContactMethodFactory,
    RawInboundFactory,
    SendingLineFactory,
)
from tests.inbox.ingest_support import (  # noqa: F401  (eager_celery, hook_secrets: autouse fixtures)
    build_email,
    eager_celery,
    hook_secrets,
    post_email,
    post_twilio,
)

MARIA = "+15550102030"


@pytest.fixture
def maria(patient):
    PatientContactMethodFactory(patient=patient, kind="phone", value=MARIA)
    PatientContactMethodFactory(patient=patient, kind="email", value="maria@mail.example")
    InboundAddressFactory(address="care@clinic.example")
    return patient


@pytest.fixture
def line(db):
    return SendingLineFactory(number="+15550100000")


def sms_raw(sid: str, *, age_seconds: int = 0, **fields) -> RawInbound:
    return RawInboundFactory(
        provider_id=sid,
        payload={"MessageSid": sid, "From": MARIA, "To": "+15550100000", "Body": f"hello {sid}"},
        received_at=timezone.now() - dt.timedelta(seconds=age_seconds),
        **fields,
    )


@pytest.mark.django_db
def test_processing_a_processed_item_again_is_a_no_op(maria, line):
    raw = sms_raw("SMtwice")
    assert tasks.process_inbound.delay(raw.pk).get() == "processed"
    assert tasks.process_inbound.delay(raw.pk).get() == "already processed"
    assert Message.objects.count() == 1


@pytest.mark.django_db
def test_processing_a_missing_item_is_a_no_op():
    assert tasks.process_inbound.delay(987654).get() == "missing"


@pytest.mark.django_db
def test_sweeper_reenqueues_old_unprocessed_items_and_ignores_fresh_ones(maria, line, settings):
    settings.INBOUND_SWEEP_GRACE_SECONDS = 60
    old, fresh = sms_raw("SMold", age_seconds=120), sms_raw("SMfresh", age_seconds=5)
    done = sms_raw("SMdone", age_seconds=600, processed_at=timezone.now())
    assert tasks.sweep_unprocessed.delay().get() == 1
    old.refresh_from_db(), fresh.refresh_from_db(), done.refresh_from_db()
    assert old.processed_at is not None and old.message.body_text == "hello SMold"
    assert fresh.processed_at is None and fresh.attempts == 0
    assert done.attempts == 0  # untouched
    assert Message.objects.count() == 1


@pytest.mark.django_db
def test_sweeper_retries_failed_items_until_their_fifth_attempt(maria, line):
    retried = sms_raw("SMretry", age_seconds=120, error="temporarily broken", attempts=4)
    given_up = RawInboundFactory(
        provider_id="SMgaveup", payload={"MessageSid": "SMgaveup", "From": MARIA, "To": "+15550100000"},
        received_at=timezone.now() - dt.timedelta(seconds=120), error="broken", attempts=5,
    )  # fmt: skip
    assert tasks.sweep_unprocessed.delay().get() == 1
    retried.refresh_from_db(), given_up.refresh_from_db()
    assert retried.processed_at is not None and retried.error == ""
    assert given_up.processed_at is None and given_up.attempts == 5


@pytest.mark.django_db
def test_sweeper_stops_quietly_while_the_broker_is_down(maria, line, monkeypatch):
    sms_raw("SMa", age_seconds=120), sms_raw("SMb", age_seconds=120)

    def broker_down(*args, **kwargs):
        raise BrokerDown("Error 111 connecting to redis")

    monkeypatch.setattr(tasks.process_inbound, "delay", broker_down)
    assert tasks.sweep_unprocessed() == 0
    assert RawInbound.objects.filter(processed_at__isnull=True).count() == 2


@pytest.mark.django_db(transaction=True)
def test_broker_down_at_enqueue_keeps_the_raw_item_for_the_sweeper(
    client, maria, line, monkeypatch, settings
):
    settings.INBOUND_SWEEP_GRACE_SECONDS = 0
    real_delay = tasks.process_inbound.delay

    def broker_down(*args, **kwargs):
        raise BrokerDown("Error 111 connecting to redis")

    monkeypatch.setattr(tasks.process_inbound, "delay", broker_down)
    params = {"MessageSid": "SMoutage", "From": MARIA, "To": "+15550100000", "Body": "During the outage"}
    assert post_twilio(client, "/hooks/sms/twilio/", params).status_code == 200
    body = build_email(body="Email during the outage")
    assert post_email(client, body).status_code == 200
    assert RawInbound.objects.filter(processed_at__isnull=True).count() == 2  # stored and acknowledged
    monkeypatch.setattr(tasks.process_inbound, "delay", real_delay)  # the broker is back
    assert tasks.sweep_unprocessed.delay().get() == 2
    assert set(Message.objects.values_list("body_text", flat=True)) == {
        "During the outage",
        "Email during the outage",
    }


@pytest.mark.django_db
def test_database_outage_during_processing_is_left_to_celery_retries(maria, line, monkeypatch):
    from inbox.ingest import pipeline

    raw = sms_raw("SMdbdown")

    def database_down(raw):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setitem(pipeline.INGESTERS, RawInbound.Source.TWILIO_SMS, database_down)
    with pytest.raises(OperationalError):
        pipeline.process(raw.pk)
    raw.refresh_from_db()
    assert (raw.processed_at, raw.error, raw.attempts) == (None, "", 0)  # the sweeper will pick it up


def test_process_inbound_is_acked_late_and_retries_database_outages():
    task = tasks.process_inbound
    assert task.acks_late is True
    assert OperationalError in task.autoretry_for
    assert task.retry_backoff


def test_beat_runs_the_sweeper_every_minute():
    (entry,) = [
        e
        for e in django_settings.CELERY_BEAT_SCHEDULE.values()
        if e["task"] == "inbox.tasks.sweep_unprocessed"
    ]
    assert entry["schedule"] == 60.0


@pytest.mark.django_db
def test_store_raw_returns_the_existing_row_for_a_duplicate_provider_id():
    first, created = store_raw(source=RawInbound.Source.TWILIO_SMS, provider_id="SMdup", payload={"a": 1})
    again, created_again = store_raw(
        source=RawInbound.Source.TWILIO_SMS, provider_id="SMdup", payload={"a": 2}
    )
    assert (created, created_again, again.pk) == (True, False, first.pk)
    assert again.payload == {"a": 1}


# --- outbound SMS through Twilio -----------------------------------------------------------------------------


class FakeTwilioClient:
    sent: list = []

    def __init__(self, sid, token):
        self.credentials = (sid, token)
        self.messages = self

    def create(self, **kwargs):
        FakeTwilioClient.sent.append({"credentials": self.credentials, **kwargs})
        return type("TwilioMessage", (), {"sid": "SMfake0001"})()


@pytest.fixture
def fake_twilio(monkeypatch, settings):
    import twilio.rest

    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = "ACreal", "real-token"
    settings.PUBLIC_BASE_URL = "https://inbox.clinic.example/"
    FakeTwilioClient.sent = []
    monkeypatch.setattr(twilio.rest, "Client", FakeTwilioClient)
    return FakeTwilioClient


def test_twilio_backend_sends_with_the_status_callback(fake_twilio):
    result = TwilioSmsBackend().send(to=MARIA, from_="+15550100000", body="Your results are in.")
    assert result.provider_id == "SMfake0001"
    (call,) = fake_twilio.sent
    assert call == {
        "credentials": ("ACreal", "real-token"), "to": MARIA, "from_": "+15550100000", "body": "Your results are in.",
        "status_callback": "https://inbox.clinic.example/hooks/sms/twilio/status/",
    }  # fmt: skip


def test_twilio_backend_passes_media_urls(fake_twilio):
    TwilioSmsBackend().send(
        to=MARIA, from_="+15550100000", body="See", media_urls=("https://x.example/a.png",)
    )
    assert fake_twilio.sent[0]["media_url"] == ["https://x.example/a.png"]


def test_twilio_backend_refuses_without_credentials(settings):
    settings.TWILIO_ACCOUNT_SID = ""
    with pytest.raises(DeliveryError, match="not configured"):
        TwilioSmsBackend().send(to=MARIA, from_="+15550100000", body="x")


@pytest.mark.django_db(transaction=True)
def test_sms_reply_goes_out_through_twilio_and_its_status_callback_marks_it_delivered(
    client, nurse, patient, maria, line, fake_twilio, settings
):
    settings.SMS_BACKEND = "inbox.delivery.TwilioSmsBackend"
    settings.TWILIO_AUTH_TOKEN = "test-twilio-token"  # the token the test signs callbacks with
    communication = CommunicationFactory(channel="sms", patient=patient, sending_line=line, counterpart=MARIA)
    message = send_reply(
        user=nurse, communication=communication, content=ReplyContent(body="Results are in.")
    )
    message.refresh_from_db()
    assert (message.delivery_status, message.provider_id) == (Message.DeliveryStatus.SENT, "SMfake0001")
    params = {"MessageSid": "SMfake0001", "MessageStatus": "delivered", "To": MARIA}
    assert post_twilio(client, "/hooks/sms/twilio/status/", params).status_code == 200
    message.refresh_from_db()
    assert message.delivery_status == Message.DeliveryStatus.DELIVERED
