"""The patient's communication center: every communication linked to the patient, newest first."""

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from designer.models import MenuItem
from inbox.models import AuditEvent, Channel, Communication
from tests.factories import (
    CareTeamMemberFactory,
    CommunicationFactory,
    ContactFactory,
    InboundAddressFactory,
    PatientFactory,
    RoleFactory,
    SendingLineFactory,
    UnrecognizedCommunicationFactory,
    UserFactory,
)

HTMX = {"HTTP_HX_REQUEST": "true"}
COMMUNICATIONS_MAX_QUERIES = 16


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def center_url(patient):
    return reverse("careportal:patient_communications", args=[patient.pk])


def row_ids(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'data-communication="(\d+)"', response.content.decode())]


def comm(patient, minutes_ago: int, **kwargs) -> Communication:
    return CommunicationFactory(
        patient=patient, last_message_at=timezone.now() - dt.timedelta(minutes=minutes_ago), **kwargs
    )


def test_it_lists_only_this_patients_communications_newest_first(client, nurse, patient):
    older = comm(patient, 60)
    newest = comm(patient, 1)
    middle = comm(patient, 30)
    comm(PatientFactory(), 2)
    UnrecognizedCommunicationFactory(counterpart="stranger@mail.example")
    client.force_login(nurse)
    response = client.get(center_url(patient))
    assert response.status_code == 200
    assert row_ids(response) == [newest.pk, middle.pk, older.pk]
    assert "3 communications · 3 open" in response.content.decode()


def test_each_row_shows_channel_line_subject_status_assignee_and_time(client, nurse, patient):
    line = SendingLineFactory(number="+15550100001", label="Care line")
    ContactFactory(patient=patient, first_name="Rosa", last_name="Lopez", relationship="mother")
    sms = comm(
        patient,
        5,
        channel=Channel.SMS,
        sending_line=line,
        subject="",
        last_message_preview="Running late",
        assignee=nurse,
    )
    email = comm(
        patient,
        10,
        inbound_address=InboundAddressFactory(address="care@clinic.example", label="Care team"),
        subject="Lab results",
        status=Communication.Status.CLOSED,
    )
    client.force_login(nurse)
    body = client.get(center_url(patient)).content.decode()
    sms_row = re.search(
        rf'<a class="cc-row[^"]*"[^>]*data-communication="{sms.pk}".*?</a>', body, re.S
    ).group(0)
    assert "SMS" in sms_row
    assert "Care line" in sms_row
    assert "Running late" in sms_row
    assert "Nora Nurse" in sms_row
    assert "status-open" in sms_row
    email_row = re.search(
        rf'<a class="cc-row[^"]*"[^>]*data-communication="{email.pk}".*?</a>', body, re.S
    ).group(0)
    assert email_row.startswith('<a class="cc-row is-closed"')
    assert "Lab results" in email_row
    assert "Care team" in email_row
    assert "Unassigned" in email_row
    assert "status-closed" in email_row


def test_rows_open_in_the_all_patients_inbox_for_a_lead(client, lead, patient):
    c = comm(patient, 1)
    client.force_login(lead)
    body = client.get(center_url(patient)).content.decode()
    assert f'href="{reverse("careportal:inbox_folder", args=["all-patients", "directed"])}?c={c.pk}"' in body


def test_rows_open_in_the_care_team_inbox_for_a_care_team_nurse(client, nurse, patient):
    c = comm(patient, 1)
    client.force_login(nurse)
    body = client.get(center_url(patient)).content.decode()
    assert f'href="{reverse("careportal:inbox_folder", args=["care-team", "directed"])}?c={c.pk}"' in body


def test_rows_open_in_my_inbox_for_a_role_with_neither_shared_inbox(client, published_config, patient):
    version, _ = published_config
    RoleFactory(version=version, key="coordinator", menu=[MenuItem.INBOX, MenuItem.PATIENTS])
    user = UserFactory(role="coordinator")
    CareTeamMemberFactory(patient=patient, user=user)
    c = comm(patient, 1, assignee=user)
    client.force_login(user)
    body = client.get(center_url(patient)).content.decode()
    assert f'href="{reverse("careportal:inbox_folder", args=["my", "assigned"])}?c={c.pk}"' in body


