"""Search all inboxes in a browser: a term only in Unrecognized, searched from Directed, says "No match" and offers
"Search all inboxes"; that shows the result with its folder, as a URL that reloads the same."""

import re

import pytest
from playwright.sync_api import expect

from tests.factories import MessageFactory, UnrecognizedCommunicationFactory

pytestmark = pytest.mark.django_db(transaction=True)
PHARMACY = "refills@corner-pharmacy.example"


def test_a_term_only_in_unrecognized_is_found_from_directed(page, sign_in, live_server, nurse, patient):
    unknown = UnrecognizedCommunicationFactory(counterpart=PHARMACY, last_message_preview="Refill is ready")
    unknown.candidate_patients.add(patient)
    MessageFactory(communication=unknown, body_text="Refill is ready", sender_address=PHARMACY)
    sign_in("nurse")
    page.goto(f"{live_server.url}/inbox/care-team/directed/")
    search = page.get_by_role("searchbox", name="Search communications")
    expect(page.get_by_test_id("search-all")).to_be_hidden()  # nothing typed yet
    search.fill(PHARMACY)
    expect(page.get_by_role("heading", name="No communications match")).to_be_visible()
    expect(page.get_by_test_id("search-all")).to_be_visible()  # beside the typed term

    page.get_by_test_id("search-all-empty").click()
    rows = page.get_by_role("list", name="Communications in all your inboxes")
    row = rows.locator(f"#row-{unknown.pk}")
    expect(row).to_contain_text(PHARMACY)
    expect(row.get_by_test_id("row-folders")).to_have_text("Care Team · Unrecognized")
    expect(page).to_have_url(re.compile(r"/inbox/care-team/directed/\?q=.*&all=1$"))

    page.reload()  # a deep link
    expect(page.locator(f"#row-{unknown.pk}").get_by_test_id("row-folders")).to_have_text(
        "Care Team · Unrecognized"
    )
    page.locator(f"#row-{unknown.pk} .row-link").click()
    expect(page.locator("#messages")).to_contain_text("Refill is ready")
    expect(page).to_have_url(re.compile(rf"all=1&c={unknown.pk}$"))

    page.get_by_test_id("search-folder-only").click()
    expect(page.get_by_role("heading", name="No communications match")).to_be_visible()
