"""Editing a patient's profile: only with the Edit patient profile policy, validated, audited."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from careportal.models import Patient
from inbox.models import AuditEvent
from tests.factories import CareTeamMemberFactory, PatientContactMethodFactory, PatientFactory, RegionFactory

EDIT_MAX_QUERIES = 11


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def edit_url(patient):
    return reverse("careportal:patient_edit", args=[patient.pk])


def form_data(patient, **changes):
    data = {
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "preferred_name": patient.preferred_name,
        "birth_date": patient.birth_date.isoformat(),
        "sex": patient.sex,
        "gender_identity": patient.gender_identity,
        "pronouns": patient.pronouns,
        "preferred_language": patient.preferred_language,
        "time_zone": patient.time_zone,
        "address_line1": patient.address_line1,
        "address_line2": patient.address_line2,
        "city": patient.city,
        "state": patient.state,
        "postal_code": patient.postal_code,
        "country": patient.country,
    }
    return {**data, **changes}


def snapshot(patient) -> dict:
    return Patient.objects.filter(pk=patient.pk).values().get()


def test_the_lead_sees_the_form_filled_in(client, lead, patient):
    client.force_login(lead)
    response = client.get(edit_url(patient))
    assert response.status_code == 200
    body = response.content.decode()
    assert f'value="{patient.first_name}"' in body
    assert f'value="{patient.birth_date.isoformat()}"' in body
    assert '<option value="America/Chicago" selected>' in body
    assert '<option value="es">Spanish</option>' in body


def test_a_valid_save_changes_the_patient_audits_the_changed_fields_and_redirects(client, lead, patient):
    client.force_login(lead)
    response = client.post(
        edit_url(patient),
        form_data(patient, preferred_language="es", time_zone="America/Denver", pronouns="she/her"),
        REMOTE_ADDR="10.0.0.9",
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("careportal:patient_detail", args=[patient.pk])
    patient.refresh_from_db()
    assert (patient.preferred_language, patient.time_zone, patient.pronouns) == (
        "es",
        "America/Denver",
        "she/her",
    )
    event = AuditEvent.objects.get(action=AuditEvent.Action.PATIENT_UPDATED)
    assert event.actor == lead
    assert event.patient == patient
    assert event.ip == "10.0.0.9"
    assert sorted(event.detail["changed"]) == ["preferred_language", "pronouns", "time_zone"]

    page = client.get(response["Location"]).content.decode()
    assert "Saved Maria Lopez&#x27;s profile." in page
    assert "Spanish" in page


def test_saving_without_changes_writes_nothing(client, lead, patient):
    before = snapshot(patient)
    client.force_login(lead)
    response = client.post(edit_url(patient), form_data(patient))
    assert response.status_code == 302
    assert snapshot(patient) == before
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PATIENT_UPDATED).exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"time_zone": "Mars/Olympus_Mons"}, "Select a valid choice."),
        ({"birth_date": "2999-01-01"}, "The date of birth cannot be in the future."),
        ({"birth_date": "31/31/1980"}, "Enter a valid date."),
        ({"birth_date": "1850-05-01"}, "Enter a date of birth after 1900."),
        ({"first_name": "   "}, "This field is required."),
        ({"country": "USA"}, "Ensure this value has at most 2 characters"),
        ({"sex": "robot"}, "Select a valid choice."),
    ],
)
def test_invalid_input_re_renders_with_errors_and_changes_nothing(client, lead, patient, changes, message):
    before = snapshot(patient)
    client.force_login(lead)
    response = client.post(edit_url(patient), form_data(patient, last_name="Changed", **changes))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Nothing was saved." in body
    assert message in body
    assert 'aria-invalid="true"' in body
    assert snapshot(patient) == before
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PATIENT_UPDATED).exists()
    # The page header still shows the stored name; the form keeps what was typed.
    assert "<h1>Maria Lopez" in body
    assert 'value="Changed"' in body


def test_a_nurse_without_the_edit_policy_who_sees_the_patient_gets_403(client, nurse, patient):
    before = snapshot(patient)
    client.force_login(nurse)
    assert client.get(edit_url(patient)).status_code == 403
    assert client.post(edit_url(patient), form_data(patient, last_name="Changed")).status_code == 403
    assert snapshot(patient) == before


def test_a_user_who_cannot_see_the_patient_gets_404_without_patient_data(client, other_nurse, patient):
    client.force_login(other_nurse)
    response = client.get(edit_url(patient))
    assert response.status_code == 404
    assert patient.last_name.encode() not in response.content
    assert patient.mrn.encode() not in response.content


def test_an_editor_limited_to_other_regions_gets_404(client, lead, patient):
    patient.region = RegionFactory(code="texas")
    patient.save()
    lead.regions.add(RegionFactory(code="ohio"))
    before = snapshot(patient)
    client.force_login(lead)
    assert client.get(edit_url(patient)).status_code == 404
    response = client.post(edit_url(patient), form_data(patient, last_name="Changed"))
    assert response.status_code == 404
    assert patient.last_name.encode() not in response.content
    assert snapshot(patient) == before


def test_the_edit_only_touches_the_patient_in_the_url(client, lead, patient):
    other = PatientFactory(last_name="Untouched")
    client.force_login(lead)
    client.post(edit_url(patient), form_data(patient, preferred_name="Mari"))
    other.refresh_from_db()
    assert other.preferred_name == ""
    patient.refresh_from_db()
    assert patient.preferred_name == "Mari"
    assert patient.full_name == "Mari Lopez"


def test_it_rejects_other_methods(client, lead, patient):
    client.force_login(lead)
    assert client.put(edit_url(patient)).status_code == 405
    assert client.delete(edit_url(patient)).status_code == 405


def test_it_redirects_anonymous_users_to_sign_in(client, patient):
    before = snapshot(patient)
    response = client.post(edit_url(patient), form_data(patient, last_name="Changed"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert snapshot(patient) == before


def test_birth_date_today_is_accepted(client, lead, patient):
    client.force_login(lead)
    today = timezone.localdate()
    response = client.post(edit_url(patient), form_data(patient, birth_date=today.isoformat()))
    assert response.status_code == 302


def test_a_language_tag_in_another_case_is_preselected_not_lost(client, lead, patient):
    patient.preferred_language = "es-MX"
    patient.save()
    client.force_login(lead)
    body = client.get(edit_url(patient)).content.decode()
    assert '<option value="es-mx" selected>Mexican Spanish</option>' in body


def test_a_language_tag_outside_the_list_stays_selectable(client, lead, patient):
    patient.preferred_language = "tl"
    patient.save()
    client.force_login(lead)
    body = client.get(edit_url(patient)).content.decode()
    assert '<option value="tl" selected>tl</option>' in body
    response = client.post(edit_url(patient), form_data(patient, pronouns="they/them"))
    assert response.status_code == 302
    patient.refresh_from_db()
    assert patient.preferred_language == "tl"


def test_query_count_of_the_form_is_constant(
    client, lead, patient, django_assert_max_num_queries, warm_caches
):
    other = PatientFactory()
    PatientContactMethodFactory(patient=patient)
    CareTeamMemberFactory(patient=patient)
    for n in range(8):
        PatientContactMethodFactory(patient=other, kind="phone", value=f"+1555040{n:04d}")
        CareTeamMemberFactory(patient=other)
    client.force_login(lead)
    warm_caches()
    with CaptureQueriesContext(connection) as small:
        assert client.get(edit_url(patient)).status_code == 200
    with django_assert_max_num_queries(EDIT_MAX_QUERIES), CaptureQueriesContext(connection) as large:
        assert client.get(edit_url(other)).status_code == 200
    assert len(large.captured_queries) == len(small.captured_queries)
