"""Refreshing the list after another action keeps the URL that action pushed; a filter change pushes its own."""

from django.urls import reverse

from tests.factories import CommunicationFactory


def test_a_filter_change_pushes_the_canonical_url(client, nurse, patient):
    CommunicationFactory(patient=patient, assignee=nurse)
    client.force_login(nurse)
    url = reverse("careportal:inbox_rows", args=["my", "assigned"])
    response = client.get(url, {"status": "open"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response["HX-Push-Url"].startswith(reverse("careportal:inbox_folder", args=["my", "assigned"]))


def test_a_refresh_after_another_action_does_not_touch_the_address_bar(client, nurse, patient):
    communication = CommunicationFactory(patient=patient, assignee=nurse)
    client.force_login(nurse)
    url = reverse("careportal:inbox_rows", args=["my", "assigned"])
    response = client.get(url, {"refresh": "1"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "HX-Push-Url" not in response
    assert [c.pk for c in response.context["rows"]] == [communication.pk]
