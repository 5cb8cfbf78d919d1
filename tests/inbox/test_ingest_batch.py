"""The worker's batch drain (``inbox.ingest.batch``, task ``process_pending``) and how stored items reach it
(``inbox.ingest.raw.kick``): plain SMS filed many to a transaction exactly as one by one, everything else and every
item of a failed batch one by one, failed items left to the sweeper, one drain queued at a time, nothing lost.

The SMS rules themselves run through both paths in test_ingest_sms.py (fixture ``sms_filing``).
"""

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from kombu.exceptions import OperationalError as BrokerDown

from adminportal.models import WebhookSubscription
from careportal.models import PatientContactMethod
from inbox import events, tasks
from inbox.api import webhooks
from inbox.ingest import batch
from inbox.ingest import raw as raw_module
from inbox.ingest.raw import KICK_KEY, store_raw
from inbox.models import AuditEvent, Channel, Communication, Message, Notification, RawInbound
from tests.factories import (
    CommunicationFactory,
    PatientContactMethodFactory,
    PatientFactory,
    RawInboundFactory,
    SendingLineFactory,
    UserFactory,
)
from tests.inbox.ingest_support import (  # noqa: F401  (eager_celery, hook_secrets: autouse fixtures)
    build_email,
    eager_celery,
    hook_secrets,
    post_email,
    post_twilio,
)

pytestmark = pytest.mark.django_db
LINE = "+15550100000"
MARIA = "+15550102030"


@pytest.fixture(autouse=True)
def _items_wait_for_the_drain(monkeypatch):
    """As with a worker: stored items are not filed at once (eager mode would), they wait for a drain."""
    monkeypatch.setattr(raw_module, "enqueue", lambda raw_id: True)


@pytest.fixture
def line(db):
    return SendingLineFactory(number=LINE, label="Main clinic")


@pytest.fixture
def maria_phone(patient):
    return PatientContactMethodFactory(patient=patient, kind="phone", value=MARIA)


def sms(sid: str, *, sender: str = MARIA, to: str = LINE, body: str = "Hi", **extra) -> RawInbound:
    payload = {"MessageSid": sid, "From": sender, "To": to, "Body": body, "NumMedia": "0", **extra}
    row, _ = store_raw(source=RawInbound.Source.TWILIO_SMS, provider_id=sid, payload=payload)
    return row


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="one UPDATE per batch on PostgreSQL; per row elsewhere"
)
def test_a_batch_files_plain_sms_with_a_few_queries_whatever_its_size(
    patient, maria_phone, line, django_assert_max_num_queries
):
    others = [PatientContactMethodFactory(kind="phone", value=f"+1555020{i:04d}") for i in range(30)]
    for i, method in enumerate(others):
        sms(f"SMa{i}", sender=method.value, body=f"first {i}")
        sms(f"SMb{i}", sender=method.value, body=f"second {i}")
    sms("SMmaria", body="From Maria")
    with django_assert_max_num_queries(61 + 31 + 16):  # an INSERT per message and per new communication
        assert batch.process_batch(limit=100) == 61
    assert not RawInbound.objects.filter(processed_at__isnull=True).exists()
    assert Message.objects.count() == 61
    assert Communication.objects.filter(channel=Channel.SMS).count() == 31  # one per (patient, line)
    for method in others:
        communication = Communication.objects.get(patient=method.patient)
        assert list(communication.messages.values_list("body_text", flat=True)) == [
            f"first {others.index(method)}",
            f"second {others.index(method)}",
        ]
        assert communication.last_message_preview == f"second {others.index(method)}"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.MESSAGE_RECEIVED).count() == 61


def test_a_batch_files_as_the_one_by_one_path_does(patient, maria_phone, line, nurse):
    """Reopen, counterpart, audit detail, notification of the primary contact, processed marks: the same rows."""
    closed = CommunicationFactory(
        channel=Channel.SMS, patient=patient, sending_line=line, counterpart="+15550104444",
        status=Communication.Status.CLOSED,
    )  # fmt: skip
    row = sms("SMreopen", body="Running late")
    assert batch.process_batch() == 1
    closed.refresh_from_db()
    row.refresh_from_db()
    message = row.message
    assert message.communication == closed and message.body_text == "Running late"
    assert (closed.status, closed.opened_at, closed.closed_at) == ("open", message.created_at, None)
    assert closed.counterpart == MARIA  # replies go to the number that wrote last
    assert closed.last_message_direction == Message.Direction.INBOUND
    assert (row.processed_at is not None, row.error, row.attempts) == (True, "", 1)
    event = AuditEvent.objects.get(action=AuditEvent.Action.MESSAGE_RECEIVED)
    assert (event.patient, event.communication, event.object_id, event.actor_label) == (
        patient, closed, str(message.pk), f"{patient.full_name} <{MARIA}>",
    )  # fmt: skip
    assert event.detail == {
        "channel": "sms", "provider": "twilio", "raw_id": row.pk, "keyword": "", "media": 0,
    }  # fmt: skip
    notification = Notification.objects.get(user=nurse)  # the patient's primary contact
    assert notification.kind == Notification.Kind.INBOUND and notification.message == message


