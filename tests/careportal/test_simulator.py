"""The demo patient simulator (/demo/patient/): only in demo mode, for signed-in staff; each form writes through
the real ingestion path (a signed Twilio webhook or email webhook over HTTP to a live server, or SMTP to a
receiver), so a Message lands in the database; bad input sends nothing."""

import socket

import pytest
from django.urls import reverse

from careportal.simulator import LOG_SESSION_KEY
from inbox.ingest.smtp import build_controller
from inbox.models import Channel, Communication, Message, RawInbound
from tests.factories import (
    CommunicationFactory,
    ContactFactory,
    InboundAddressFactory,
    MessageFactory,
    PatientContactMethodFactory,
    PatientFactory,
    SendingLineFactory,
)

PAGE = "/demo/patient/"
EMAIL_SECRET = "simulator-email-secret"
TWILIO_TOKEN = "simulator-twilio-token"


@pytest.fixture(autouse=True)
def demo(settings):
    settings.DEMO_ENABLED = True
    settings.INBOUND_EMAIL_SECRET = EMAIL_SECRET
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN


@pytest.fixture
def maria(patient):
    PatientContactMethodFactory(patient=patient, kind="phone", value="+15550102030", is_primary=True)
    PatientContactMethodFactory(patient=patient, kind="email", value="maria@mail.example", is_primary=True)
    return patient


@pytest.fixture
def line(db):
    return SendingLineFactory(number="+15550100001", label="Main clinic")


@pytest.fixture
def address(db):
    return InboundAddressFactory(address="care@clinic.example")


def signed_in(client, user):
    client.force_login(user)
    return client


def test_it_is_404_when_demo_features_are_off(client, settings, nurse):
    settings.DEMO_ENABLED = False
    signed_in(client, nurse)
    assert client.get(PAGE).status_code == 404
    assert client.post(reverse("simulator:sms"), {}).status_code == 404


