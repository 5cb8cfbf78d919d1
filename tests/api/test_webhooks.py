"""Outbound webhooks against a local receiver (http.server on 127.0.0.1): signed deliveries of the four events,
retries with backoff, pause after consecutive failures, resume from the Admin Portal, access scope, URL rules."""

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import transaction
from django.utils import timezone

from adminportal.models import WebhookDelivery, WebhookSubscription
from inbox import events
from inbox.api import webhooks
from inbox.models import AuditEvent
from inbox.services import ReplyContent, apply_inbound, start_communication
from tests.factories import CommunicationFactory, MessageFactory, PatientContactMethodFactory

pytestmark = pytest.mark.django_db
ALL_EVENTS = ["communication.created", "message.created", "status.changed", "assignment.changed"]


class Receiver:
    def __init__(self):
        self.requests: list[tuple[dict, bytes]] = []
        self.statuses: list[int] = []  # answers to give, in order; then 200
        self.url = ""

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _, body in self.requests]

    def types(self) -> list[str]:
        return [body["type"] for body in self.bodies()]


@pytest.fixture
def receiver():
    received = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
            status = received.statuses.pop(0) if received.statuses else 200
            self.send_response(status)
            if status in (301, 302, 307, 308):
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    received.url = f"http://127.0.0.1:{server.server_port}/care-inbox"
    yield received
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _webhook_settings(settings):
    settings.WEBHOOK_ALLOW_LOCAL_HTTP = True
    settings.WEBHOOK_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32"]  # the local receiver (refused by default)
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    settings.WEBHOOK_PAUSE_AFTER_FAILURES = 4
    settings.WEBHOOK_TIMEOUT_SECONDS = 5


@pytest.fixture
def subscription(receiver, api_user, administrator):
    return webhooks.create_subscription(
        actor=administrator, user=api_user, name="EHR", url=receiver.url, event_types=ALL_EVENTS
    )


@pytest.fixture
def communication(patient):
    communication = CommunicationFactory(patient=patient)
    MessageFactory(communication=communication)
    return communication