def test_a_batch_auto_assigns_to_the_line_owner_and_keeps_unrecognized_numbers_apart(
    nurse, maria_phone, line
):
    direct = SendingLineFactory(number="+15550100055", owner=nurse)
    shared = "+15550106666"
    PatientContactMethodFactory(kind="phone", value=shared)
    PatientContactMethodFactory(kind="phone", value=shared)
    sms("SM1", to=direct.number, body="one")
    sms("SM2", to=direct.number, body="two")
    sms("SM3", sender=shared, body="who?")
    sms("SM4", sender=shared, body="who again?")
    assert batch.process_batch() == 4
    linked = Communication.objects.get(patient__isnull=False)
    assert linked.assignee == nurse and linked.messages.count() == 2
    assert (
        AuditEvent.objects.filter(action=AuditEvent.Action.ASSIGNMENT_CHANGED, communication=linked).count()
        == 1
    )
    unrecognized = Communication.objects.filter(is_unrecognized=True)
    assert unrecognized.count() == 2  # every SMS from an unrecognized number is its own communication
    for communication in unrecognized:
        assert communication.candidate_patients.count() == 2


def test_keywords_media_errors_and_other_sources_are_filed_one_by_one_in_the_same_drain(
    client, patient, maria_phone, line, monkeypatch
):
    from inbox.ingest import sms as sms_ingest

    monkeypatch.setattr(
        sms_ingest, "download_media", lambda url, **kw: (b"\x89PNG\r\n\x1a\n" + b"0" * 64, "image/png")
    )
    stop = sms("SMstop", body="STOP")
    plain = sms("SMplain", body="Hello")
    mms = sms("SMmms", body="Photo", NumMedia="1", MediaUrl0="https://api.twilio.example/m/1",
              MediaContentType0="image/png")  # fmt: skip
    no_sender = sms("SMnosender", sender="")
    unknown_line = sms("SMnoline", to="+15550109876")
    body = build_email(body="An email")
    assert post_email(client, body).status_code == 200
    assert batch.process_batch() == 6
    for row in (stop, plain, mms, no_sender, unknown_line):
        row.refresh_from_db()
    assert stop.message.body_text == "STOP" and PatientContactMethod.objects.get(value=MARIA).is_opted_out
    assert plain.message.body_text == "Hello"
    assert mms.message.attachments.count() == 1
    assert no_sender.processed_at is None and "no sender" in no_sender.error
    assert unknown_line.processed_at is None and "not an active sending line" in unknown_line.error
    assert Message.objects.filter(body_text="An email").exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite does not enforce column lengths")
def test_one_bad_item_fails_alone_and_the_rest_of_its_batch_is_filed(patient, maria_phone, line):
    good = [sms(f"SMgood{i}", body=f"fine {i}") for i in range(3)]
    bad = sms("SMbad", sender="x" * 300)  # an alphanumeric sender longer than the counterpart column
    assert batch.process_batch() == 4
    for row in good:
        row.refresh_from_db()
        assert row.processed_at is not None and row.message.body_text.startswith("fine")
    bad.refresh_from_db()
    assert bad.processed_at is None and bad.attempts == 1 and "DataError" in bad.error
    assert Message.objects.count() == 3


def test_failed_items_are_left_to_the_sweeper_and_processed_ones_are_never_claimed(
    patient, maria_phone, line
):
    failed = RawInboundFactory(
        provider_id="SMfailed", payload={"MessageSid": "SMfailed", "From": MARIA, "To": LINE}, error="broken",
        attempts=1,
    )  # fmt: skip
    sms("SMdone")
    assert batch.process_batch() == 1
    assert batch.process_batch() == 0
    failed.refresh_from_db()
    assert failed.processed_at is None and failed.attempts == 1


