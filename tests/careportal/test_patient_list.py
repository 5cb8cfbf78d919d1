"""The Patients page: visible patients, searchable, each row opening the profile."""

import pytest
from django.urls import reverse

from tests.factories import CareTeamMemberFactory, PatientFactory

LIST_MAX_QUERIES = 8


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_each_row_links_to_the_profile_and_names_the_language(client, nurse, patient):
    patient.preferred_language = "vi"
    patient.save()
    client.force_login(nurse)
    body = client.get(reverse("careportal:patients")).content.decode()
    assert f'href="{reverse("careportal:patient_detail", args=[patient.pk])}"' in body
    assert "Vietnamese" in body


def test_search_finds_by_preferred_name_and_mrn(client, lead):
    PatientFactory(first_name="Mariela", preferred_name="Mari", last_name="Quintero")
    other = PatientFactory(first_name="Anna", preferred_name="", last_name="Zeller")  # not a random "Maria"
    client.force_login(lead)
    body = client.get(reverse("careportal:patients"), {"q": "Mari"}).content.decode()
    assert "Quintero" in body
    assert "Zeller" not in body
    body = client.get(reverse("careportal:patients"), {"q": other.mrn}).content.decode()
    assert "Zeller" in body
    assert "Quintero" not in body


def test_it_rejects_post(client, nurse):
    client.force_login(nurse)
    assert client.post(reverse("careportal:patients")).status_code == 405


def test_it_redirects_anonymous_users_to_sign_in(client, db):
    response = client.get(reverse("careportal:patients"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_query_count_is_constant_whatever_the_number_of_patients(
    client, nurse, django_assert_max_num_queries
):
    for _ in range(30):
        CareTeamMemberFactory(user=nurse, patient=PatientFactory())
    client.force_login(nurse)
    with django_assert_max_num_queries(LIST_MAX_QUERIES):
        assert client.get(reverse("careportal:patients")).status_code == 200
