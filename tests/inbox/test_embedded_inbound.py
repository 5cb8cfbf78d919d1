"""Inbound out of the box in the embedded default (``make run``): demo webhook secrets made once and kept in
``var/`` (demo mode only, never in production), and the SMTP receiver inside the web process, on its event loop,
started only when ``INBOX_EMBEDDED_SMTP`` asks for it."""

import asyncio
import json
import os
import smtplib
import socket
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connections

from inbox.events import LIVE_GROUP
from inbox.models import Message, RawInbound
from inbox_project import embedded
from inbox_project.demo_secrets import FILE_NAME, NAMES, demo_secrets
from tests.factories import InboundAddressFactory
from tests.network import free_port

ROOT = Path(__file__).resolve().parents[2]


# --- Demo secrets -----------------------------------------------------------------------------------------------


def test_demo_secrets_are_made_once_private_and_kept(tmp_path):
    first = demo_secrets(tmp_path)
    assert set(first) == set(NAMES) and all(len(value) >= 32 for value in first.values())
    path = tmp_path / FILE_NAME
    assert path.stat().st_mode & 0o777 == 0o600
    assert demo_secrets(tmp_path) == first  # a restart reads the same ones
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_a_secrets_file_missing_a_name_is_completed_keeping_the_other(tmp_path):
    (tmp_path / FILE_NAME).write_text(json.dumps({"TWILIO_AUTH_TOKEN": "kept-token"}))
    values = demo_secrets(tmp_path)
    assert values["TWILIO_AUTH_TOKEN"] == "kept-token"
    assert values["INBOUND_EMAIL_SECRET"]


def settings_secrets(tmp_path: Path, **env) -> dict:
    """The inbound secrets ``inbox_project.settings`` ends up with in a fresh process given ``env``."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DEBUG", "DEMO_MODE", "INBOUND_EMAIL_SECRET", "TWILIO_AUTH_TOKEN", "PYTEST_VERSION"}
    }
    code = (
        "import json; from inbox_project import settings as s; "
        "print(json.dumps({'email': s.INBOUND_EMAIL_SECRET, 'twilio': s.TWILIO_AUTH_TOKEN}))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "VAR_DIR": str(tmp_path), "SECRET_KEY": "test-only-secret-key", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def test_debug_fills_missing_webhook_secrets_and_keeps_them_across_restarts(tmp_path):
    first = settings_secrets(tmp_path, DEBUG="1")
    assert first["email"] and first["twilio"]
    assert settings_secrets(tmp_path, DEBUG="1") == first
    stored = json.loads((tmp_path / FILE_NAME).read_text())
    assert first == {"email": stored["INBOUND_EMAIL_SECRET"], "twilio": stored["TWILIO_AUTH_TOKEN"]}


def test_demo_mode_fills_them_with_debug_off_and_a_configured_secret_wins(tmp_path):
    values = settings_secrets(tmp_path, DEBUG="0", DEMO_MODE="1", TWILIO_AUTH_TOKEN="real-token")
    assert values["twilio"] == "real-token"
    assert values["email"]


def test_production_never_gets_generated_secrets(tmp_path):
    assert settings_secrets(tmp_path, DEBUG="0") == {"email": "", "twilio": ""}
    assert not (tmp_path / FILE_NAME).exists()


# --- The SMTP receiver in the web process ---------------------------------------------------------------------


@pytest.fixture
def fresh_state(monkeypatch):
    monkeypatch.setattr(embedded, "_state", {"scheduled": False, "task": None, "server": None})
    monkeypatch.delitem(sys.modules, "twisted.internet.reactor", raising=False)


def test_nothing_starts_unless_asked(fresh_state, monkeypatch):
    monkeypatch.delenv(embedded.ENV, raising=False)
    monkeypatch.setitem(sys.modules, "twisted.internet.reactor", SimpleNamespace(_asyncioEventloop=object()))
    assert embedded.schedule_smtp() is False
    assert embedded._state["scheduled"] is False


def test_with_redis_the_procfile_smtp_process_receives_mail(fresh_state, monkeypatch, settings):
    monkeypatch.setenv(embedded.ENV, "1")
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    monkeypatch.setitem(sys.modules, "twisted.internet.reactor", SimpleNamespace(_asyncioEventloop=object()))
    assert embedded.schedule_smtp() is False


def test_outside_daphne_it_warns_and_starts_nothing(fresh_state, monkeypatch, settings, caplog):
    monkeypatch.setenv(embedded.ENV, "1")
    settings.REDIS_URL = ""
    assert embedded.schedule_smtp() is False
    assert "needs daphne" in caplog.text


def test_a_taken_port_is_a_clear_warning_not_a_crash(caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert asyncio.run(embedded.start_smtp(host="127.0.0.1", port=port)) is None
    assert f"Inbound SMTP NOT started: cannot listen on 127.0.0.1:{port}" in caplog.text
    assert "The web server keeps running" in caplog.text


def send_email(port: int, body: str) -> None:
    message = EmailMessage()
    message["From"] = "Stranger <stranger@else.example>"
    message["To"] = "care@clinic.example"
    message["Subject"] = "Hello"
    message["Message-ID"] = "<embedded-1@else.example>"
    message.set_content(body)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.send_message(message)


@pytest.mark.django_db(transaction=True)
def test_mail_received_in_the_web_process_is_filed_and_its_hint_reaches_the_in_memory_layer(
    fresh_state, monkeypatch, settings
):
    InboundAddressFactory(address="care@clinic.example")
    monkeypatch.setenv(embedded.ENV, "1")
    port = free_port()
    settings.REDIS_URL, settings.SMTP_HOST, settings.SMTP_PORT = "", "127.0.0.1", port
    loop = asyncio.new_event_loop()
    # What daphne does before importing the ASGI application: Twisted's reactor runs on this asyncio loop.
    monkeypatch.setitem(sys.modules, "twisted.internet.reactor", SimpleNamespace(_asyncioEventloop=loop))
    layer = get_channel_layer()

    async def scenario():
        # The scheduled start ran first (it was queued on the loop before this coroutine), as under daphne.
        server = await embedded._state["task"]
        assert server is not None and server.is_serving()
        channel = await layer.new_channel()
        await layer.group_add(LIVE_GROUP, channel)
        await asyncio.to_thread(send_email, port, "Is this the clinic?")
        hint = await asyncio.wait_for(layer.receive(channel), timeout=10)
        server.close()
        await server.wait_closed()
        await sync_to_async(connections.close_all)()  # the handler's thread's connection
        return hint

    try:
        assert embedded.schedule_smtp() is True
        assert embedded.schedule_smtp() is False  # once per process
        hint = loop.run_until_complete(scenario())
    finally:
        loop.close()
    message = Message.objects.get(body_text__contains="Is this the clinic?")
    assert hint["type"] == "communication.changed"
    assert hint["communication_id"] == message.communication_id
    assert RawInbound.objects.get().source == RawInbound.Source.SMTP
