"""The "Search all inboxes" action on the Inbox page: offered where a folder has no match, a deep link (``?q=…&all=1``) that
works as a full page and as an HTMX partial, rows tagged with their folders; the access rule holds."""

import pytest
from django.urls import reverse

from inbox.folders import Folder
from tests.factories import CommunicationFactory, PatientFactory, UnrecognizedCommunicationFactory

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}
PHARMACY = "refills@corner-pharmacy.example"


@pytest.fixture
def unknown(patient):
    communication = UnrecognizedCommunicationFactory(
        counterpart=PHARMACY, last_message_preview="Refill is ready"
    )
    communication.candidate_patients.add(patient)
    return communication


def _folder(folder: Folder, **params) -> str:
    return reverse("careportal:inbox_folder", args=[folder.inbox, folder.slug])


def test_no_match_in_a_folder_offers_search_all_inboxes(client, nurse, unknown):
    client.force_login(nurse)
    html = client.get(_folder(Folder.CARE_TEAM_DIRECTED), {"q": PHARMACY}).content.decode()
    assert "Nothing in Directed matches" in html
    assert f"/inbox/care-team/directed/?q={PHARMACY.replace('@', '%40')}&amp;all=1" in html
    assert 'data-testid="search-all-empty"' in html and 'data-testid="search-all"' in html


def test_the_deep_link_is_a_full_page_with_rows_tagged_by_folder(client, nurse, unknown):
    client.force_login(nurse)
    response = client.get(_folder(Folder.CARE_TEAM_DIRECTED), {"q": PHARMACY, "all": "1"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "<title>Search all inboxes" in html and "Search results" in html
    assert f'id="row-{unknown.pk}"' in html
    assert '<span class="tag tag-folder">Care Team · Unrecognized</span>' in html
    assert 'name="all" value="1"' in html  # typing again searches everywhere
    # A row opens its conversation in the same search (the link keeps all=1).
    assert f"all=1&amp;c={unknown.pk}" in html


def test_the_htmx_partial_answers_with_the_list_and_pushes_its_url(client, nurse, unknown):
    client.force_login(nurse)
    response = client.get(_folder(Folder.CARE_TEAM_DIRECTED), {"q": PHARMACY, "all": "1"}, **HX)
    assert response.status_code == 200
    assert response["HX-Push-Url"].endswith("&all=1")
    assert "Care Team · Unrecognized" in response.content.decode()
    rows = reverse("careportal:inbox_rows", args=["care-team", "directed"])
    more = client.get(rows, {"q": PHARMACY, "all": "1"}, **HX)
    assert more.status_code == 200 and f'id="row-{unknown.pk}"' in more.content.decode()


def test_the_search_never_shows_a_communication_outside_the_nurses_access(client, nurse, unknown):
    stranger = PatientFactory(first_name="Sam", last_name="Stranger")
    hidden = CommunicationFactory(patient=stranger, counterpart=PHARMACY)
    hidden_unknown = UnrecognizedCommunicationFactory(counterpart=PHARMACY)
    hidden_unknown.candidate_patients.add(stranger)
    client.force_login(nurse)
    html = client.get(_folder(Folder.ASSIGNED_TO_ME), {"q": PHARMACY, "all": "1"}).content.decode()
    assert f'id="row-{unknown.pk}"' in html
    assert f'id="row-{hidden.pk}"' not in html and f'id="row-{hidden_unknown.pk}"' not in html


def test_an_outsider_without_inbox_gets_404(client, outsider, unknown):
    client.force_login(outsider)
    response = client.get(_folder(Folder.ALL_UNRECOGNIZED), {"q": PHARMACY, "all": "1"})
    assert response.status_code == 404


def test_a_folder_the_user_does_not_have_is_404_even_searching_everywhere(client, nurse, unknown):
    client.force_login(nurse)
    response = client.get(_folder(Folder.ALL_UNRECOGNIZED), {"q": PHARMACY, "all": "1"})
    assert response.status_code == 404


def test_it_rejects_post(client, nurse):
    client.force_login(nurse)
    response = client.post(_folder(Folder.CARE_TEAM_DIRECTED) + "?all=1", {"q": PHARMACY}, **HX)
    assert response.status_code == 405