def test_an_sms_already_filed_is_marked_processed_without_a_second_message(patient, maria_phone, line):
    first = sms("SM" + "1" * 32)
    assert batch.process_batch() == 1
    first.refresh_from_db()
    again = RawInbound.objects.create(
        source=RawInbound.Source.TWILIO_SMS, payload=first.payload
    )  # no provider id
    assert batch.process_batch() == 1
    again.refresh_from_db()
    assert again.processed_at is not None and again.message == first.message
    assert Message.objects.count() == 1


def test_drain_files_batch_after_batch_until_nothing_is_pending(patient, maria_phone, line):
    for i in range(7):
        sms(f"SMd{i}")
    assert batch.drain(limit=3) == (7, True)
    assert not RawInbound.objects.filter(processed_at__isnull=True).exists()


def test_drain_stops_when_its_time_is_up(patient, maria_phone, line):
    for i in range(7):
        sms(f"SMt{i}")
    assert batch.drain(limit=3, max_seconds=0) == (3, False)
    assert RawInbound.objects.filter(processed_at__isnull=True).count() == 4


@pytest.mark.django_db(transaction=True)
def test_a_batch_sends_its_real_time_hints_together_after_commit(patient, maria_phone, line, monkeypatch):
    sent = []
    monkeypatch.setattr(events, "_publish", sent.append)
    sms("SMh1", body="one")
    sms("SMh2", body="two")
    assert batch.process_batch() == 2
    communication = Communication.objects.get()
    hint = {"type": "communication.changed", "communication_id": communication.pk, "kind": "message"}
    assert len(sent) == 1  # one publishing round for the whole batch, after its commit
    groups = [group for group, event in sent[0] if event == hint]
    # Both messages' hints (``_publish`` sends each distinct one once).
    assert sorted(groups) == sorted(2 * [f"communication.{communication.pk}", "inbox.live"])


def test_hints_of_a_batch_that_rolled_back_are_not_sent(monkeypatch):
    sent = []
    monkeypatch.setattr(events, "_publish", sent.extend)
    communication = CommunicationFactory()
    with events.batched(), pytest.raises(RuntimeError), transaction.atomic():
        events.publish_communication_changed(communication, kind="status", webhooks=False)
        raise RuntimeError("rolled back")
    assert sent == []


def test_publish_sends_each_distinct_hint_once(monkeypatch):
    delivered = []

    class Layer:
        async def group_send(self, group, event):
            delivered.append((group, event))

    monkeypatch.setattr(events, "get_channel_layer", lambda: Layer())
    event = {"type": "communication.changed", "communication_id": 1, "kind": "message"}
    events._publish([("a", event), ("b", event), ("a", dict(event)), ("a", {**event, "kind": "status"})])
    assert delivered == [("a", event), ("b", event), ("a", {**event, "kind": "status"})]


@pytest.mark.parametrize("path", ["one by one", "in a batch"])
def test_outbound_webhooks_hear_of_every_message_of_a_batch(patient, maria_phone, line, monkeypatch, path):
    """The events worked out for each message are the same whichever path filed it."""
    from inbox.ingest.pipeline import process

    WebhookSubscription.objects.create(
        user=UserFactory(),
        name="EHR",
        url="https://ehr.example/hook",
        event_types=["message.created"],
        secret="s",
    )
    seen = []
    real = webhooks.events_for_change
    monkeypatch.setattr(webhooks, "events_for_change", lambda c, kind: seen.append(real(c, kind)) or seen[-1])
    monkeypatch.setattr(webhooks, "_queue", lambda *args: None)
    rows = [sms("SMw1", body="one"), sms("SMw2", body="two")]
    if path == "in a batch":
        assert batch.process_batch() == 2
    else:
        for row in rows:
            process(row.pk)
    first, second = Message.objects.order_by("created_at", "id")
    # The second message was received before the first was filed (which opened the communication), so it also
    # reads as reopening it, on either path.
    assert [[(str(e), d.get("message", {}).get("id")) for e, d in found] for found in seen] == [
        [("communication.created", None), ("message.created", first.pk)],
        [("message.created", second.pk), ("status.changed", None)],
    ]


# --- How stored items reach a drain -----------------------------------------------------------------------------


