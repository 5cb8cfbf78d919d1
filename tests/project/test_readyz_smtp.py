"""/readyz and the SMTP receiver: checked when ``READYZ_SMTP`` names one or when this process runs the embedded
receiver; ready only when it accepts a connection and greets with 220."""

import socket

import pytest
from django.urls import reverse

from inbox_project import embedded
from tests.network import free_port, smtp_receiver_running


@pytest.fixture
def receiver():
    with smtp_receiver_running(max_bytes=10_000) as controller:
        yield controller


@pytest.fixture
def embedded_here(monkeypatch):
    """As if ``make run`` had scheduled the embedded receiver in this process, at ``embedded_here(host, port)``."""

    def at(host: str, port: int) -> None:
        monkeypatch.setattr(
            embedded, "_state", {**embedded._state, "scheduled": True, "address": (host, port)}
        )

    return at


@pytest.mark.django_db
def test_without_a_receiver_to_check_readyz_has_no_smtp_check(client, settings):
    settings.READYZ_SMTP = ""
    body = client.get(reverse("readyz")).json()
    assert "smtp" not in body["checks"]


@pytest.mark.django_db
def test_readyz_reports_the_configured_receiver_ready(client, settings, receiver):
    settings.READYZ_SMTP = f"127.0.0.1:{receiver.port}"
    response = client.get(reverse("readyz"))
    assert response.status_code == 200
    assert response.json()["checks"]["smtp"] == "ok"


@pytest.mark.django_db
def test_readyz_is_503_naming_smtp_when_the_configured_receiver_does_not_answer(client, settings):
    settings.READYZ_SMTP = f"127.0.0.1:{free_port()}"  # nothing listens there
    response = client.get(reverse("readyz"))
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["smtp"]
    assert body["checks"]["smtp"] == "error: ConnectionRefusedError"
    assert body["checks"]["database"] == "ok"


@pytest.mark.django_db
def test_readyz_is_503_when_something_else_answers_there(client, settings):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        settings.READYZ_SMTP = f"127.0.0.1:{listener.getsockname()[1]}"

        # A listener that never greets: the check times out rather than taking it for a receiver.
        response = client.get(reverse("readyz"))
    assert response.status_code == 503
    assert response.json()["failing"] == ["smtp"]


@pytest.mark.django_db
def test_a_malformed_readyz_smtp_setting_fails_readiness_clearly(client, settings):
    settings.READYZ_SMTP = "no-port-here"
    response = client.get(reverse("readyz"))
    assert response.status_code == 503
    assert response.json()["checks"]["smtp"] == "error: ValueError"


@pytest.mark.django_db
def test_readyz_checks_the_embedded_receiver_of_this_process(client, settings, receiver, embedded_here):
    settings.READYZ_SMTP = ""
    embedded_here("127.0.0.1", receiver.port)
    response = client.get(reverse("readyz"))
    assert response.status_code == 200
    assert response.json()["checks"]["smtp"] == "ok"


@pytest.mark.django_db
def test_readyz_is_503_when_the_embedded_receiver_is_not_listening(client, settings, embedded_here):
    settings.READYZ_SMTP = ""
    embedded_here("127.0.0.1", free_port())
    response = client.get(reverse("readyz"))
    assert response.status_code == 503
    assert response.json()["failing"] == ["smtp"]
