"""Reads through the API: the page's selectors (same folders, counts, filters and search), audited views and
downloads, cursor pagination, ETag / If-None-Match, throttling per token."""

import datetime as dt

import pytest
from django.utils import timezone

from inbox.folders import Folder
from inbox.models import AuditEvent
from inbox.selectors import FolderFilters, folder_counts, folder_page
from tests.api.conftest import bearer_client
from tests.factories import (
    AttachmentFactory,
    CareTeamMemberFactory,
    CommunicationFactory,
    MessageFactory,
    MessageTemplateFactory,
    PatientFactory,
    SendingLineFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def many(patient, api_user):
    """Five communications of the patient, one a minute apart, newest last; two closed, three SMS."""
    now = timezone.now()
    rows = []
    for index in range(5):
        rows.append(
            CommunicationFactory(
                patient=patient,
                assignee=api_user,
                channel="sms" if index % 2 == 0 else "email",
                status="closed" if index in (1, 3) else "open",
                last_message_at=now - dt.timedelta(minutes=5 - index),
                subject=f"Subject {index}",
            )
        )
    MessageFactory(communication=rows[2], body_text="the zebra crossing on Elm street")
    return rows


def ids(response):
    return [row["id"] for row in response.json()["results"]]


def test_inbox_counts_are_the_pages_counts(api, api_user, many):
    body = api.get("/api/v1/inboxes/?status=open").json()
    counts = {f["folder"]: f["count"] for inbox in body for f in inbox["folders"]}
    expected = folder_counts(user=api_user, filters=FolderFilters(statuses=frozenset({"open"})))
    assert counts == {folder.value: n for folder, n in expected.items()}
    assert counts["my/assigned"] == 3
    assert [inbox["inbox"] for inbox in body] == ["my", "care-team"]  # no All Patients without Full Patient


def test_a_folder_lists_what_the_selector_lists_newest_first(api, api_user, many):
    response = api.get("/api/v1/folders/care-team/directed/communications/")
    assert response.status_code == 200
    expected = folder_page(user=api_user, folder=Folder.CARE_TEAM_DIRECTED).rows
    assert ids(response) == [c.pk for c in expected] == [c.pk for c in reversed(many)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=closed", [3, 1]),
        ("channel=sms", [4, 2, 0]),
        ("channel=sms&status=open", [4, 2, 0]),
        ("status=open&status=closed&channel=email", [3, 1]),
        ("q=zebra", [2]),
        ("q=Subject 3", [3]),
    ],
)
def test_folder_filters_and_search(api, many, query, expected):
    response = api.get(f"/api/v1/folders/my/assigned/communications/?{query}")
    assert response.status_code == 200, response.content
    assert ids(response) == [many[i].pk for i in expected]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=", []),
        ("channel=", []),
        ("status=&channel=sms", []),
        ("status=&status=closed", [3, 1]),  # as the Inbox page's filter form sends one chip on
        ("channel=&channel=email", [3, 1]),
    ],
)
def test_an_empty_value_alone_chooses_none_as_on_the_page(api, many, query, expected):
    """Issue 14, item 5: left out, a filter means all (documented); given only as an empty value it means none
    chosen — no rows, counts 0 — in the API and on the Inbox page alike."""
    for folder in ("my/assigned", "care-team/directed"):
        response = api.get(f"/api/v1/folders/{folder}/communications/?{query}")
        assert response.status_code == 200, response.content
        assert ids(response) == [many[i].pk for i in expected], folder
    counts = {
        f["folder"]: f["count"]
        for inbox in api.get(f"/api/v1/inboxes/?{query}").json()
        for f in inbox["folders"]
    }
    assert counts["my/assigned"] == len(expected)
    if not expected:
        assert set(counts.values()) == {0}


def test_unassigned_only_in_a_shared_folder(api, many, patient):
    free = CommunicationFactory(patient=patient, assignee=None)
    response = api.get("/api/v1/folders/care-team/directed/communications/?unassigned=true")
    assert ids(response) == [free.pk]


def test_cursor_pagination_walks_the_whole_folder_once(api, many):
    seen, url = [], "/api/v1/folders/my/assigned/communications/?page_size=2"
    pages = 0
    while url:
        body = api.get(url).json()
        seen += [row["id"] for row in body["results"]]
        url, pages = body["next"], pages + 1
    assert pages == 3
    assert seen == [c.pk for c in reversed(many)]


def test_pagination_keeps_the_filters(api, many):
    first = api.get("/api/v1/folders/my/assigned/communications/?page_size=1&channel=sms").json()
    assert "channel=sms" in first["next"]
    second = api.get(first["next"]).json()
    assert [r["id"] for r in first["results"] + second["results"]] == [many[4].pk, many[2].pk]


@pytest.mark.parametrize(
    "query",
    ["cursor=garbage", "cursor=1e400_5", "page_size=0", "page_size=101", "status=maybe", "channel=fax",
     "unassigned=perhaps", "q=" + "x" * 201],
)  # fmt: skip
def test_bad_list_parameters_are_400_problems(api, many, query):
    response = api.get(f"/api/v1/folders/my/assigned/communications/?{query}")
    assert response.status_code == 400, query
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"]


def test_a_bad_filter_value_is_said_in_plain_words(api):
    problem = api.get("/api/v1/folders/my/assigned/communications/?status=open&status=maybe").json()
    assert problem["detail"] == '"maybe" is not a valid choice.'
    assert problem["errors"] == {"status": ['"maybe" is not a valid choice.']}
    assert "ErrorDetail" not in str(problem)


