"""The SMTP receiver, for real: an aiosmtpd controller on a free local port, mail sent with smtplib."""

import smtplib
import threading
import time

import pytest
from django.core.management import call_command
from django.db import OperationalError, connections

from inbox.ingest import smtp as smtp_receiver
from inbox.models import Message, RawInbound
from tests.factories import InboundAddressFactory, PatientContactMethodFactory
from tests.inbox.ingest_support import build_email, eager_celery, hook_secrets  # noqa: F401  (autouse fixtures)
from tests.network import free_port, smtp_receiver_running

pytestmark = pytest.mark.django_db(transaction=True)
MAX_BYTES = 20_000


@pytest.fixture
def server():
    with smtp_receiver_running(max_bytes=MAX_BYTES) as controller:
        yield controller


@pytest.fixture
def maria(patient):
    PatientContactMethodFactory(patient=patient, kind="email", value="maria@mail.example")
    InboundAddressFactory(address="care@clinic.example")
    return patient


def smtp(server) -> smtplib.SMTP:
    return smtplib.SMTP(server.hostname, server.port, timeout=10)


def test_mail_for_an_inbound_address_is_accepted_stored_and_filed(server, maria):
    body = build_email(subject="Refill", body="Please refill my prescription.")
    with smtp(server) as client:
        client.ehlo()
        client.mail("maria@mail.example")
        assert client.rcpt("Care@Clinic.example")[0] == 250
        code, reply = client.data(body)
    assert (code, reply) == (250, b"Message accepted")
    raw = RawInbound.objects.get()
    assert raw.source == RawInbound.Source.SMTP
    assert raw.envelope["mail_from"] == "maria@mail.example"
    assert raw.envelope["rcpt_tos"] == ["Care@Clinic.example"]
    assert raw.envelope["peer"][0] == "127.0.0.1"
    assert raw.processed_at is not None
    message = raw.message
    assert message.provider == Message.Provider.SMTP
    assert message.communication.patient == maria
    assert message.body_text == "Please refill my prescription."


def test_mail_for_an_unknown_recipient_is_refused_with_550(server, maria):
    with smtp(server) as client:
        client.ehlo()
        client.mail("maria@mail.example")
        code, reply = client.rcpt("nobody@clinic.example")
    assert (code, reply) == (550, b"5.1.1 mailbox unavailable")
    assert not RawInbound.objects.exists()


def test_mail_for_an_inactive_address_is_refused(server, maria):
    InboundAddressFactory(address="old@clinic.example", is_active=False)
    with smtp(server) as client, pytest.raises(smtplib.SMTPRecipientsRefused):
        client.sendmail("maria@mail.example", ["old@clinic.example"], build_email())


def test_oversize_mail_is_refused_with_552_when_announced(server, maria):
    with smtp(server) as client:
        client.ehlo()
        assert client.esmtp_features["size"] == str(MAX_BYTES)
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail(
                "maria@mail.example", ["care@clinic.example"], build_email(body="x" * (MAX_BYTES + 10))
            )
    assert (refused.value.smtp_code, refused.value.smtp_error) == (552, b"5.3.4 message too big")
    assert not RawInbound.objects.exists()


def test_oversize_mail_is_refused_with_552_after_data(server, maria):
    with smtp(server) as client:
        client.ehlo()
        client.mail("maria@mail.example")  # no SIZE parameter: the limit is enforced on the data
        client.rcpt("care@clinic.example")
        code, reply = client.data(build_email(body=("y" * 70 + "\n") * (MAX_BYTES // 70 + 10)))
    assert (code, reply) == (552, b"5.3.4 message too big")
    assert not RawInbound.objects.exists()


def test_mail_is_refused_with_451_when_the_database_is_down(server, maria, monkeypatch):
    def database_down(**kwargs):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(smtp_receiver, "store_raw", database_down)
    with smtp(server) as client:
        client.ehlo()
        client.mail("maria@mail.example")
        client.rcpt("care@clinic.example")
        code, reply = client.data(build_email())
    assert (code, reply) == (451, b"4.3.0 temporary failure, try again later")
    assert not RawInbound.objects.exists()


def test_recipient_check_answers_451_when_the_database_is_down(server, maria, monkeypatch):
    def database_down(address):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(smtp_receiver, "_is_inbound_address", database_down)
    with smtp(server) as client:
        client.ehlo()
        client.mail("maria@mail.example")
        assert client.rcpt("care@clinic.example")[0] == 451


def test_the_same_email_delivered_twice_is_one_message(server, maria):
    body = build_email(message_id="<twice@mail.example>")
    for _ in range(2):
        with smtp(server) as client:
            client.sendmail("maria@mail.example", ["care@clinic.example"], body)
    assert RawInbound.objects.count() == 1
    assert Message.objects.count() == 1


def test_long_lines_are_tolerated(server, maria):
    with smtp(server) as client:
        client.sendmail(
            "maria@mail.example", ["care@clinic.example"], build_email(html="<p>" + "z" * 5000 + "</p>")
        )
    assert "z" * 5000 in RawInbound.objects.get().message.body_html


def test_bounce_with_a_null_sender_is_accepted(server, maria):
    with smtp(server) as client:
        client.sendmail("<>", ["care@clinic.example"], build_email(sender="MAILER-DAEMON@mx.mail.example"))
    assert RawInbound.objects.get().envelope["mail_from"] in {"", "<>"}


def test_smtp_receiver_command_serves_until_stopped(maria):
    from inbox.management.commands.smtp_receiver import Command

    command, port = Command(), free_port()
    thread = threading.Thread(
        target=call_command,
        args=(command, "--host", "127.0.0.1", "--port", str(port), "--max-bytes", "50000"),
    )
    thread.start()
    try:
        for _ in range(50):
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
                    client.sendmail("maria@mail.example", ["care@clinic.example"], build_email())
                break
            except ConnectionRefusedError:
                time.sleep(0.1)
    finally:
        command.stop.set()
        thread.join(timeout=10)
        connections.close_all()
    assert not thread.is_alive()
    assert RawInbound.objects.get().processed_at is not None
