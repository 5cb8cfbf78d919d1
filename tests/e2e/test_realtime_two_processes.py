"""Real time across two web processes: two production web servers (gunicorn + uvicorn workers) share the test database and the Redis channel layer;
nurse A works in a browser on process 1, nurse B watches the same conversation in a browser on process 2.

Assignment, status change, typing and a send in A appear in B without reload. Then B's network is cut
(``context.set_offline``): B notices the silent socket, shows "Reconnecting…"; A changes things meanwhile; when
B's network is back, B reconnects and re-fetches what it shows — and shows everything that happened, its own draft
untouched.

The processes use the test database: on PostgreSQL pytest-django's ``test_…`` database, on SQLite the file that
``tests/conftest.py`` makes the test database (SQLite tests use a file, not memory, for this). Redis is
``REDIS_URL`` or redis://127.0.0.1:6379/13. With ``REDIS_URL`` set, an unreachable Redis fails the test; without it,
the test is skipped only when no local Redis answers.
"""

import datetime as dt
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import Client
from django.utils import timezone
from playwright.sync_api import expect

from inbox.models import Channel, Communication, Message
from tests.benchmarks.services import procfile_web
from tests.e2e.conftest import SCREENSHOTS
from tests.factories import (
    CareTeamMemberFactory,
    CommunicationFactory,
    MessageFactory,
    SendingLineFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REDIS = "redis://127.0.0.1:6379/13"
IS_CLOSED = re.compile(r"\bis-closed\b")
OFFLINE_NOISE = ("WebSocket", "htmx:wsError", "[object Event]", "ERR_INTERNET_DISCONNECTED")
HEARTBEAT_SECONDS = 2  # the processes ask tabs for a heartbeat every 2 s, so a cut is noticed within ~4 s


def redis_url() -> str:
    configured = os.environ.get("REDIS_URL", "")
    url = configured or DEFAULT_REDIS
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        if configured:
            pytest.fail(
                f"REDIS_URL={configured} is set but Redis does not answer ({error}); the two-process test needs it"
            )
        pytest.skip(f"no Redis at {DEFAULT_REDIS} and REDIS_URL is unset ({error})")
    return url


def database_url() -> str:
    """The test database, as a URL the web processes can open."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        name = str(db["NAME"])
        if "memory" in name or not Path(name).exists():
            pytest.fail(f"the SQLite test database must be a file other processes can open, not {name!r}")
        return f"sqlite:///{name}"
    if db["ENGINE"] == "django.db.backends.postgresql":
        credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
        return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    pytest.fail(f"unsupported database engine {db['ENGINE']}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_ready(process: subprocess.Popen, url: str, log: Path, timeout: float = 40.0) -> bool:
    """True once /healthz answers; False if the process exits first (a port taken meanwhile: start another)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    pytest.fail(f"web process at {url} not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def web_processes(transactional_db, tmp_path, request):
    """Two web servers, each the production command (gunicorn, one uvicorn worker), on the Redis channel layer and
    the test database; their URLs."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url(),
        "DEBUG": "1",
        "CELERY_TASK_ALWAYS_EAGER": "1",
        "LIVE_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "VAR_DIR": str(tmp_path / "var"),
        "SMS_BACKEND": "inbox.delivery.ConsoleSmsBackend",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop(
        "DJANGO_ALLOW_ASYNC_UNSAFE", None
    )  # set for Playwright in this process; the servers run as deployed
    processes: list[subprocess.Popen] = []
    urls: list[str] = []

    def stop():
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    request.addfinalizer(stop)
    for number in (1, 2):
        for attempt in range(3):
            port, log = free_port(), tmp_path / f"web{number}-{attempt}.log"
            # The Procfile's production command, one worker process each.
            command = [sys.executable, "-m", *procfile_web()]
            server_env = {**env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "1"}
            with log.open("wb") as output:
                process = subprocess.Popen(
                    command, cwd=ROOT, env=server_env, stdout=output, stderr=subprocess.STDOUT
                )
            processes.append(process)
            url = f"http://127.0.0.1:{port}"
            if wait_until_ready(process, url, log):
                urls.append(url)
                break
        else:
            pytest.fail(f"web process {number} exited at start:\n{log.read_text()[-3000:]}")
    return urls


@pytest.fixture
def colleague(published_config, patient):
    user = UserFactory(username="colleague", first_name="Cara", last_name="Colleague", role="care-nurse")
    CareTeamMemberFactory(patient=patient, user=user)
    return user


@pytest.fixture
def sms(patient, nurse, colleague):
    line = SendingLineFactory(number="+15550100001", label="Main clinic")
    started = timezone.now() - dt.timedelta(minutes=40)
    communication = CommunicationFactory(
        patient=patient, channel=Channel.SMS, sending_line=line, counterpart="+15550102030",
        status=Communication.Status.OPEN, opened_at=started, last_message_at=started,
        last_message_preview="My ankle is still swollen, should I come in?", last_message_direction="in",
    )  # fmt: skip
    MessageFactory(
        communication=communication, body_text="My ankle is still swollen, should I come in?",
        sender_name="Maria Lopez", created_at=started,
    )  # fmt: skip
    return communication


class Tab:
    """One browser context (its own cookies and network) on one web process, with its console errors."""

    def __init__(self, browser, base_url: str, name: str):
        self.name = name
        self.base_url = base_url
        self.context = browser.new_context(
            base_url=base_url, viewport={"width": 1440, "height": 860}, locale="en-US"
        )
        self.page = self.context.new_page()
        self.page.set_default_timeout(10_000)
        self.errors: list[str] = []
        self.offline = False
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))

    def _console(self, message):
        if message.type != "error":
            return
        text = message.text
        # While its network is cut, the browser and htmx report the failed reconnection attempts (htmx logs the
        # socket's error event itself); nothing else may fail.
        if self.offline and any(sign in text for sign in OFFLINE_NOISE):
            return
        self.errors.append(text)

    def open_as(self, user, path: str) -> None:
        """Signed in as ``user`` through a session in the shared database (the test's fast password hasher is not
        one the web processes know, so the sign-in form is not used here)."""
        client = Client()
        client.force_login(user)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
        self.context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": self.base_url}]
        )
        self.page.goto(path)

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def test_changes_in_one_process_appear_in_the_other_and_survive_a_network_cut(
    browser, web_processes, nurse, colleague, sms
):
    path = f"/inbox/care-team/directed/?c={sms.pk}"
    a = Tab(browser, web_processes[0], "A")
    b = Tab(browser, web_processes[1], "B")
    try:
        a.open_as(nurse, path)
        b.open_as(colleague, path)
        row_b = b.page.locator(f"#row-{sms.pk}")
        presence_b = b.page.get_by_test_id("presence")
        # Both tabs are subscribed once each sees the other.
        expect(presence_b).to_contain_text("Nora Nurse is viewing")
        expect(a.page.get_by_test_id("presence")).to_contain_text("Cara Colleague is viewing")
        b.page.evaluate("window.__notReloaded = true")
        b.page.locator("#reply-box textarea").fill("Draft from Cara: keep it elevated")

        # Assignment in A.
        a.page.locator("#conversation-header [data-shortcut='assign']").click()
        a.page.get_by_test_id("assign-dialog").get_by_role("button", name="Cara Colleague").click()
        expect(b.page.get_by_test_id("assignee")).to_contain_text("Cara Colleague")
        expect(row_b.locator(".avatar")).to_have_attribute("title", "Assigned to Cara Colleague")

        # Status change in A.
        a.page.locator("#reply-status [data-status-value='closed']").click()
        expect(b.page.get_by_test_id("conversation-status")).to_have_text("Closed")
        expect(row_b).to_have_class(IS_CLOSED)
        expect(b.page.locator("#reply-status [data-status-value='closed']")).to_have_attribute(
            "aria-pressed", "true"
        )

        # Typing in A.
        a.page.locator("#reply-box textarea").press_sequentially("Please keep", delay=30)
        expect(presence_b).to_contain_text("Nora Nurse is typing")
        b.screenshot("realtime-typing-in-other-process")

        # A sends (and keeps the status as it is).
        a.page.locator("#reply-box textarea").fill("Please keep the ankle raised and come in tomorrow at 9.")
        a.page.locator("#reply-box .send-more").click()
        a.page.get_by_role("button", name="Send and keep Open").click()
        messages_b = b.page.locator("#messages")
        expect(messages_b).to_contain_text("come in tomorrow at 9")
        expect(row_b.locator(".row-snippet")).to_contain_text("come in tomorrow at 9")
        expect(presence_b).not_to_contain_text("typing", timeout=15_000)

        # B's network is cut: B notices and says so.
        b.offline = True
        b.context.set_offline(True)
        banner = b.page.get_by_test_id("live-status")
        expect(banner).to_be_visible(timeout=15_000)
        expect(banner).to_contain_text("Reconnecting")
        b.screenshot("realtime-reconnecting")

        # Meanwhile A reopens it and writes again.
        a.page.locator("#reply-status [data-status-value='open']").click()
        expect(a.page.get_by_test_id("conversation-status")).to_have_text("Open")
        a.page.locator("#reply-box textarea").fill("Also bring your X-ray from last week.")
        a.page.locator("#reply-box .send-more").click()
        a.page.get_by_role("button", name="Send and keep Open").click()
        expect(a.page.locator("#messages")).to_contain_text("bring your X-ray")
        expect(messages_b).not_to_contain_text("bring your X-ray")

        # B is back: it reconnects and shows everything, without reload, its draft kept.
        b.context.set_offline(False)
        expect(banner).to_be_hidden(timeout=20_000)
        b.offline = False
        expect(messages_b).to_contain_text("bring your X-ray")
        expect(b.page.get_by_test_id("conversation-status")).to_have_text("Open")
        expect(row_b).not_to_have_class(IS_CLOSED)
        expect(row_b.locator(".row-snippet")).to_contain_text("bring your X-ray")
        expect(b.page.locator("#reply-box textarea")).to_have_value("Draft from Cara: keep it elevated")
        assert b.page.evaluate("window.__notReloaded") is True
        assert Message.objects.filter(communication=sms, direction=Message.Direction.OUTBOUND).count() == 2

        # And it is live again.
        a.page.locator("#reply-status [data-status-value='closed']").click()
        expect(b.page.get_by_test_id("conversation-status")).to_have_text("Closed")
        assert a.errors == [] and b.errors == [], {"A": a.errors, "B": b.errors}
    finally:
        a.context.close()
        b.context.close()
