"""Browser test (Chromium): an administrator creates an API token and a webhook in Admin Portal → Integrations (each
secret shown once), revokes the token; an integration user reads the API reference at /api/docs/. Any console
error (a Content-Security-Policy violation included) fails the test."""

import pytest
from playwright.sync_api import expect

from adminportal.models import ApiToken, WebhookSubscription
from tests.e2e.conftest import (  # noqa: F401 (the browser fixtures of tests/e2e)
    browser_context_args,
    browser_type_launch_args,
)
from tests.e2e.conftest import page as page
from tests.e2e.conftest import screenshot as screenshot
from tests.e2e.conftest import sign_in as sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_administrator_creates_and_revokes_a_token_and_adds_a_webhook(
    page,
    live_server,
    sign_in,
    screenshot,
    administrator,
    api_user,
):
    sign_in("admin")
    page.goto(f"{live_server.url}/admin-portal/")
    page.get_by_role("link", name="Integrations").click()
    expect(page.get_by_role("heading", name="Integrations", level=1)).to_be_visible()

    form = page.get_by_test_id("token-form")
    form.get_by_label("Integration user").select_option(label="EHR Sync (ehr-sync)")
    form.get_by_label("Name").fill("EHR sync")
    form.get_by_role("button", name="Create token").click()
    value = page.get_by_test_id("new-token-value")
    expect(value).to_be_visible()
    raw = value.inner_text()
    assert raw.startswith(ApiToken.objects.get().prefix)
    screenshot("adminportal-integrations-token-created")

    webhook = page.get_by_test_id("webhook-form")
    webhook.get_by_label("Integration user").select_option(label="EHR Sync (ehr-sync)")
    webhook.get_by_label("Name").fill("EHR events")
    webhook.get_by_label("HTTPS address").fill("https://hooks.ehr.example/care-inbox")
    webhook.get_by_label("Message created").check()
    webhook.get_by_label("Status changed").check()
    webhook.get_by_role("button", name="Add webhook").click()
    expect(page.get_by_test_id("new-secret-value")).to_have_text(WebhookSubscription.objects.get().secret)
    expect(page.get_by_test_id("new-token")).to_have_count(0)  # the token is not shown again
    screenshot("adminportal-integrations")

    page.get_by_test_id(f"revoke-{ApiToken.objects.get().prefix}").click()
    expect(page.get_by_text("is revoked")).to_be_visible()
    expect(page.get_by_test_id("tokens").get_by_text("Revoked")).to_be_visible()
    assert ApiToken.objects.get().revoked_at is not None


def test_the_api_reference_renders_from_local_assets(page, live_server, sign_in, screenshot, api_user):
    sign_in("ehr-sync")
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(live_server.url) else None)
    page.goto(f"{live_server.url}/api/docs/")
    expect(page.get_by_text("Care Inbox API").first).to_be_visible()
    expect(page.get_by_text("/api/v1/communications/{id}/send/").first).to_be_visible()
    screenshot("api-docs")
    assert [url for url in outside if not url.startswith("data:")] == []


def test_a_paused_webhook_shows_its_deliveries_and_offers_resume(
    page, live_server, sign_in, screenshot, administrator, api_user, patient
):
    from django.utils import timezone

    from adminportal.models import WebhookDelivery
    from tests.factories import CommunicationFactory

    communication = CommunicationFactory(patient=patient)
    subscription = WebhookSubscription.objects.create(
        user=api_user, name="EHR events", url="https://hooks.ehr.example/care-inbox", secret="whsec_x",
        event_types=["message.created", "status.changed"], paused_at=timezone.now(), consecutive_failures=5,
    )  # fmt: skip
    payload = {"data": {"communication": {"id": communication.pk}}}
    WebhookDelivery.objects.create(
        subscription=subscription, event="message.created", payload=payload, attempts=1, last_status_code=200,
        delivered_at=timezone.now(),
    )  # fmt: skip
    WebhookDelivery.objects.create(
        subscription=subscription, event="status.changed", payload=payload, attempts=5, last_status_code=503,
        last_error="HTTP 503",
    )  # fmt: skip
    sign_in("admin")
    page.goto(f"{live_server.url}/admin-portal/integrations/")
    expect(page.get_by_test_id("paused")).to_be_visible()
    expect(page.get_by_test_id(f"resume-{subscription.pk}")).to_be_visible()
    page.get_by_role("link", name="EHR events").click()
    expect(page.get_by_role("heading", name="EHR events")).to_be_visible()
    expect(page.get_by_test_id("deliveries").get_by_text("HTTP 503").first).to_be_visible()
    expect(page.get_by_test_id("resume")).to_be_visible()
    screenshot("adminportal-webhook-paused")
