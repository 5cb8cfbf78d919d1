"""The patient panel partial shown beside a conversation in the Inbox."""

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from designer.models import MenuItem
from inbox.models import AuditEvent
from tests.factories import (
    CareTeamMemberFactory,
    EncounterFactory,
    PatientContactMethodFactory,
    PatientFactory,
    RoleFactory,
    UserFactory,
)

HTMX = {"HTTP_HX_REQUEST": "true"}
PANEL_MAX_QUERIES = 13


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def panel_url(patient):
    return reverse("careportal:patient_panel", args=[patient.pk])


def encounter_ids(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'data-encounter="(\d+)"', response.content.decode())]


@pytest.fixture
def described_patient(patient, nurse):
    """``patient`` with a birthday that makes the age certain, a phone, an opted-out phone and an email."""
    local_today = patient.local_now().date()
    patient.birth_date = dt.date(local_today.year - 40, 1, 1)
    patient.time_zone = "America/Chicago"
    patient.pronouns = "she/her"
    patient.preferred_language = "es"
    patient.save()
    PatientContactMethodFactory(
        patient=patient, kind="phone", value="+15550102030", label="mobile", is_primary=True
    )
    PatientContactMethodFactory(
        patient=patient, kind="phone", value="+15550109999", label="home", is_opted_out=True
    )
    PatientContactMethodFactory(patient=patient, kind="email", value="maria.lopez@mail.example")
    CareTeamMemberFactory(
        patient=patient, user=UserFactory(first_name="Dana", last_name="Doctor"), team_role="Provider"
    )
    return patient


def test_it_shows_name_age_demographics_and_language(client, nurse, described_patient):
    client.force_login(nurse)
    response = client.get(panel_url(described_patient), **HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Maria Lopez" in body
    assert '<span data-testid="patient-age">40 yrs</span>' in body
    assert described_patient.mrn in body
    assert "she/her" in body
    assert "Spanish" in body
    assert "<html" not in body  # a partial


def test_it_shows_the_patients_current_local_time_with_the_zone_abbreviation(
    client, nurse, described_patient
):
    client.force_login(nurse)
    response = client.get(panel_url(described_patient), **HTMX)
    local = response.context["local_time"]
    assert local.zone == "America/Chicago"
    assert local.abbreviation in {"CST", "CDT"}
    body = response.content.decode()
    assert f">{local.time_text}</time>" in body
    assert f">{local.abbreviation}</abbr>" in body
    # The nurse reads in New York time: Chicago is an hour behind her.
    assert "1 h behind you" in body


def test_phones_are_tel_links_and_an_opted_out_number_is_marked(client, nurse, described_patient):
    client.force_login(nurse)
    body = client.get(panel_url(described_patient), **HTMX).content.decode()
    assert 'href="tel:+15550102030"' in body
    assert "(555) 010-2030" in body
    opted_out = re.search(r'<li class="pp-contact is-opted-out".*?</li>', body, re.S).group(0)
    assert "+15550109999" in opted_out
    assert "Opted out of SMS" in opted_out
    assert body.count('data-testid="opted-out"') == 1


def test_email_has_a_copy_button(client, nurse, described_patient):
    client.force_login(nurse)
    body = client.get(panel_url(described_patient), **HTMX).content.decode()
    assert 'data-copy="maria.lopez@mail.example"' in body
    # Behaviour comes from static/js/patients.js and looks from patients.css: nothing inline.
    assert "<script" not in body
    assert "hx-on" not in body
    assert "style=" not in body


def test_the_primary_contact_is_marked_on_the_care_team(client, nurse, described_patient):
    client.force_login(nurse)
    body = client.get(panel_url(described_patient), **HTMX).content.decode()
    members = re.findall(r'<li class="pp-member[^"]*">.*?</li>', body, re.S)
    assert len(members) == 2
    primary = [m for m in members if 'data-testid="primary-contact"' in m]
    assert len(primary) == 1
    assert "Nora Nurse" in primary[0]
    assert "Dana Doctor" in body


def test_it_links_to_the_profile_and_to_edit_only_for_the_edit_policy(client, nurse, lead, described_patient):
    client.force_login(nurse)
    body = client.get(panel_url(described_patient), **HTMX).content.decode()
    assert reverse("careportal:patient_detail", args=[described_patient.pk]) in body
    assert reverse("careportal:patient_edit", args=[described_patient.pk]) not in body

    client.force_login(lead)
    body = client.get(panel_url(described_patient), **HTMX).content.decode()
    assert reverse("careportal:patient_edit", args=[described_patient.pk]) in body


def test_it_needs_the_inbox_menu_not_the_patients_menu(client, published_config, patient):
    version, _ = published_config
    RoleFactory(version=version, key="inbox-only", menu=[MenuItem.INBOX])
    user = UserFactory(role="inbox-only")
    CareTeamMemberFactory(patient=patient, user=user)
    client.force_login(user)
    response = client.get(panel_url(patient), **HTMX)
    assert response.status_code == 200
    # Without the Patients menu the profile pages do not exist for this user, so the panel does not link to them.
    assert reverse("careportal:patient_detail", args=[patient.pk]) not in response.content.decode()


def test_it_is_404_for_a_role_without_the_inbox_menu(client, published_config, patient):
    version, _ = published_config
    RoleFactory(version=version, key="patients-only", menu=[MenuItem.PATIENTS])
    user = UserFactory(role="patients-only")
    CareTeamMemberFactory(patient=patient, user=user)
    client.force_login(user)
    assert client.get(panel_url(patient), **HTMX).status_code == 404


def test_it_is_404_without_patient_data_for_a_nurse_off_the_care_team(client, other_nurse, described_patient):
    client.force_login(other_nurse)
    response = client.get(panel_url(described_patient), **HTMX)
    assert response.status_code == 404
    body = response.content.decode()
    assert "Lopez" not in body
    assert described_patient.mrn not in body
    assert "maria.lopez@mail.example" not in body


def test_it_is_404_for_an_unknown_patient(client, nurse):
    client.force_login(nurse)
    assert client.get(reverse("careportal:patient_panel", args=[999_999]), **HTMX).status_code == 404


def test_it_redirects_anonymous_users_to_sign_in(client, patient):
    response = client.get(panel_url(patient), **HTMX)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_rejects_post(client, nurse, patient):
    client.force_login(nurse)
    assert client.post(panel_url(patient), **HTMX).status_code == 405


def test_it_is_not_audited(client, nurse, described_patient):
    client.force_login(nurse)
    client.get(panel_url(described_patient), **HTMX)
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PATIENT_VIEWED).exists()


