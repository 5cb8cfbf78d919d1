"""Browser tests: Playwright driving Debian's Chromium (never a downloaded browser) against the live server.

Every page fails its test on a console error or an uncaught page error.
"""

import asyncio
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
from asgiref.sync import ThreadSensitiveContext
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.db import connections
from playwright.sync_api import expect

# Playwright's sync API runs an event loop in this thread; Django's ORM calls from the test are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 720}, "locale": "en-US"}


@pytest.fixture
def page(page):
    """The pytest-playwright page, failing the test on any console error or uncaught exception."""
    problems: list[str] = []
    page.on(
        "console",
        lambda msg: problems.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None,
    )
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    page.set_default_timeout(10_000)
    yield page
    assert not problems, "Browser reported errors:\n" + "\n".join(problems)


@pytest.fixture
def screenshot(page):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


def sign_in_at(page, base_url: str, username: str, password: str = "correct-horse-battery") -> None:
    """Sign ``page`` in through the sign-in form of the server at ``base_url``."""
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/")


def watched_page(browser, problems: list[str], *, width=1280, height=800, allowed: str = "", **context_args):
    """A page on a context of its own (its own cookies) whose console errors and uncaught exceptions go to
    ``problems``, except console lines containing ``allowed`` (an answer a flow causes on purpose, e.g. the 409 that
    carries the collision warning). The test asserts ``problems`` is empty at its end."""
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US", **context_args)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.on(
        "console",
        lambda msg: (
            problems.append(msg.text)
            if msg.type == "error" and not (allowed and allowed in msg.text)
            else None
        ),
    )
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    return context, page


def type_until_shown(editor, indicator, timeout: int) -> None:
    """Type a key at a time, as a person does, until ``indicator`` shows on the other page: a page reports
    keystrokes at most every 3 s, so a burst right after the box was emptied may fall inside that pause."""
    for _attempt in range(4):
        editor.press_sequentially("Take one tablet with food. ", delay=60)
        try:
            expect(indicator).to_be_visible(timeout=timeout)
            return
        except AssertionError:
            continue
    expect(indicator).to_be_visible(timeout=timeout)


@contextmanager
def nurse_and_lead_viewing(browser, server_url: str, communication, **page_options):
    """The nurse (My Inbox) and the lead (All Patients) signed in on pages of their own, both with ``communication``
    (``sms_question``) open; yields (nurse_page, lead_page), then closes them and fails on any console error."""
    problems: list[str] = []
    contexts = []
    try:
        pages = []
        for username, folder in (("nurse", "my/assigned"), ("lead", "all-patients/directed")):
            context, page = watched_page(browser, problems, **page_options)
            contexts.append(context)
            sign_in_at(page, server_url, username)
            page.goto(f"{server_url}/inbox/{folder}/?c={communication.pk}")
            expect(page.locator("#messages")).to_contain_text("Can I take it with food?")
            pages.append(page)
        yield tuple(pages)
    finally:
        for context in contexts:
            context.close()
    assert not problems, "Browser reported errors:\n" + "\n".join(problems)


def sms_question(patient, assignee):
    """Maria's SMS question on the Main clinic line, assigned to ``assignee``: the conversation two viewers share."""
    from inbox.models import Channel
    from tests.factories import CommunicationFactory, MessageFactory, SendingLineFactory

    sms = CommunicationFactory(
        patient=patient, channel=Channel.SMS, assignee=assignee, counterpart="+15550102030",
        sending_line=SendingLineFactory(number="+15550100001", label="Main clinic"),
    )  # fmt: skip
    MessageFactory(communication=sms, body_text="Can I take it with food?", sender_name="Maria Lopez")
    return sms


@pytest.fixture
def sign_in(page, live_server):
    def do(username: str, password: str = "correct-horse-battery"):
        sign_in_at(page, live_server.url, username, password)

    return do


@pytest.fixture
def second_page(browser, browser_context_args, live_server):
    """Another signed-in browser (its own cookies), failing the test on console errors like ``page`` does."""
    problems: list[str] = []
    extra = {key: value for key, value in browser_context_args.items() if key not in ("viewport", "locale")}
    context, other = watched_page(browser, problems, height=720, **extra)

    def sign_in(username: str):
        other.goto(f"{live_server.url}/accounts/login/")
        other.get_by_label("Username").fill(username)
        other.get_by_label("Password").fill("correct-horse-battery")
        other.get_by_role("button", name="Sign in").click()
        other.wait_for_url(f"{live_server.url}/")
        return other

    yield sign_in
    context.close()
    assert not problems, "Second browser reported errors:\n" + "\n".join(problems)


# --- The ASGI application served in this process (pytest-django's live_server speaks WSGI, no WebSockets) -----


def own_threads(application):
    """Run each WebSocket connection's database work on threads of its own, ended with the connection (as Django
    does for each HTTP request). Consumers otherwise share asgiref's one process-wide thread, whose database
    connection would outlive this test and still point at its database file when later tests run."""

    async def app(scope, receive, send):
        async with ThreadSensitiveContext():
            await application(scope, receive, send)

    return app


@pytest.fixture(scope="session")
def asgi_server():
    """Daphne serving the project's ASGI application (plus static files) on a free local port, for the session:
    Twisted's reactor cannot be restarted, so it runs once, on a daemon thread, without signal handlers.

    WebSockets go through ``inbox_project.asgi.application`` exactly as deployed. HTTP gets a Django handler built
    here, under the tests' settings: a handler built earlier (``inbox_project.asgi`` imported at collection time)
    would carry middleware configured before the session's plain-HTTP overrides, and redirect to HTTPS.
    """
    from channels.routing import ProtocolTypeRouter
    from daphne.server import Server
    from django.core.handlers.asgi import ASGIHandler
    from twisted.internet import reactor

    from inbox_project.asgi import application

    server = Server(
        application=ProtocolTypeRouter(
            {"http": ASGIStaticFilesHandler(ASGIHandler()), "websocket": own_threads(application)}
        ),
        endpoints=["tcp:port=0:interface=127.0.0.1"],
        signal_handlers=False,
        verbosity=0,
    )
    thread = threading.Thread(target=server.run, name="daphne", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.listening_addresses:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("daphne did not start listening")
        time.sleep(0.05)
    host, port = server.listening_addresses[0]
    yield SimpleNamespace(url=f"http://{host}:{port}", loop=reactor._asyncioEventloop)
    reactor.callFromThread(reactor.stop)
    thread.join(timeout=10)


@pytest.fixture
def shared_sqlite(transactional_db, tmp_path_factory):
    """Point the ``default`` database of every thread at a file copy of the in-memory SQLite test database for this
    test, then put the in-memory one back (it is never closed meanwhile, so it survives)."""
    original = connections["default"]
    if original.vendor != "sqlite" or not original.is_in_memory_db():
        yield
        return
    path = tmp_path_factory.getbasetemp() / "live_chat.sqlite3"
    original.ensure_connection()
    with sqlite3.connect(path) as target:
        original.connection.backup(target)
    saved_settings = connections.settings["default"]
    shared = {**saved_settings, "NAME": str(path)}
    connections.settings["default"] = shared  # new threads (the server's) connect to the file
    connections["default"] = original.__class__(shared, "default")  # and so does this one
    try:
        yield
    finally:
        connections["default"].close()
        connections["default"] = original
        connections.settings["default"] = saved_settings


def on_server(server, coroutine):
    """Run a coroutine on the server's event loop (where the channel layer's consumers wait) and return its result."""
    return asyncio.run_coroutine_threadsafe(coroutine, server.loop).result(timeout=10)