def test_it_shows_the_forms_to_a_signed_in_nurse(client, nurse, maria, line, address):
    response = signed_in(client, nurse).get(PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Patient simulator" in html
    assert "Maria Lopez — patient" in html
    assert "Main clinic" in html and "care@clinic.example" in html


def test_it_sends_anonymous_visitors_to_sign_in(client):
    response = client.get(PAGE)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_rejects_the_wrong_method(client, nurse):
    signed_in(client, nurse)
    assert client.post(PAGE).status_code == 405
    assert client.get(reverse("simulator:sms")).status_code == 405
    assert client.get(reverse("simulator:email")).status_code == 405
    assert client.get(reverse("simulator:chat")).status_code == 405


def test_home_links_the_simulator_only_in_demo_mode(client, settings, nurse):
    signed_in(client, nurse)
    assert 'data-testid="simulator-card"' in client.get("/").content.decode()
    settings.DEMO_ENABLED = False
    assert 'data-testid="simulator-card"' not in client.get("/").content.decode()


# --- Through the real ingestion path ---------------------------------------------------------------------------


def on_live_server(client, live_server, url, data, host=None, secure=False):
    """POST to the simulator as if it were served by the live server (the connection the request came in on), so
    that its webhook goes there; ``host`` is the Host header the browser sent (by default the live server's)."""
    server_host, server_port = live_server.url.removeprefix("http://").rsplit(":", 1)
    return client.post(
        url,
        data,
        secure=secure,
        HTTP_HOST=host or f"{server_host}:{server_port}",
        SERVER_NAME=server_host,
        SERVER_PORT=server_port,
    )


def last_log(client) -> dict:
    return client.session[LOG_SESSION_KEY][0]


@pytest.mark.django_db(transaction=True)
def test_an_sms_as_the_patient_is_a_signed_twilio_webhook_that_files_a_message(
    client, live_server, nurse, maria, line
):
    response = on_live_server(
        signed_in(client, nurse), live_server, reverse("simulator:sms"),
        {"sms-writer": f"p:{maria.pk}", "sms-line": line.pk, "sms-body": "My ankle is swollen again"},
    )  # fmt: skip
    assert response.status_code == 302
    message = Message.objects.get(body_text="My ankle is swollen again")
    assert message.direction == Message.Direction.INBOUND
    assert message.sender_address == "+15550102030"
    assert message.communication.patient == maria
    assert message.communication.sending_line == line
    assert RawInbound.objects.get().source == RawInbound.Source.TWILIO_SMS
    assert last_log(client)["is_ok"] and last_log(client)["result"].startswith("200")


@pytest.mark.django_db(transaction=True)
def test_the_webhook_goes_back_to_this_server_whatever_host_header_the_browser_sent(
    client, live_server, nurse, maria, line
):
    port = free_port()  # nothing listens there: had the simulator connected to the Host header, it would fail
    on_live_server(
        signed_in(client, nurse), live_server, reverse("simulator:sms"),
        {"sms-writer": f"p:{maria.pk}", "sms-line": line.pk, "sms-body": "Still me"}, host=f"localhost:{port}",
    )  # fmt: skip
    assert Message.objects.get(body_text="Still me").communication.patient == maria
    assert last_log(client)["is_ok"]


@pytest.mark.django_db(transaction=True)
def test_behind_a_tls_proxy_the_signature_covers_the_https_url_the_server_sees(
    client, settings, live_server, nurse, maria, line
):
    settings.TRUSTED_PROXIES = [
        "127.0.0.1"
    ]  # the simulator reaches the server from loopback, as the proxy does
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    on_live_server(
        signed_in(client, nurse), live_server, reverse("simulator:sms"),
        {"sms-writer": f"p:{maria.pk}", "sms-line": line.pk, "sms-body": "Over https"}, secure=True,
    )  # fmt: skip
    assert last_log(client)["result"].startswith("200")
    assert Message.objects.filter(body_text="Over https").exists()


@pytest.mark.django_db(transaction=True)
def test_an_sms_from_a_contact_is_filed_with_that_contact(client, live_server, nurse, maria, line):
    contact = ContactFactory(patient=maria, first_name="Luis", last_name="Lopez", phone="+15550109999")
    on_live_server(
        signed_in(client, nurse), live_server, reverse("simulator:sms"),
        {"sms-writer": f"c:{contact.pk}", "sms-line": line.pk, "sms-body": "Her ride is late"},
    )  # fmt: skip
    message = Message.objects.get(body_text="Her ride is late")
    assert message.sender_address == "+15550109999"
    assert message.communication.contact == contact


@pytest.mark.django_db(transaction=True)
def test_an_sms_from_an_unknown_number_is_unrecognized(client, live_server, nurse, maria, line):
    on_live_server(
        signed_in(client, nurse), live_server, reverse("simulator:sms"),
        {"sms-writer": "unknown", "sms-line": line.pk, "sms-body": "Who is this?"},
    )  # fmt: skip
    message = Message.objects.get(body_text="Who is this?")
    assert message.sender_address.startswith("+1555")
    assert message.communication.is_unrecognized


@pytest.mark.django_db(transaction=True)
def test_an_sms_refused_by_the_webhook_is_logged_as_failed(client, live_server, settings, nurse, maria, line):
    settings.TWILIO_AUTH_TOKEN = ""  # the webhook answers 503 when it is not configured
    on_live_server(
        signed_in(client, nurse), live_server, reverse("simulator:sms"),
        {"sms-writer": f"p:{maria.pk}", "sms-line": line.pk, "sms-body": "Hello?"},
    )  # fmt: skip
    assert not Message.objects.exists()
    assert not last_log(client)["is_ok"] and last_log(client)["result"].startswith("503")


@pytest.mark.django_db(transaction=True)
def test_a_new_email_through_the_signed_webhook_files_a_message(client, live_server, nurse, maria, address):
    on_live_server(
        signed_in(client, nurse), live_server, reverse("simulator:email"),
        {
            "email-writer": f"p:{maria.pk}", "email-to": address.pk, "email-thread": "",
            "email-subject": "Refill please", "email-body": "I am out of my inhaler.", "email-route": "webhook",
        },
    )  # fmt: skip
    message = Message.objects.get(body_text__contains="I am out of my inhaler.")
    assert message.communication.channel == Channel.EMAIL
    assert message.communication.patient == maria
    assert message.subject == "Refill please"
    assert RawInbound.objects.get().source == RawInbound.Source.EMAIL_WEBHOOK
    assert last_log(client)["result"].startswith("200")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_receiver(settings):
    port = free_port()
    controller = build_controller(host="127.0.0.1", port=port)
    controller.start()
    settings.SMTP_HOST, settings.SMTP_PORT = "127.0.0.1", port
    yield controller
    controller.stop()


@pytest.mark.django_db(transaction=True)
def test_an_email_reply_over_smtp_joins_the_thread_it_answers(client, smtp_receiver, nurse, maria, address):
    thread = CommunicationFactory(patient=maria, channel=Channel.EMAIL, subject="Your lab results")
    outbound = MessageFactory(
        communication=thread, direction=Message.Direction.OUTBOUND, subject="Your lab results",
        email_message_id="<lab-results-1@careinbox.local>", author=nurse,
    )  # fmt: skip
    signed_in(client, nurse).post(
        reverse("simulator:email"),
        {
            "email-writer": f"p:{maria.pk}", "email-to": address.pk, "email-thread": outbound.pk,
            "email-subject": "", "email-body": "Thanks, that is a relief.", "email-route": "smtp",
        },
    )  # fmt: skip
    reply = Message.objects.get(body_text__contains="that is a relief")
    assert reply.communication == thread
    assert reply.in_reply_to == "<lab-results-1@careinbox.local>"
    assert reply.subject == "Re: Your lab results"
    assert RawInbound.objects.get().source == RawInbound.Source.SMTP
    assert last_log(client)["result"].startswith("250")


@pytest.mark.django_db(transaction=True)
def test_an_email_from_an_unknown_address_over_smtp_is_unrecognized(client, smtp_receiver, nurse, address):
    signed_in(client, nurse).post(
        reverse("simulator:email"),
        {
            "email-writer": "unknown", "email-to": address.pk, "email-from_address": "stranger@else.example",
            "email-subject": "Hello", "email-body": "Is this the clinic?", "email-route": "smtp",
        },
    )  # fmt: skip
    message = Message.objects.get(body_text__contains="Is this the clinic?")
    assert message.sender_address == "stranger@else.example"
    assert message.communication.is_unrecognized


def test_smtp_without_a_receiver_is_logged_as_failed(client, settings, nurse, maria, address):
    settings.SMTP_PORT = free_port()  # nobody listens there
    response = signed_in(client, nurse).post(
        reverse("simulator:email"),
        {
            "email-writer": f"p:{maria.pk}", "email-to": address.pk, "email-subject": "Hi",
            "email-body": "Anyone?", "email-route": "smtp",
        },
    )  # fmt: skip
    assert response.status_code == 302
    assert not RawInbound.objects.exists()
    assert "No SMTP receiver" in last_log(client)["result"]


def test_chat_gives_the_patients_real_signed_chat_link(client, nurse, maria):
    response = signed_in(client, nurse).post(reverse("simulator:chat"), {"chat-writer": f"p:{maria.pk}"})
    assert response.status_code == 302
    link = last_log(client)["link"]
    assert link.startswith("http://testserver/chat/")
    page = client.get(link.removeprefix("http://testserver"))
    assert page.status_code == 200
    assert "Maria" in page.content.decode()
    assert 'data-testid="sim-chat-link"' in client.get(PAGE).content.decode()


# --- Bad input changes nothing ----------------------------------------------------------------------------------


def assert_refused(response, text: str):
    assert response.status_code == 400
    assert text in response.content.decode()
    assert not RawInbound.objects.exists()
    assert not Message.objects.exists()


def test_an_empty_sms_is_refused(client, nurse, maria, line):
    response = signed_in(client, nurse).post(
        reverse("simulator:sms"), {"sms-writer": f"p:{maria.pk}", "sms-line": line.pk, "sms-body": ""}
    )
    assert_refused(response, "Write the text message.")


def test_a_patient_the_user_may_not_see_cannot_be_written_as(client, other_nurse, maria, line):
    response = signed_in(client, other_nurse).post(
        reverse("simulator:sms"), {"sms-writer": f"p:{maria.pk}", "sms-line": line.pk, "sms-body": "Hi"}
    )
    assert_refused(response, "Choose a patient, a contact or an unknown sender from the list.")
    assert "Maria Lopez" not in signed_in(client, other_nurse).get(PAGE).content.decode()


def test_an_inactive_line_or_a_bad_number_is_refused(client, nurse, line):
    closed = SendingLineFactory(number="+15550100009", is_active=False)
    response = signed_in(client, nurse).post(
        reverse("simulator:sms"),
        {"sms-writer": "unknown", "sms-line": closed.pk, "sms-from_number": "not a number", "sms-body": "Hi"},
    )
    assert_refused(response, "Choose an active sending line.")
    assert "Enter a phone number" in response.content.decode()


def test_a_patient_without_a_phone_on_file_is_refused(client, nurse, patient, line):
    response = signed_in(client, nurse).post(
        reverse("simulator:sms"), {"sms-writer": f"p:{patient.pk}", "sms-line": line.pk, "sms-body": "Hi"}
    )
    assert_refused(response, "has no phone number on file")


def test_a_reply_in_another_patients_thread_is_refused(client, lead, maria, address):
    other = PatientFactory(first_name="Ann", last_name="Other")
    thread = CommunicationFactory(patient=other, channel=Channel.EMAIL, subject="Ann's results")
    outbound = MessageFactory(
        communication=thread, direction=Message.Direction.OUTBOUND, email_message_id="<ann@careinbox.local>"
    )
    response = signed_in(client, lead).post(
        reverse("simulator:email"),
        {
            "email-writer": f"p:{maria.pk}", "email-to": address.pk, "email-thread": outbound.pk,
            "email-body": "Hi", "email-route": "smtp",
        },
    )  # fmt: skip
    assert response.status_code == 400
    assert "That thread is not one of Maria Lopez" in response.content.decode()
    assert Message.objects.count() == 1  # only Ann's outbound
    assert not RawInbound.objects.exists()


def test_a_new_email_needs_a_subject_and_an_address(client, nurse, maria):
    response = signed_in(client, nurse).post(
        reverse("simulator:email"),
        {"email-writer": f"p:{maria.pk}", "email-to": "999", "email-body": "Hi", "email-route": "smtp"},
    )
    assert_refused(response, "Give the new email a subject.")
    assert "Choose an active inbound address." in response.content.decode()


def test_the_thread_field_offers_only_the_writers_threads(client, nurse, maria):
    mine = CommunicationFactory(patient=maria, channel=Channel.EMAIL, subject="Maria's plan")
    MessageFactory(
        communication=mine, direction=Message.Direction.OUTBOUND, subject="Maria's plan",
        email_message_id="<plan@careinbox.local>",
    )  # fmt: skip
    signed_in(client, nurse)
    html = client.get(reverse("simulator:threads"), {"email-writer": f"p:{maria.pk}"}).content.decode()
    assert "Maria&#x27;s plan" in html
    html = client.get(reverse("simulator:threads"), {"email-writer": "unknown"}).content.decode()
    assert "Maria&#x27;s plan" not in html and "New conversation" in html
    assert Communication.objects.count() == 1


def test_the_page_offers_the_threads_of_the_writer_it_shows_first(client, lead, maria):
    first = PatientFactory(first_name="Abel", last_name="Aaron")  # listed before Maria Lopez
    for patient, subject in ((first, "Abel's visit"), (maria, "Maria's plan")):
        communication = CommunicationFactory(patient=patient, channel=Channel.EMAIL, subject=subject)
        MessageFactory(
            communication=communication, direction=Message.Direction.OUTBOUND, subject=subject,
            email_message_id=f"<{patient.pk}@careinbox.local>",
        )  # fmt: skip
    html = signed_in(client, lead).get(PAGE).content.decode()
    assert "Reply to Abel Aaron: Abel&#x27;s visit" in html
    assert "Maria&#x27;s plan" not in html
