"""A NUL character in a query-string or form parameter is refused with a clear 400 before any view runs (PostgreSQL
text cannot hold one: a search for ``%00`` used to answer 500); provider webhooks are left to keep what they get."""

import pytest
from django.urls import reverse

from inbox.models import Message
from tests.factories import CommunicationFactory, MessageFactory

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def communication(nurse, patient):
    communication = CommunicationFactory(patient=patient, assignee=nurse)
    MessageFactory(communication=communication, body_text="Can I take it with food?")
    return communication


def searching_urls(communication):
    folder = {"inbox": "my", "folder": "assigned"}
    return [
        reverse("careportal:inbox_folder", kwargs=folder),
        reverse("careportal:inbox_rows", kwargs=folder),
        reverse("careportal:inbox_counts", kwargs=folder),
        reverse("careportal:patients"),
        reverse("careportal:communication_link", args=[communication.pk]),
        reverse("careportal:mention_options", args=[communication.pk]),
        reverse("careportal:communication_new"),
    ]


@pytest.mark.parametrize("query", ["q=%00", "q=Maria%00Lopez", "%00=1", "status=open%00"])
def test_a_nul_in_the_query_string_is_a_clear_400_on_every_page_that_searches(
    client, nurse, communication, query
):
    client.force_login(nurse)
    for url in searching_urls(communication):
        for headers in ({}, HX):
            response = client.get(f"{url}?{query}", **headers)
            assert response.status_code == 400, url
            assert "cannot contain NUL" in response.content.decode(), url


def test_the_same_pages_answer_a_search_without_nul(client, nurse, communication):
    client.force_login(nurse)
    for url in searching_urls(communication):
        assert client.get(f"{url}?q=Maria", **HX).status_code == 200, url


def test_a_nul_in_a_form_is_refused_and_nothing_is_sent(client, nurse, communication):
    client.force_login(nurse)
    response = client.post(
        reverse("careportal:communication_reply", args=[communication.pk]),
        {"body": "Yes\x00 with food"},
        **HX,
    )
    assert response.status_code == 400
    assert "cannot contain NUL" in response.content.decode()
    assert not Message.objects.filter(
        communication=communication, direction=Message.Direction.OUTBOUND
    ).exists()


def test_the_api_refuses_a_nul_as_problem_details(client):
    response = client.get("/api/v1/folders/my/assigned/communications/?q=%00")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["detail"].startswith("Text cannot contain NUL")


def test_provider_webhooks_are_left_to_keep_what_they_receive(client):
    """Not refused here: the webhook answers for itself (here: no valid signature), and ingestion keeps the item."""
    response = client.post(reverse("hooks:twilio_sms"), {"Body": "hi\x00", "From": "+15550102030"})
    assert "cannot contain NUL" not in response.content.decode()
    assert response.status_code in (403, 503)  # no valid signature (or no secret configured)
