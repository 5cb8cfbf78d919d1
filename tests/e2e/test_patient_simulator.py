"""The embedded default shows the whole loop: a `make run`-style server (one daphne process, the in-memory channel
layer, eager Celery, the SMTP receiver inside it on a free port, demo webhook secrets made in its own var/) — a
nurse keeps the Inbox open in one browser while, in another, the patient simulator writes as her patient by SMS (a
signed Twilio webhook), email (SMTP to the embedded receiver) and live chat (the patient's real chat page). Each
appears in the open Inbox without a reload.

The server uses the test database (the SQLite file or PostgreSQL test database, see
tests/e2e/test_realtime_two_processes.py) and never REDIS_URL: this is the embedded mode.
"""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from inbox.models import Channel, Communication, RawInbound
from tests.e2e.servers import Tab, daphne, free_port, server_env, start_server
from tests.factories import (
    FeatureSettingFactory,
    InboundAddressFactory,
    PatientContactMethodFactory,
    SendingLineFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 15_000


@pytest.fixture
def embedded_server(transactional_db, tmp_path, request):
    """`make run`'s server command and environment, on free ports; its URL and SMTP port."""
    unset = (
        "DJANGO_ALLOW_ASYNC_UNSAFE",
        "INBOUND_EMAIL_SECRET",
        "TWILIO_AUTH_TOKEN",
        "DEMO_MODE",
        "SMS_BACKEND",
    )
    started = {}

    def make_run(port):
        started["smtp_port"] = smtp_port = free_port()
        env = server_env(
            tmp_path,
            INBOX_EMBEDDED_SMTP="1",
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(smtp_port),
            PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
            CELERY_TASK_ALWAYS_EAGER=None,
            **dict.fromkeys(unset),
        )
        return daphne(port), env

    url, log = start_server(request, tmp_path, "web", make_run)
    return {"url": url, "smtp_port": started["smtp_port"], "log": log, "var": tmp_path / "var"}


def test_the_simulator_writes_as_a_patient_by_sms_email_and_chat_and_each_appears_live_in_the_inbox(
    browser, embedded_server, nurse, patient
):
    FeatureSettingFactory(key="chat_business_hours", is_enabled=False)  # the team is answering: no auto-reply
    PatientContactMethodFactory(patient=patient, kind="phone", value="+15550102030", is_primary=True)
    PatientContactMethodFactory(patient=patient, kind="email", value="maria@mail.example", is_primary=True)
    line = SendingLineFactory(number="+15550100001", label="Main clinic")
    address = InboundAddressFactory(address="care@clinic.example")
    writer = f"p:{patient.pk}"
    base = embedded_server["url"]

    inbox = Tab(browser, base, "inbox")
    simulator = Tab(browser, base, "simulator")
    try:
        inbox.open_as(nurse, "/inbox/care-team/directed/")
        rows = inbox.page.locator("#inbox-rows")
        expect(inbox.page.get_by_role("heading", name="Directed")).to_be_visible()
        inbox.page.evaluate("window.__notReloaded = true")

        simulator.open_as(nurse, "/demo/patient/")
        sim = simulator.page
        expect(sim.get_by_role("heading", name="Patient simulator")).to_be_visible()

        # Bad input: a clear error, nothing sent.
        sim.get_by_test_id("sim-sms").get_by_role("button", name="Send text").click()
        expect(sim.get_by_test_id("field-error")).to_have_text("Write the text message.")
        simulator.screenshot("patient-simulator-error")
        assert not RawInbound.objects.exists()
        # The form with its errors is answered 400, which Chromium logs; that one line is expected, nothing else.
        assert simulator.errors == [
            "Failed to load resource: the server responded with a status of 400 (Bad Request)"
        ]
        simulator.errors.clear()

        # SMS: a signed Twilio webhook to the running server.
        sms = sim.get_by_test_id("sim-sms")
        sms.get_by_label("From", exact=True).select_option(writer)
        sms.get_by_label("To line").select_option(str(line.pk))
        sms.get_by_label("Message").fill("My ankle is swollen again this morning")
        sms.get_by_role("button", name="Send text").click()
        expect(sim.get_by_test_id("sim-result").first).to_have_text("200 OK")
        expect(rows).to_contain_text("My ankle is swollen again", timeout=TIMEOUT)

        # Email: over SMTP to the receiver inside the web process.
        email = sim.get_by_test_id("sim-email")
        email.get_by_label("From", exact=True).select_option(writer)
        email.get_by_label("To address").select_option(str(address.pk))
        email.get_by_label("Subject").fill("Inhaler refill")
        email.get_by_label("Message").fill("I am out of my inhaler, could you renew it?")
        expect(email.get_by_label("SMTP (the inbound mail server)")).to_be_checked()
        email.get_by_role("button", name="Send email").click()
        expect(sim.get_by_test_id("sim-result").first).to_contain_text("250")
        expect(rows).to_contain_text("Inhaler refill", timeout=TIMEOUT)

        # Chat: the patient's real signed chat page, over its WebSocket.
        chat = sim.get_by_test_id("sim-chat")
        chat.get_by_label("Chat as").select_option(writer)
        chat.get_by_role("button", name="Get chat link").click()
        with simulator.context.expect_page() as opened:
            sim.get_by_test_id("sim-chat-link").first.click()
        patient_page = opened.value
        expect(patient_page.get_by_role("status").filter(has_text="Connected")).to_be_visible(timeout=TIMEOUT)
        patient_page.get_by_label("Your message").fill("Can someone call me about the dressing?")
        patient_page.get_by_label("Your message").press("Enter")
        expect(rows).to_contain_text("Can someone call me about the dressing?", timeout=TIMEOUT)

        assert inbox.page.evaluate("window.__notReloaded") is True
        expect(rows.locator("[data-row]")).to_have_count(3)
        channels = set(Communication.objects.filter(patient=patient).values_list("channel", flat=True))
        assert channels == {Channel.SMS, Channel.EMAIL, Channel.CHAT}
        sources = set(RawInbound.objects.values_list("source", flat=True))
        assert sources == {RawInbound.Source.TWILIO_SMS, RawInbound.Source.SMTP, RawInbound.Source.CHAT}
        assert (embedded_server["var"] / "demo-secrets.json").exists()
        assert "Inbound SMTP listening on" in embedded_server["log"].read_text()
        simulator.screenshot("patient-simulator")
        inbox.screenshot("patient-simulator-inbox")
        assert inbox.errors == [] and simulator.errors == [], {"inbox": inbox.errors, "sim": simulator.errors}
    finally:
        inbox.context.close()
        simulator.context.close()
