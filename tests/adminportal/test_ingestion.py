"""Ingestion health: inbound items unprocessed for over a minute and items that failed, each with Re-process."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from inbox.models import AuditEvent, Message, RawInbound
from tests.factories import PatientContactMethodFactory, RawInboundFactory, SendingLineFactory
from tests.inbox.ingest_support import eager_celery, hook_secrets  # noqa: F401  (autouse fixtures)

MARIA = "+15550102030"


@pytest.fixture
def line(db):
    return SendingLineFactory(number="+15550100000")


def sms(sid, *, age_seconds=0, **fields):
    return RawInboundFactory(
        provider_id=sid,
        payload={"MessageSid": sid, "From": MARIA, "To": "+15550100000", "Body": f"hello {sid}"},
        received_at=timezone.now() - dt.timedelta(seconds=age_seconds),
        **fields,
    )


def test_it_lists_stuck_and_failed_items_but_not_fresh_or_processed_ones(client, administrator):
    stuck = sms("SMstuck", age_seconds=120)
    failed = sms("SMfailed", error="ValueError: no To number", attempts=5)
    fresh = sms("SMfresh", age_seconds=5)
    done = sms("SMdone", age_seconds=600, processed_at=timezone.now())
    client.force_login(administrator)

    response = client.get(reverse("adminportal:ingestion"))

    assert response.status_code == 200
    content = response.content.decode()
    assert f'data-raw="{stuck.pk}"' in content and f'data-raw="{failed.pk}"' in content
    assert f'data-raw="{fresh.pk}"' not in content and f'data-raw="{done.pk}"' not in content
    assert 'data-testid="failed-count">1<' in content and 'data-testid="waiting-count">1<' in content
    assert "ValueError: no To number" in content


def test_reprocessing_a_failed_item_files_it_and_is_audited(client, administrator, patient, line):
    PatientContactMethodFactory(patient=patient, kind="phone", value=MARIA)
    failed = sms("SMretry", error="temporarily broken", attempts=5)
    client.force_login(administrator)

    response = client.post(reverse("adminportal:ingestion_reprocess", args=[failed.pk]), follow=True)

    failed.refresh_from_db()
    assert failed.processed_at is not None and failed.error == ""
    assert Message.objects.get().body_text == "hello SMretry"
    assert b"it is filed now" in response.content
    event = AuditEvent.objects.get(detail__change="inbound.reprocessed")
    assert event.actor == administrator and event.detail["previous_error"] == "temporarily broken"


def test_an_item_that_fails_again_keeps_its_error_and_says_so(client, administrator):
    broken = RawInboundFactory(
        source=RawInbound.Source.TWILIO_SMS, payload={"MessageSid": "SMbad"}, error="old", attempts=5
    )
    client.force_login(administrator)
    response = client.post(reverse("adminportal:ingestion_reprocess", args=[broken.pk]), follow=True)
    broken.refresh_from_db()
    assert broken.processed_at is None and broken.error
    assert b"failed again" in response.content


def test_a_processed_item_is_not_reprocessed(client, administrator):
    done = sms("SMdone", processed_at=timezone.now())
    client.force_login(administrator)
    response = client.post(reverse("adminportal:ingestion_reprocess", args=[done.pk]), follow=True)
    assert b"already processed" in response.content
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SETTING_CHANGED).exists()


def test_reprocessing_an_unknown_item_is_404(client, administrator):
    client.force_login(administrator)
    assert client.post(reverse("adminportal:ingestion_reprocess", args=[999999])).status_code == 404