def test_a_folder_the_role_does_not_offer_is_404(api):
    assert api.get("/api/v1/folders/all-patients/directed/communications/").status_code == 404
    assert api.get("/api/v1/folders/my/nowhere/communications/").status_code == 404


def test_reading_a_communication_is_audited_like_the_page(api, api_user, many):
    api.get(f"/api/v1/communications/{many[0].pk}/", HTTP_USER_AGENT="ehr-sync/2.1")
    event = AuditEvent.objects.get(action=AuditEvent.Action.COMMUNICATION_VIEWED)
    assert (event.actor_id, event.communication_id, event.patient_id) == (
        api_user.pk,
        many[0].pk,
        many[0].patient_id,
    )
    assert event.ip == "127.0.0.1" and event.user_agent == "ehr-sync/2.1"


def test_lists_are_not_audited_as_views(api, many):
    api.get("/api/v1/folders/my/assigned/communications/")
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.COMMUNICATION_VIEWED).exists()


def test_attachment_download_is_access_checked_audited_and_never_inline(api, api_user, outsider_api, patient):
    communication = CommunicationFactory(patient=patient)
    attachment = AttachmentFactory(message=MessageFactory(communication=communication))
    url = api.get(f"/api/v1/communications/{communication.pk}/").json()["messages"][0]["attachments"][0][
        "download_url"
    ]
    response = api.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"%PDF-1.4 synthetic"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    event = AuditEvent.objects.get(action=AuditEvent.Action.ATTACHMENT_DOWNLOADED)
    assert (event.actor_id, event.object_id) == (api_user.pk, str(attachment.pk))
    assert outsider_api.get(url).status_code == 404
    other = CommunicationFactory(patient=patient)
    assert api.get(f"/api/v1/communications/{other.pk}/attachments/{attachment.pk}/").status_code == 404


def test_patients_are_only_those_the_caller_may_see(api, api_user, patient):
    second = PatientFactory(first_name="Ann", last_name="Able")
    CareTeamMemberFactory(patient=second, user=api_user)
    PatientFactory(first_name="Hidden", last_name="Person")
    body = api.get("/api/v1/patients/").json()
    assert [p["id"] for p in body["results"]] == [second.pk, patient.pk]  # by last name
    assert "Hidden" not in str(body)
    assert [p["id"] for p in api.get("/api/v1/patients/?q=Hidden").json()["results"]] == []
    assert [p["id"] for p in api.get("/api/v1/patients/?q=Lopez").json()["results"]] == [patient.pk]


def test_patients_are_cursor_paginated(api, api_user, patient):
    for name in ("Ames", "Baker", "Cole"):
        CareTeamMemberFactory(patient=PatientFactory(last_name=name), user=api_user)
    first = api.get("/api/v1/patients/?page_size=3").json()
    second = api.get(first["next"]).json()
    assert [p["last_name"] for p in first["results"] + second["results"]] == [
        "Ames",
        "Baker",
        "Cole",
        "Lopez",
    ]
    assert second["next"] is None
    assert api.get("/api/v1/patients/?cursor=bz1hYmM%3D").status_code == 400  # base64 of "o=abc"


def test_sending_lines_and_templates(api, published_config):
    version, _ = published_config
    line = SendingLineFactory(label="Main line")
    SendingLineFactory(label="Old line", is_active=False)
    MessageTemplateFactory(version=version, channel="sms", name="Reminder")
    MessageTemplateFactory(version=version, channel="email", name="Results")
    assert [row["id"] for row in api.get("/api/v1/sending-lines/").json()] == [line.pk]
    assert [t["name"] for t in api.get("/api/v1/templates/?channel=sms").json()] == ["Reminder"]
    assert [t["name"] for t in api.get("/api/v1/templates/").json()] == ["Reminder", "Results"]
    assert api.get("/api/v1/templates/?channel=fax").status_code == 400


# --- ETag -------------------------------------------------------------------------------------------------


def test_etag_answers_304_until_something_changes(api, many):
    url = f"/api/v1/communications/{many[0].pk}/"
    first = api.get(url)
    etag = first["ETag"]
    assert etag.startswith('"') and first["Cache-Control"] == "private, no-cache"
    again = api.get(url, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b"" and again["ETag"] == etag
    api.post(f"{url}status/", {"status": "closed"}, format="json")
    changed = api.get(url, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag


def test_etag_on_lists(api, many):
    url = "/api/v1/folders/my/assigned/communications/"
    etag = api.get(url)["ETag"]
    assert api.get(url, HTTP_IF_NONE_MATCH=f'"other", {etag}').status_code == 304
    assert api.get(url, HTTP_IF_NONE_MATCH='"other"').status_code == 200


# --- Throttling -------------------------------------------------------------------------------------------


def test_throttling_is_per_token_and_answers_a_429_problem(api_user, settings, many):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"api-read": "3/minute", "api-write": "1/minute"},
    }
    first, second = bearer_client(api_user, "one"), bearer_client(api_user, "two")
    for _ in range(3):
        assert first.get("/api/v1/inboxes/").status_code == 200
    throttled = first.get("/api/v1/inboxes/")
    assert throttled.status_code == 429
    assert throttled["Content-Type"] == "application/problem+json"
    assert int(throttled["Retry-After"]) > 0
    assert throttled.json()["title"] == "Too many requests."
    assert second.get("/api/v1/inboxes/").status_code == 200  # another token has its own budget
    url = f"/api/v1/communications/{many[0].pk}/status/"
    assert first.post(url, {"status": "closed"}, format="json").status_code == 200  # writes: their own rate
    assert first.post(url, {"status": "open"}, format="json").status_code == 429
    many[0].refresh_from_db()
    assert many[0].status == "closed"
