"""Web processes for browser tests that need a real server of their own (the production command, or `make run`'s
daphne), on the test database; and browser tabs signed in on them.

The processes use the test database: on PostgreSQL pytest-django's ``test_…`` database, on SQLite the file that
``tests/conftest.py`` makes the test database (SQLite tests use a file, not memory, for this).
"""

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import Client

from tests.e2e.conftest import SCREENSHOTS
from tests.network import free_port

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REDIS = "redis://127.0.0.1:6379/13"
OFFLINE_NOISE = ("WebSocket", "htmx:wsError", "[object Event]", "ERR_INTERNET_DISCONNECTED")


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


def daphne(port: int) -> list[str]:
    """`make run`'s server command."""
    return [
        sys.executable,
        "-m",
        "daphne",
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        "inbox_project.asgi:application",
    ]


def server_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """This process's environment for a web process on the test database, the in-memory channel layer and eager
    Celery unless ``overrides`` say otherwise (``REDIS_URL=None`` drops a key)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DEBUG": "1",
        "CELERY_TASK_ALWAYS_EAGER": "1",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "VAR_DIR": str(tmp_path / "var"),
        "SMS_BACKEND": "inbox.delivery.ConsoleSmsBackend",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("REDIS_URL", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set for Playwright in this process; servers run as deployed
    env.update(overrides)
    return {key: value for key, value in env.items() if value is not None}


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_server(
    request, tmp_path: Path, name: str, launch: Callable[[int], tuple[list[str], dict]]
) -> tuple[str, Path]:
    """Start a web process on a free port — ``launch(port)`` gives its command and environment — stopped when the
    test ends; its URL (once /healthz answers) and its log. A port taken meanwhile (the process exits at start) is retried."""
    for attempt in range(3):
        port, log = free_port(), tmp_path / f"{name}-{attempt}.log"
        command, env = launch(port)
        with log.open("wb") as output:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
        request.addfinalizer(lambda process=process: stop(process))
        url = f"http://127.0.0.1:{port}"
        if wait_until_ready(process, url, log):
            return url, log
    pytest.fail(f"{name} exited at start:\n{log.read_text()[-3000:]}")


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
