"""Encounter detail: type, title, times in the patient's and the viewer's zones, status, provider, location, notes."""

import datetime as dt

import pytest
from django.urls import reverse

from careportal.models import Encounter
from inbox.models import AuditEvent
from tests.factories import EncounterFactory, PatientFactory, UserFactory

ENCOUNTER_MAX_QUERIES = 13


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def encounter(patient):
    starts = dt.datetime(2031, 3, 4, 15, 0, tzinfo=dt.UTC)
    return EncounterFactory(
        patient=patient,
        encounter_type=Encounter.Type.TELEHEALTH,
        title="Diabetes check-in",
        starts_at=starts,
        ends_at=starts + dt.timedelta(minutes=45),
        status=Encounter.Status.SCHEDULED,
        provider=UserFactory(first_name="Dana", last_name="Doctor", title="MD"),
        location="Video visit",
        notes="Review glucose log.\nAdjust insulin if needed.",
    )


def encounter_url(encounter):
    return reverse("careportal:encounter_detail", args=[encounter.patient_id, encounter.pk])


def test_it_shows_the_encounter_in_the_patients_and_the_viewers_time_zones(client, nurse, encounter):
    # The patient lives in Chicago (CST in March 2031), the nurse reads in New York (EST).
    client.force_login(nurse)
    response = client.get(encounter_url(encounter))
    assert response.status_code == 200
    body = response.content.decode()
    for text in (
        "Diabetes check-in",
        "Telehealth",
        "Scheduled",
        "Dana Doctor, MD",
        "Video visit",
        "Review glucose log.",
        "45 min",
    ):
        assert text in body, text
    assert "Tuesday, March 4, 2031 · 9:00 AM – 9:45 AM CST" in body
    assert "Tuesday, March 4, 2031 · 10:00 AM – 10:45 AM EST" in body


def test_the_viewers_time_is_left_out_when_both_clocks_agree(client, nurse, encounter):
    nurse.time_zone = "America/Chicago"
    nurse.save()
    client.force_login(nurse)
    body = client.get(encounter_url(encounter)).content.decode()
    assert "9:00 AM – 9:45 AM CST" in body
    assert 'data-testid="encounter-viewer-time"' not in body


def test_viewing_it_is_audited(client, nurse, encounter):
    client.force_login(nurse)
    client.get(encounter_url(encounter))
    event = AuditEvent.objects.get(action=AuditEvent.Action.PATIENT_VIEWED)
    assert event.patient == encounter.patient
    assert (event.object_type, event.object_id) == ("careportal.encounter", str(encounter.pk))
    assert event.detail == {"view": "encounter"}


def test_another_patients_encounter_is_404_under_this_patient(client, nurse, patient):
    foreign = EncounterFactory(patient=PatientFactory(), title="Somebody else's visit")
    client.force_login(nurse)
    response = client.get(reverse("careportal:encounter_detail", args=[patient.pk, foreign.pk]))
    assert response.status_code == 404
    assert b"Somebody else" not in response.content


def test_it_is_404_without_patient_data_for_a_nurse_off_the_care_team(client, other_nurse, encounter):
    client.force_login(other_nurse)
    response = client.get(encounter_url(encounter))
    assert response.status_code == 404
    body = response.content.decode()
    assert encounter.patient.last_name not in body
    assert encounter.patient.mrn not in body
    assert "Diabetes" not in body


def test_it_is_404_when_the_role_menu_lacks_patients(client, outsider, encounter):
    client.force_login(outsider)
    assert client.get(encounter_url(encounter)).status_code == 404


def test_it_redirects_anonymous_users_to_sign_in(client, encounter):
    response = client.get(encounter_url(encounter))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_rejects_post(client, nurse, encounter):
    client.force_login(nurse)
    assert client.post(encounter_url(encounter)).status_code == 405


def test_query_count_is_bounded(client, lead, encounter, django_assert_max_num_queries):
    client.force_login(lead)
    with django_assert_max_num_queries(ENCOUNTER_MAX_QUERIES):
        assert client.get(encounter_url(encounter)).status_code == 200