def test_a_status_change_is_delivered_signed(
    api, receiver, subscription, communication, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        api.post(f"/api/v1/communications/{communication.pk}/status/", {"status": "closed"}, format="json")
    assert receiver.types() == ["status.changed"]
    headers, body = receiver.requests[0]
    assert webhooks.verify(subscription.secret, body, headers["x-careinbox-signature"])
    assert headers["x-careinbox-event"] == "status.changed"
    assert headers["content-type"] == "application/json"
    payload = json.loads(body)
    assert payload["data"]["communication"] == {
        "id": communication.pk, "url": f"/api/v1/communications/{communication.pk}/", "channel": "email",
        "status": "closed", "is_unrecognized": False, "patient_id": communication.patient_id, "assignee_id": None,
    }  # fmt: skip
    delivery = WebhookDelivery.objects.get()
    assert (delivery.attempts, delivery.last_status_code, delivery.last_error) == (1, 200, "")
    assert delivery.delivered_at is not None and str(delivery.pk) == headers["x-careinbox-delivery"]


def test_the_signature_is_the_documented_hmac(receiver, subscription):
    """README: v1 = hex HMAC-SHA256(secret, f"{t}.{body}"); a changed body or an old timestamp fails."""
    import hashlib
    import hmac
    import time

    body = b'{"type":"message.created"}'
    header = webhooks.sign(subscription.secret, body, timestamp=1_764_000_000)
    expected = hmac.new(subscription.secret.encode(), b"1764000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1764000000,v1={expected}"
    assert webhooks.verify(subscription.secret, body, header, now=1_764_000_100)
    assert not webhooks.verify(subscription.secret, body + b" ", header, now=1_764_000_100)
    assert not webhooks.verify("whsec_other", body, header, now=1_764_000_100)
    assert not webhooks.verify(subscription.secret, body, header, now=time.time())  # replayed much later
    assert not webhooks.verify(subscription.secret, body, "garbage")


def test_reply_and_close_sends_message_and_status_events_without_the_text(
    api, receiver, subscription, communication, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        api.post(f"/api/v1/communications/{communication.pk}/send/", {"body": "Private words"}, format="json")
    assert receiver.types() == ["message.created", "status.changed"]
    assert all(b"Private words" not in body and b"Maria" not in body for _, body in receiver.requests)
    message = receiver.bodies()[0]["data"]["message"]
    assert message["direction"] == "out"


def test_assignment_events(
    api, receiver, subscription, communication, nurse, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        api.post(f"/api/v1/communications/{communication.pk}/assign/", {"assignee": nurse.pk}, format="json")
    assert receiver.types() == ["assignment.changed"]
    assert receiver.bodies()[0]["data"]["communication"]["assignee_id"] == nurse.pk


def test_a_new_communication_sends_created_then_message(
    receiver, subscription, api_user, patient, django_capture_on_commit_callbacks
):
    PatientContactMethodFactory(patient=patient, kind="email", value="maria@mail.example")
    with django_capture_on_commit_callbacks(execute=True):
        start_communication(
            user=api_user, patient=patient, channel="email", content=ReplyContent(body="Hello", subject="Hi")
        )
    assert receiver.types() == ["communication.created", "message.created"]


def test_an_inbound_message_reopening_a_closed_communication_sends_status_changed(
    receiver, subscription, patient, django_capture_on_commit_callbacks
):
    closed = CommunicationFactory(
        patient=patient, status="closed", closed_at=timezone.now() - timedelta(days=1)
    )
    MessageFactory(communication=closed, created_at=timezone.now() - timedelta(days=2))
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        message = MessageFactory(communication=closed, body_text="Me again")
        apply_inbound(closed, message)
        events.publish_communication_changed(closed, kind="message")
    assert receiver.types() == ["message.created", "status.changed"]
    assert receiver.bodies()[1]["data"]["communication"]["status"] == "open"


def test_only_subscribed_events_are_sent(
    api, receiver, api_user, communication, django_capture_on_commit_callbacks
):
    webhooks.create_subscription(
        actor=None,
        user=api_user,
        name="Only assignments",
        url=receiver.url,
        event_types=["assignment.changed"],
    )
    with django_capture_on_commit_callbacks(execute=True):
        api.post(f"/api/v1/communications/{communication.pk}/status/", {"status": "closed"}, format="json")
    assert receiver.requests == [] and not WebhookDelivery.objects.exists()


def test_events_about_patients_the_integration_may_not_see_are_not_sent(
    api, receiver, api_outsider, communication, django_capture_on_commit_callbacks
):
    webhooks.create_subscription(
        actor=None, user=api_outsider, name="Other", url=receiver.url, event_types=ALL_EVENTS
    )
    with django_capture_on_commit_callbacks(execute=True):
        api.post(f"/api/v1/communications/{communication.pk}/status/", {"status": "closed"}, format="json")
    assert receiver.requests == [] and not WebhookDelivery.objects.exists()


def test_a_rolled_back_change_sends_nothing(
    receiver, subscription, communication, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                events.publish_communication_changed(communication, kind="status")
                raise RuntimeError("boom")
        except RuntimeError:
            pass
    assert receiver.requests == []


# --- Retries, backoff, pause ----------------------------------------------------------------------------


def test_a_failed_delivery_is_retried_until_it_succeeds(
    api, receiver, subscription, communication, django_capture_on_commit_callbacks
):
    receiver.statuses = [500, 503]
    with django_capture_on_commit_callbacks(execute=True):
        api.post(f"/api/v1/communications/{communication.pk}/status/", {"status": "closed"}, format="json")
    assert len(receiver.requests) == 3
    assert len({body for _, body in receiver.requests}) == 1  # the same event each time
    delivery = WebhookDelivery.objects.get()
    assert (delivery.attempts, delivery.last_status_code) == (3, 200)
    assert delivery.delivered_at is not None and delivery.next_attempt_at is None
    subscription.refresh_from_db()
    assert subscription.consecutive_failures == 0


def test_retries_back_off_exponentially(settings, receiver, subscription, communication, monkeypatch):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 30
    assert [webhooks.backoff_seconds(n) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert webhooks.backoff_seconds(20) == 3600
    from inbox.api import tasks

    scheduled = []
    monkeypatch.setattr(
        tasks.deliver_webhook, "apply_async", lambda args, countdown: scheduled.append(countdown)
    )
    receiver.statuses = [500]
    delivery = WebhookDelivery.objects.create(
        subscription=subscription, event="status.changed", payload={"x": 1}
    )
    before = timezone.now()
    tasks.deliver_webhook(delivery.pk)
    delivery.refresh_from_db()
    assert scheduled == [30]
    assert (delivery.attempts, delivery.last_status_code, delivery.last_error) == (1, 500, "HTTP 500")
    assert before + timedelta(seconds=29) < delivery.next_attempt_at < timezone.now() + timedelta(seconds=31)


def test_a_redirect_is_a_failure_not_followed(receiver, subscription, communication, monkeypatch):
    from inbox.api import tasks

    monkeypatch.setattr(tasks.deliver_webhook, "apply_async", lambda args, countdown: None)
    receiver.statuses = [302]
    delivery = WebhookDelivery.objects.create(subscription=subscription, event="status.changed", payload={})
    tasks.deliver_webhook(delivery.pk)
    delivery.refresh_from_db()
    assert len(receiver.requests) == 1 and delivery.last_status_code == 302 and delivery.delivered_at is None


def test_an_unreachable_receiver_is_logged_with_the_error(settings, subscription, monkeypatch):
    from inbox.api import tasks

    monkeypatch.setattr(tasks.deliver_webhook, "apply_async", lambda args, countdown: None)
    WebhookSubscription.objects.filter(pk=subscription.pk).update(url="http://127.0.0.1:9/closed")
    delivery = WebhookDelivery.objects.create(subscription=subscription, event="status.changed", payload={})
    tasks.deliver_webhook(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.last_status_code is None and delivery.last_error.startswith("URLError")


def test_a_subscription_that_keeps_failing_is_paused_then_resumed_from_the_portal(
    api, client, administrator, receiver, subscription, communication, django_capture_on_commit_callbacks
):
    receiver.statuses = [500] * 4  # 3 attempts for the first event, the 4th failure in a row pauses
    url = f"/api/v1/communications/{communication.pk}/status/"
    with django_capture_on_commit_callbacks(execute=True):
        api.post(url, {"status": "closed"}, format="json")
        api.post(url, {"status": "open"}, format="json")
    subscription.refresh_from_db()
    assert subscription.paused_at is not None and subscription.consecutive_failures == 4
    assert len(receiver.requests) == 4
    with django_capture_on_commit_callbacks(execute=True):
        api.post(url, {"status": "closed"}, format="json")  # while paused: kept, not sent
    assert len(receiver.requests) == 4
    assert WebhookDelivery.objects.filter(delivered_at__isnull=True).count() == 3

    client.force_login(administrator)
    page = client.get("/admin-portal/integrations/")
    assert b'data-testid="paused"' in page.content and b"4 failures in a row" in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin-portal/integrations/webhooks/{subscription.pk}/resume/")
    assert response.status_code == 302
    subscription.refresh_from_db()
    assert subscription.paused_at is None and subscription.consecutive_failures == 0
    # The second event had one attempt left, the third had all three: both are delivered now, oldest first.
    assert receiver.types()[4:] == ["status.changed", "status.changed"]
    assert [b["data"]["communication"]["status"] for b in receiver.bodies()[4:]] == ["open", "closed"]
    assert not WebhookDelivery.objects.filter(delivered_at__isnull=True, attempts__lt=3).exists()
    assert AuditEvent.objects.filter(detail__change="webhook.resumed", actor=administrator).count() == 1
    detail = client.get(f"/admin-portal/integrations/webhooks/{subscription.pk}/")
    assert b"HTTP 500" in detail.content and b"Delivered" in detail.content


def test_a_disabled_subscription_receives_nothing(
    api, client, administrator, receiver, subscription, communication, django_capture_on_commit_callbacks
):
    client.force_login(administrator)
    client.post(f"/admin-portal/integrations/webhooks/{subscription.pk}/toggle/")
    subscription.refresh_from_db()
    assert not subscription.is_active
    with django_capture_on_commit_callbacks(execute=True):
        api.post(f"/api/v1/communications/{communication.pk}/status/", {"status": "closed"}, format="json")
    assert receiver.requests == []


def test_lost_retries_are_swept(subscription, monkeypatch):
    from inbox.api import tasks

    queued = []
    monkeypatch.setattr(tasks.deliver_webhook, "delay", lambda pk: queued.append(pk))
    late = WebhookDelivery.objects.create(
        subscription=subscription, event="status.changed", payload={}, attempts=1,
        next_attempt_at=timezone.now() - timedelta(minutes=10),
    )  # fmt: skip
    WebhookDelivery.objects.create(  # due a moment ago: its own retry task is still coming
        subscription=subscription, event="status.changed", payload={}, attempts=1,
        next_attempt_at=timezone.now() - timedelta(seconds=10),
    )  # fmt: skip
    assert tasks.sweep_webhook_retries() == 1
    assert queued == [late.pk]


# --- Subscriptions: URL rules, secret shown once ------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://example.com/hook", "ftp://example.com/", "https://user:pw@example.com/", "file:///etc/passwd",
     "http://10.0.0.5/hook", "not a url"],
)  # fmt: skip
def test_only_https_addresses_are_accepted(api_user, url):
    with pytest.raises(webhooks.WebhookError):
        webhooks.create_subscription(actor=None, user=api_user, name="x", url=url, event_types=ALL_EVENTS)
    assert not WebhookSubscription.objects.exists()


def test_local_http_needs_debug_or_the_test_setting(settings, api_user):
    settings.WEBHOOK_ALLOW_LOCAL_HTTP = False
    settings.DEBUG = False
    with pytest.raises(webhooks.WebhookError, match="https"):
        webhooks.create_subscription(
            actor=None, user=api_user, name="x", url="http://127.0.0.1:8080/", event_types=ALL_EVENTS
        )
    assert webhooks.create_subscription(
        actor=None, user=api_user, name="x", url="https://hooks.example.com/in", event_types=ALL_EVENTS
    ).secret.startswith("whsec_")


def test_the_portal_creates_a_subscription_and_shows_its_secret_once(client, administrator, api_user):
    client.force_login(administrator)
    response = client.post(
        "/admin-portal/integrations/webhooks/",
        {"webhook-user": api_user.pk, "webhook-name": "EHR", "webhook-url": "https://hooks.example.com/in",
         "webhook-event_types": ["message.created", "status.changed"]},
    )  # fmt: skip
    assert response.status_code == 200
    subscription = WebhookSubscription.objects.get()
    assert subscription.event_types == ["message.created", "status.changed"]
    assert subscription.secret.encode() in response.content
    assert subscription.secret.encode() not in client.get("/admin-portal/integrations/").content
    event = AuditEvent.objects.get(detail__change="webhook.created")
    assert event.actor_id == administrator.pk and subscription.secret not in str(event.detail)


@pytest.mark.parametrize(
    "data",
    [
        {"name": "EHR", "url": "http://hooks.example.com/in", "event_types": ["message.created"]},
        {"name": "EHR", "url": "https://hooks.example.com/in", "event_types": []},
        {"name": "EHR", "url": "https://hooks.example.com/in", "event_types": ["everything"]},
        {"name": "", "url": "https://hooks.example.com/in", "event_types": ["message.created"]},
    ],
)
def test_the_portal_refuses_bad_subscriptions_and_creates_nothing(client, administrator, api_user, data):
    client.force_login(administrator)
    data = {f"webhook-{key}": value for key, value in {"user": api_user.pk, **data}.items()}
    response = client.post("/admin-portal/integrations/webhooks/", data)
    assert response.status_code == 422
    assert b"Nothing was saved." in response.content
    assert not WebhookSubscription.objects.exists()


def test_a_subscription_is_only_for_an_inbox_api_user(nurse):
    with pytest.raises(webhooks.WebhookError, match="Inbox API"):
        webhooks.create_subscription(
            actor=None, user=nurse, name="x", url="https://hooks.example.com/in", event_types=ALL_EVENTS
        )


def test_webhook_pages_are_for_administrators_only(client, api_user, subscription):
    client.force_login(api_user)
    for method, path in [
        ("get", f"/admin-portal/integrations/webhooks/{subscription.pk}/"),
        ("post", f"/admin-portal/integrations/webhooks/{subscription.pk}/resume/"),
        ("post", f"/admin-portal/integrations/webhooks/{subscription.pk}/toggle/"),
    ]:
        assert getattr(client, method)(path).status_code == 403
    subscription.refresh_from_db()
    assert subscription.is_active


def test_the_readme_verification_snippet_accepts_a_real_delivery_and_refuses_a_forged_one(
    api, receiver, subscription, communication, django_capture_on_commit_callbacks
):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = [block.split("```", 1)[0] for block in readme.split("```python\n")[1:]]
    snippet = next(block for block in blocks if "def verify(" in block)
    namespace: dict = {}
    exec(snippet, namespace)
    with django_capture_on_commit_callbacks(execute=True):
        api.post(f"/api/v1/communications/{communication.pk}/status/", {"status": "closed"}, format="json")
    headers, body = receiver.requests[0]
    assert namespace["verify"](subscription.secret, body, headers["x-careinbox-signature"])
    assert not namespace["verify"](
        subscription.secret, body.replace(b"closed", b"open"), headers["x-careinbox-signature"]
    )
