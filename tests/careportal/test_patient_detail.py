"""The patient profile page."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from inbox.models import AuditEvent, Communication
from tests.factories import (
    CareTeamMemberFactory,
    CommunicationFactory,
    ContactFactory,
    DocumentFactory,
    EncounterFactory,
    PatientContactMethodFactory,
    PatientFactory,
    UserFactory,
)

DETAIL_MAX_QUERIES = 18


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def detail_url(patient):
    return reverse("careportal:patient_detail", args=[patient.pk])


def test_it_shows_the_whole_profile(client, nurse, patient):
    patient.gender_identity = "Woman"
    patient.address_line1 = "12 Elm Street"
    patient.save()
    PatientContactMethodFactory(patient=patient, kind="phone", value="+15550102030")
    PatientContactMethodFactory(patient=patient, value="maria.lopez@mail.example")
    ContactFactory(
        patient=patient, first_name="Rosa", last_name="Lopez", relationship="mother", phone="+15550104444"
    )
    DocumentFactory(patient=patient, name="discharge-summary.pdf")
    encounter = EncounterFactory(patient=patient, title="Annual physical")
    communication = CommunicationFactory(patient=patient, subject="Refill request")
    client.force_login(nurse)
    response = client.get(detail_url(patient))
    assert response.status_code == 200
    body = response.content.decode()
    for text in (
        "Maria Lopez",
        patient.mrn,
        "Woman",
        "12 Elm Street",
        "Rosa Lopez",
        "Mother",
        "discharge-summary.pdf",
        "Annual physical",
        "Refill request",
        "Nora Nurse",
    ):
        assert text in body, text
    assert 'href="tel:+15550102030"' in body
    assert 'href="tel:+15550104444"' in body
    assert 'data-copy="maria.lopez@mail.example"' in body
    assert reverse("careportal:encounter_detail", args=[patient.pk, encounter.pk]) in body
    assert reverse("careportal:patient_communications", args=[patient.pk]) in body
    # The nurse has the Care Team inbox, so a communication opens there.
    assert (
        f"{reverse('careportal:inbox_folder', args=['care-team', 'directed'])}?c={communication.pk}" in body
    )


def test_viewing_the_profile_is_audited(client, nurse, patient):
    client.force_login(nurse)
    client.get(detail_url(patient), REMOTE_ADDR="10.0.0.7")
    event = AuditEvent.objects.get(action=AuditEvent.Action.PATIENT_VIEWED)
    assert event.actor == nurse
    assert event.patient == patient
    assert event.ip == "10.0.0.7"
    assert event.detail == {"view": "profile"}


def test_the_edit_button_shows_only_for_the_edit_policy(client, nurse, lead, patient):
    edit_url = reverse("careportal:patient_edit", args=[patient.pk])
    client.force_login(nurse)
    assert edit_url not in client.get(detail_url(patient)).content.decode()
    client.force_login(lead)
    assert edit_url in client.get(detail_url(patient)).content.decode()


def test_it_is_404_without_patient_data_for_a_nurse_off_the_care_team(client, other_nurse, patient):
    client.force_login(other_nurse)
    response = client.get(detail_url(patient))
    assert response.status_code == 404
    assert patient.last_name.encode() not in response.content
    assert patient.mrn.encode() not in response.content
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PATIENT_VIEWED).exists()


def test_it_is_404_when_the_role_menu_lacks_patients(client, outsider, patient):
    CareTeamMemberFactory(patient=patient, user=outsider)
    client.force_login(outsider)
    response = client.get(detail_url(patient))
    assert response.status_code == 404
    assert patient.last_name.encode() not in response.content


def test_it_redirects_anonymous_users_to_sign_in(client, patient):
    response = client.get(detail_url(patient))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_rejects_post(client, nurse, patient):
    client.force_login(nurse)
    assert client.post(detail_url(patient)).status_code == 405


def add_record(patient, n: int) -> None:
    """``n`` of everything the profile lists (upcoming encounters stay under the profile's limit of ten, so the
    past ones are read in both cases)."""
    now = timezone.now()
    staff = [UserFactory() for _ in range(n)]
    for i, someone in enumerate(staff):
        EncounterFactory(patient=patient, starts_at=now + dt.timedelta(days=i + 1), provider=someone)
        EncounterFactory(patient=patient, starts_at=now - dt.timedelta(days=i + 1), provider=someone)
        PatientContactMethodFactory(patient=patient, kind="phone", value=f"+1555030{i:04d}")
        ContactFactory(patient=patient)
        DocumentFactory(patient=patient, uploaded_by=someone)
        CommunicationFactory(patient=patient, assignee=someone, status=Communication.Status.CLOSED)
        CareTeamMemberFactory(patient=patient, user=someone)


def test_query_count_is_constant_whatever_the_size_of_the_record(
    client, lead, patient, django_assert_max_num_queries, warm_caches
):
    other = PatientFactory()
    add_record(patient, 1)
    add_record(other, 9)
    DocumentFactory.create_batch(25, patient=other)
    client.force_login(lead)
    warm_caches()
    with CaptureQueriesContext(connection) as small:
        assert client.get(detail_url(patient)).status_code == 200
    with django_assert_max_num_queries(DETAIL_MAX_QUERIES), CaptureQueriesContext(connection) as large:
        assert client.get(detail_url(other)).status_code == 200
    assert len(large.captured_queries) == len(small.captured_queries)
