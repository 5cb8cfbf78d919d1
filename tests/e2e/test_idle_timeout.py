"""Browser test of the idle session timeout (``adminportal.idle`` + ``static/js/idle.js``): a minute before the end
the page warns with "Stay signed in", which keeps the session; after the limit the page goes to the sign-in page,
which says why. The live server runs in this process, so the tests move the server's clock."""

import pytest
from playwright.sync_api import expect

from adminportal import idle
from inbox.models import AuditEvent

START = 1_800_000_000.0


class Clock:
    def __init__(self):
        self.at = START

    def __call__(self) -> float:
        return self.at


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(idle, "_now", clock)
    return clock


def _seen_again(page):
    """What the browser does when the tab becomes visible again (after sleep or from the background)."""
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")


def test_the_page_warns_keeps_the_session_on_request_and_signs_out_at_the_limit(
    page, live_server, sign_in, screenshot, nurse, clock
):
    sign_in("nurse")
    page.goto(f"{live_server.url}/inbox/")
    warning = page.get_by_test_id("idle-warning")

    clock.at += 14 * 60 + 30  # 30 s left of the default 15 minutes
    _seen_again(page)
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("you will be signed out in")
    screenshot("idle-warning")

    # The page refreshing itself (as after a push) is not someone at the screen: the warning stays.
    page.evaluate("htmx.ajax('GET', '/notifications/', {target: '#bell-list', swap: 'outerHTML'})")
    _seen_again(page)
    expect(warning).to_contain_text("you will be signed out in")
    expect(warning).to_be_visible()

    warning.get_by_role("button", name="Stay signed in").click()
    expect(warning).to_be_hidden()
    assert page.url.startswith(f"{live_server.url}/inbox/")

    clock.at += 15 * 60 + 5
    _seen_again(page)
    page.wait_for_url(f"{live_server.url}/accounts/login/**")
    expect(page.get_by_test_id("sign-in-message")).to_contain_text(
        "You were signed out after 15 minutes without activity."
    )
    screenshot("idle-signed-out")
    assert (
        AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_OUT, detail__reason="idle_timeout").count()
        == 1
    )
