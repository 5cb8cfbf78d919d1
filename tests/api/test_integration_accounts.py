"""An integration account set up as the README says (a role with the Inbox menu item, Inbox API and Inbox Care Team;
a token from Admin Portal → Integrations) is not a person: it stays out of the human assignee list and the @mention
options (page and API), while its token keeps working (issue 14, item 14)."""

import pytest
from django.urls import reverse

from inbox.notifications import mentions_in
from inbox.selectors import assignee_candidates
from tests.factories import CommunicationFactory

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def communication(patient, nurse, api_user):
    """Maria's SMS, which the integration (on her care team) can see as well as the nurse and the lead."""
    return CommunicationFactory(patient=patient, channel="sms", counterpart="+15550102030", assignee=nurse)


def test_the_assignee_list_holds_the_people_not_the_integration(communication, nurse, lead, api_user):
    candidates = set(assignee_candidates(communication))
    assert candidates == {nurse, lead}
    assert api_user not in candidates


def test_the_assign_dialog_does_not_offer_the_integration(client, communication, nurse, lead, api_user):
    client.force_login(nurse)
    html = client.get(reverse("careportal:communication_assign", args=[communication.pk]), **HX)
    html = html.content.decode()
    assert "Nora Nurse (you)" in html and "Lena Lead" in html
    assert "EHR Sync" not in html


def test_the_mention_options_hold_the_people_not_the_integration(
    client, communication, nurse, lead, api_user
):
    client.force_login(nurse)
    url = reverse("careportal:mention_options", args=[communication.pk])
    html = client.get(url, {"q": ""}, **HX).content.decode()
    assert 'data-mention-username="nurse"' in html and 'data-mention-username="lead"' in html
    assert "ehr-sync" not in html
    assert "ehr-sync" not in client.get(url, {"q": "EHR"}, **HX).content.decode()
    assert mentions_in(communication, "@ehr-sync please look, @lead") == [lead]


def test_the_token_still_works_and_its_assignee_list_is_the_people(api, communication, nurse, lead, api_user):
    assert api.get("/api/v1/inboxes/").status_code == 200
    response = api.get(f"/api/v1/communications/{communication.pk}/assignees/")
    assert response.status_code == 200
    assert {row["id"] for row in response.json()} == {nurse.pk, lead.pk}
    response = api.post(
        f"/api/v1/communications/{communication.pk}/assign/", {"assignee": lead.pk}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["assignee"]["id"] == lead.pk