@pytest.fixture
def queued(monkeypatch):
    """Drains queued through the broker (recorded, not run); the drain mark cleared before and after."""
    calls = []
    cache.delete(KICK_KEY)
    monkeypatch.setattr(tasks.process_pending, "delay", lambda *a, **kw: calls.append(a))
    yield calls
    cache.delete(KICK_KEY)


def test_one_drain_is_queued_until_it_starts(queued):
    assert raw_module.kick() and raw_module.kick() and raw_module.kick()
    assert len(queued) == 1
    raw_module.unmark_kick()  # what the drain does first
    assert raw_module.kick()
    assert len(queued) == 2


def test_a_broker_outage_at_kick_clears_the_mark_so_the_next_item_tries_again(queued, monkeypatch):
    def broker_down(*args, **kwargs):
        raise BrokerDown("Error 111 connecting to redis")

    monkeypatch.setattr(tasks.process_pending, "delay", broker_down)
    assert raw_module.kick() is False
    assert cache.get(KICK_KEY) is None


def test_with_a_worker_a_stored_item_queues_a_drain_not_a_task_of_its_own(queued, monkeypatch):
    monkeypatch.undo()  # the real enqueue, and the real delay…
    monkeypatch.setattr(tasks.process_pending, "delay", lambda *a, **kw: queued.append(a))  # …recorded again
    monkeypatch.setattr(raw_module, "_eager", lambda: False)
    per_item = []
    monkeypatch.setattr(tasks.process_inbound, "delay", lambda *a, **kw: per_item.append(a))
    assert raw_module.enqueue(123) is True
    assert raw_module.enqueue(124) is True
    assert (len(queued), per_item) == (1, [])


def test_the_drain_task_clears_the_mark_then_files_everything_pending(patient, maria_phone, line, queued):
    for i in range(3):
        sms(f"SMk{i}")
    cache.add(KICK_KEY, 1, 60)
    assert tasks.process_pending.run() == 3
    assert cache.get(KICK_KEY) is None
    assert Message.objects.count() == 3
    assert queued == []  # finished within its time: no successor queued


def test_a_drain_out_of_time_queues_its_successor(patient, maria_phone, line, queued, monkeypatch):
    monkeypatch.setattr(batch, "DRAIN_SECONDS", 0)
    monkeypatch.setattr(batch, "BATCH_SIZE", 2)
    for i in range(3):
        sms(f"SMs{i}")
    assert tasks.process_pending.run() == 2
    assert len(queued) == 1


@pytest.mark.django_db(transaction=True)
def test_storing_refuses_to_join_an_open_transaction():
    """The raw item must be committed on its own before the sender is answered: nesting it is a bug."""
    with pytest.raises(RuntimeError), transaction.atomic():
        store_raw(
            source=RawInbound.Source.TWILIO_SMS,
            provider_id="SMnested",
            payload={"MessageSid": "SMnested"},
        )
    assert not RawInbound.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_stored_item_is_committed_when_store_raw_returns():
    row, created = store_raw(
        source=RawInbound.Source.TWILIO_SMS, provider_id="SMc", payload={"MessageSid": "SMc"}
    )
    again, created_again = store_raw(
        source=RawInbound.Source.TWILIO_SMS, provider_id="SMc", payload={"MessageSid": "SMc"}
    )
    assert created and not created_again and again.pk == row.pk
    with connection.cursor() as cursor:  # seen from a committed state: not inside any transaction
        assert connection.get_autocommit()
        cursor.execute("SELECT count(*) FROM inbox_rawinbound WHERE provider_id = 'SMc'")
        assert cursor.fetchone()[0] == 1
    assert RawInbound.objects.get().payload == {"MessageSid": "SMc"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent transactions (PostgreSQL)")
def test_two_drains_at_once_file_every_item_once_with_one_communication_per_patient(line):
    import threading

    from django.db import connections

    methods = [PatientContactMethodFactory(patient=PatientFactory(), kind="phone", value=f"+1555030{i:04d}")
               for i in range(20)]  # fmt: skip
    for n in range(300):
        sms(f"SMc{n}", sender=methods[n % 20].value, body=f"c {n}")
    errors, barrier = [], threading.Barrier(2)

    def run():
        try:
            barrier.wait()
            batch.drain(limit=25)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Message.objects.count() == 300
    assert Message.objects.values("provider_id").distinct().count() == 300
    assert Communication.objects.count() == 20
    assert not RawInbound.objects.filter(processed_at__isnull=True).exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.MESSAGE_RECEIVED).count() == 300