def test_without_htmx_it_renders_inside_a_full_page(client, nurse, described_patient):
    client.force_login(nurse)
    response = client.get(panel_url(described_patient))
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" in body
    assert 'data-testid="patient-panel"' in body


# The encounter selection rule: upcoming from now first (soonest first), then the most recent past ones to make five.


def test_a_patient_without_encounters_shows_an_empty_state(client, nurse, patient):
    client.force_login(nurse)
    response = client.get(panel_url(patient), **HTMX)
    assert encounter_ids(response) == []
    assert "No encounters on record." in response.content.decode()


def test_three_upcoming_and_four_past_show_the_upcoming_soonest_first_then_the_two_most_recent_past(
    client, nurse, patient
):
    now = timezone.now()
    upcoming = [EncounterFactory(patient=patient, starts_at=now + dt.timedelta(days=d)) for d in (9, 2, 5)]
    past = [EncounterFactory(patient=patient, starts_at=now - dt.timedelta(days=d)) for d in (30, 1, 60, 7)]
    client.force_login(nurse)
    response = client.get(panel_url(patient), **HTMX)
    expected = [upcoming[1], upcoming[2], upcoming[0], past[1], past[3]]
    assert encounter_ids(response) == [e.pk for e in expected]


def test_seven_upcoming_show_the_five_soonest(client, nurse, patient):
    now = timezone.now()
    upcoming = [
        EncounterFactory(patient=patient, starts_at=now + dt.timedelta(days=d)) for d in (7, 3, 1, 6, 2, 5, 4)
    ]
    EncounterFactory(patient=patient, starts_at=now - dt.timedelta(days=1))
    client.force_login(nurse)
    response = client.get(panel_url(patient), **HTMX)
    soonest = sorted(upcoming, key=lambda e: e.starts_at)[:5]
    assert encounter_ids(response) == [e.pk for e in soonest]


def test_each_encounter_links_to_its_detail_page(client, nurse, patient):
    encounter = EncounterFactory(patient=patient)
    client.force_login(nurse)
    body = client.get(panel_url(patient), **HTMX).content.decode()
    assert reverse("careportal:encounter_detail", args=[patient.pk, encounter.pk]) in body


def add_record(patient, n: int) -> None:
    """``n`` of everything the panel lists; encounters: ``n`` upcoming (at most 4, so the past ones are read too)
    and ``n`` past."""
    now = timezone.now()
    staff = [UserFactory() for _ in range(n)]
    for i, someone in enumerate(staff):
        EncounterFactory(patient=patient, starts_at=now - dt.timedelta(days=i + 1), provider=someone)
        if i < 4:
            EncounterFactory(patient=patient, starts_at=now + dt.timedelta(days=i + 1), provider=someone)
        PatientContactMethodFactory(patient=patient, kind="phone", value=f"+1555020{i:04d}")
        PatientContactMethodFactory(patient=patient)
        CareTeamMemberFactory(patient=patient, user=someone)


def test_query_count_is_constant_whatever_the_number_of_encounters_contacts_and_team_members(
    client, lead, patient, django_assert_max_num_queries, warm_caches
):
    other = PatientFactory()
    add_record(patient, 1)
    add_record(other, 10)
    client.force_login(lead)
    warm_caches()
    with CaptureQueriesContext(connection) as small:
        assert client.get(panel_url(patient), **HTMX).status_code == 200
    with django_assert_max_num_queries(PANEL_MAX_QUERIES), CaptureQueriesContext(connection) as large:
        assert client.get(panel_url(other), **HTMX).status_code == 200
    assert len(large.captured_queries) == len(small.captured_queries)


def test_query_count_is_bounded_when_five_encounters_are_upcoming(
    client, lead, patient, django_assert_max_num_queries
):
    now = timezone.now()
    for days in range(1, 9):
        EncounterFactory(patient=patient, starts_at=now + dt.timedelta(days=days))
    client.force_login(lead)
    with django_assert_max_num_queries(PANEL_MAX_QUERIES):
        assert client.get(panel_url(patient), **HTMX).status_code == 200