def test_rows_are_not_links_for_a_role_without_the_inbox(client, published_config, patient):
    version, _ = published_config
    RoleFactory(version=version, key="records", menu=[MenuItem.PATIENTS])
    user = UserFactory(role="records")
    CareTeamMemberFactory(patient=patient, user=user)
    comm(patient, 1)
    client.force_login(user)
    response = client.get(center_url(patient))
    assert response.status_code == 200
    assert len(row_ids(response)) == 1
    assert "?c=" not in response.content.decode()


def test_it_pages_by_keyset_and_htmx_appends_the_next_page(client, nurse, patient):
    communications = [comm(patient, minutes) for minutes in range(1, 31)]  # newest first
    client.force_login(nurse)
    first = client.get(center_url(patient))
    assert row_ids(first) == [c.pk for c in communications[:25]]
    cursor = first.context["next_cursor"]
    assert cursor
    assert "Show older" in first.content.decode()

    more = client.get(center_url(patient), {"after": cursor}, **HTMX)
    assert more.status_code == 200
    assert row_ids(more) == [c.pk for c in communications[25:]]
    assert "<html" not in more.content.decode()
    assert "Show older" not in more.content.decode()


def test_a_malformed_cursor_is_a_clear_400(client, nurse, patient):
    client.force_login(nurse)
    response = client.get(center_url(patient), {"after": "yesterday"})
    assert response.status_code == 400
    assert b"Malformed page cursor" in response.content


def test_an_empty_center_says_so(client, nurse, patient):
    client.force_login(nurse)
    assert "No communications yet" in client.get(center_url(patient)).content.decode()


def test_viewing_it_is_audited(client, nurse, patient):
    client.force_login(nurse)
    client.get(center_url(patient))
    event = AuditEvent.objects.get(action=AuditEvent.Action.PATIENT_VIEWED)
    assert (event.actor, event.patient, event.detail) == (nurse, patient, {"view": "communications"})


def test_it_is_404_without_patient_data_for_a_nurse_off_the_care_team(client, other_nurse, patient):
    comm(patient, 1, subject="Private matter")
    client.force_login(other_nurse)
    response = client.get(center_url(patient))
    assert response.status_code == 404
    body = response.content.decode()
    assert patient.last_name not in body
    assert patient.mrn not in body
    assert "Private matter" not in body


def test_it_is_404_when_the_role_menu_lacks_patients(client, outsider, patient):
    client.force_login(outsider)
    assert client.get(center_url(patient)).status_code == 404


def test_it_redirects_anonymous_users_to_sign_in(client, patient):
    response = client.get(center_url(patient))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_rejects_post(client, nurse, patient):
    client.force_login(nurse)
    assert client.post(center_url(patient)).status_code == 405


def test_query_count_is_constant_whatever_the_number_of_communications(
    client, lead, patient, django_assert_max_num_queries, warm_caches
):
    client.force_login(lead)
    warm_caches()
    url = center_url(patient)
    comm(patient, 1)
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    assignees = [UserFactory() for _ in range(3)]
    for minutes in range(2, 60):
        comm(
            patient,
            minutes,
            channel=Channel.SMS,
            sending_line=SendingLineFactory(),
            assignee=assignees[minutes % 3],
            contact=ContactFactory(patient=patient),
            inbound_address=InboundAddressFactory(),
        )
    with django_assert_max_num_queries(COMMUNICATIONS_MAX_QUERIES), CaptureQueriesContext(connection) as many:
        response = client.get(url)
    assert response.status_code == 200
    assert len(many.captured_queries) == len(few.captured_queries)
    with django_assert_max_num_queries(COMMUNICATIONS_MAX_QUERIES):
        assert client.get(url, {"after": response.context["next_cursor"]}, **HTMX).status_code == 200
