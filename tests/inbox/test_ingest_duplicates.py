"""Duplicate deliveries at the same moment: providers retry while the first delivery is still being stored, and two
workers can run the same item (a redelivered task beside the sweeper's). Still one raw item and one message.

The sequential cases (the same webhook 1,000 times) are in test_ingest_webhooks.py. These need concurrent
transactions, so they run on PostgreSQL (as CI does); SQLite serialises writers and is skipped.
"""

import threading

import pytest
from celery._state import _set_task_join_will_block, task_join_will_block
from django.db import connection, connections
from django.test import Client

from inbox.ingest.pipeline import process
from inbox.models import Communication, Message, RawInbound
from tests.factories import InboundAddressFactory, PatientContactMethodFactory, SendingLineFactory
from tests.inbox.ingest_support import (  # noqa: F401  (eager_celery, hook_secrets: autouse fixtures)
    build_email,
    eager_celery,
    email_signature,
    hook_secrets,
    post_twilio,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="needs concurrent transactions (PostgreSQL)"
    ),
]

MARIA = "+15550102030"
THREADS = 8
DELIVERIES = 1000


@pytest.fixture
def maria(patient):
    PatientContactMethodFactory(patient=patient, kind="phone", value=MARIA)
    PatientContactMethodFactory(patient=patient, kind="email", value="maria@mail.example")
    InboundAddressFactory(address="care@clinic.example")
    SendingLineFactory(number="+15550100000")
    return patient


def at_once(work, count: int) -> list:
    """Run ``work()`` ``count`` times from THREADS threads started together; the results, in no order."""
    results, lock, barrier = [], threading.Lock(), threading.Barrier(THREADS)
    share = [count // THREADS + (1 if i < count % THREADS else 0) for i in range(THREADS)]

    def run(n: int) -> None:
        try:
            barrier.wait()
            for _ in range(n):
                outcome = work()
                with lock:
                    results.append(outcome)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(n,)) for n in share]
    blocks = task_join_will_block()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        # Eager tasks save and restore a process-wide "inside a task" flag; threads running them at once can
        # leave it set, which would break later tests' result.get().
        _set_task_join_will_block(blocks)
    return results


def test_the_same_sms_webhook_1000_times_at_once_gives_one_message(maria):
    params = {"MessageSid": "SMconcurrent00000000000000000001", "AccountSid": "ACtest", "From": MARIA,
              "To": "+15550100000", "Body": "Are you there?", "NumMedia": "0"}  # fmt: skip
    statuses = at_once(lambda: post_twilio(Client(), "/hooks/sms/twilio/", params).status_code, DELIVERIES)
    assert statuses == [200] * DELIVERIES
    assert RawInbound.objects.count() == 1
    assert RawInbound.objects.get().processed_at is not None
    assert Message.objects.count() == 1
    assert Communication.objects.get().patient == maria


def test_the_same_email_webhook_1000_times_at_once_gives_one_message(maria):
    body = build_email(message_id="<concurrent@mail.example>")
    signature = email_signature(body)

    def deliver() -> int:
        return (
            Client()
            .post(
                "/hooks/email/inbound/", body, content_type="message/rfc822", HTTP_X_INBOX_SIGNATURE=signature
            )
            .status_code
        )

    assert at_once(deliver, DELIVERIES) == [200] * DELIVERIES
    assert RawInbound.objects.count() == 1
    assert Message.objects.count() == 1
    assert Communication.objects.get().patient == maria


def test_one_raw_item_processed_by_many_workers_at_once_gives_one_message(maria):
    sid = "SMconcurrent00000000000000000002"
    payload = {"MessageSid": sid, "From": MARIA, "To": "+15550100000", "Body": "Twice?", "NumMedia": "0"}
    row = RawInbound.objects.create(source=RawInbound.Source.TWILIO_SMS, provider_id=sid, payload=payload)
    outcomes = at_once(lambda: process(row.pk), THREADS * 4)
    assert outcomes.count("processed") >= 1
    assert set(outcomes) <= {"processed", "already processed"}
    row.refresh_from_db()
    assert row.processed_at is not None and row.error == ""
    assert Message.objects.filter(provider_id=sid).count() == 1
    assert Communication.objects.count() == 1


def test_first_messages_of_a_patient_filed_at_once_make_one_communication(maria):
    rows = [
        RawInbound.objects.create(
            source=RawInbound.Source.TWILIO_SMS,
            provider_id=f"SMfirst{n:027d}",
            payload={
                "MessageSid": f"SMfirst{n:027d}",
                "From": MARIA,
                "To": "+15550100000",
                "Body": f"Hello {n}",
            },
        )
        for n in range(THREADS * 4)
    ]
    pending = list(reversed(rows))
    lock = threading.Lock()

    def next_one() -> str:
        with lock:
            row = pending.pop()
        return process(row.pk)

    assert at_once(next_one, len(rows)) == ["processed"] * len(rows)
    communication = Communication.objects.get()  # one conversation per (patient, line), not one per message
    assert communication.patient == maria
    assert communication.messages.count() == len(rows)
