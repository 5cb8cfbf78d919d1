"""Browser tests: Playwright driving Debian's Chromium (never a downloaded browser) against the live server.

Every page fails its test on a console error or an uncaught page error.
"""

import os
from pathlib import Path

import pytest

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


@pytest.fixture
def sign_in(page, live_server):
    def do(username: str, password: str = "correct-horse-battery"):
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{live_server.url}/")

    return do


@pytest.fixture
def second_page(browser, browser_context_args, live_server):
    """Another signed-in browser (its own cookies), failing the test on console errors like ``page`` does."""
    context = browser.new_context(**browser_context_args)
    other = context.new_page()
    problems: list[str] = []
    other.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    other.on("pageerror", lambda exc: problems.append(str(exc)))
    other.set_default_timeout(10_000)

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
