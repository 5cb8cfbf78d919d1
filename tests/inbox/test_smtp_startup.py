"""The SMTP receiver is listening soon after it starts: the receiver process binds before Django is set up, and only
the steps that need the database (RCPT TO, DATA) wait for it. Start-up times are printed (``-s``), not asserted:
the tests wait on the condition with a generous deadline, since they may run on a loaded machine."""

import concurrent.futures
import os
import smtplib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connections

from inbox.ingest import smtp as smtp_receiver
from tests.factories import InboundAddressFactory
from tests.network import free_port

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 30.0  # seconds: a deadline for a loaded machine, not a performance claim
COMMANDS = {
    "python -m inbox.ingest.receiver": ["-m", "inbox.ingest.receiver"],
    "manage.py smtp_receiver": ["manage.py", "smtp_receiver"],
}


def greeting_within(port: int, deadline: float) -> bytes:
    """The server's first line, connecting again and again until ``deadline`` (monotonic)."""
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                conn.settimeout(max(deadline - time.monotonic(), 1))
                greeting = conn.recv(512)
                conn.sendall(b"EHLO startup.test\r\n")
                ehlo = conn.recv(4096)
                conn.sendall(b"QUIT\r\n")
                return greeting + ehlo
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@pytest.mark.parametrize("label", list(COMMANDS))
def test_the_receiver_command_accepts_a_connection_and_greets_with_220(label):
    port = free_port()
    env = {**os.environ, "DEBUG": os.environ.get("DEBUG", "1")}
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, *COMMANDS[label], "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        answer = greeting_within(port, started + DEADLINE)
        print(f"\n[smtp start-up] {label}: 220 after {time.monotonic() - started:.2f} s")
    finally:
        process.terminate()
        output = process.communicate(timeout=60)[0].decode(errors="replace")
    assert answer.startswith(b"220 "), output
    assert b"250" in answer.split(b"\r\n", 1)[1], answer  # EHLO is answered at once, Django ready or not
    assert "SMTP receiver listening on 127.0.0.1:" in output


@pytest.mark.django_db(transaction=True)
def test_only_the_database_steps_wait_for_django_to_be_ready():
    InboundAddressFactory(address="care@clinic.example")
    ready: concurrent.futures.Future = concurrent.futures.Future()
    controller = smtp_receiver.build_controller(host="127.0.0.1", port=free_port(), django_ready=ready)
    controller.start()
    try:
        with smtplib.SMTP(controller.hostname, controller.port, timeout=30) as client:
            assert client.ehlo()[0] == 250
            assert client.mail("maria@mail.example")[0] == 250
            answered = []
            rcpt = threading.Thread(target=lambda: answered.append(client.rcpt("care@clinic.example")[0]))
            rcpt.start()
            rcpt.join(0.5)
            assert answered == []  # held back until Django is set up
            ready.set_result(None)
            rcpt.join(30)
            assert answered == [250]
    finally:
        controller.stop()
        connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_a_failed_django_setup_answers_451_not_a_hang():
    ready: concurrent.futures.Future = concurrent.futures.Future()
    ready.set_exception(RuntimeError("settings are broken"))
    controller = smtp_receiver.build_controller(host="127.0.0.1", port=free_port(), django_ready=ready)
    controller.start()
    try:
        with smtplib.SMTP(controller.hostname, controller.port, timeout=30) as client:
            client.ehlo()
            client.mail("maria@mail.example")
            assert client.rcpt("care@clinic.example")[0] == 451
    finally:
        controller.stop()
        connections.close_all()
