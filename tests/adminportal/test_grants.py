"""Explicit patient grants (django-guardian ``view_patient``), managed on the user page: search by MRN or name,
grant, remove. The access rule honours them at once; every change is audited with the patient."""

from django.urls import reverse

from careportal.access import can_view_patient
from inbox.models import AuditEvent
from tests.factories import PatientFactory


def test_searching_patients_by_mrn_or_name(client, administrator, other_nurse):
    PatientFactory(mrn="MRN7777777", first_name="Maria", last_name="Gonzalez")
    PatientFactory(first_name="John", last_name="Smith")
    client.force_login(administrator)
    url = reverse("adminportal:grant_search", args=[other_nurse.pk])

    by_mrn = client.get(url, {"q": "mrn7777777"}, HTTP_HX_REQUEST="true")
    by_name = client.get(url, {"q": "maria gonzalez"}, HTTP_HX_REQUEST="true")

    assert by_mrn.status_code == 200 and b"<html" not in by_mrn.content
    assert b"Maria Gonzalez" in by_mrn.content and b"Smith" not in by_mrn.content
    assert b'data-testid="grant-MRN7777777"' in by_name.content


def test_the_search_works_as_a_full_page_without_htmx(client, administrator, other_nurse, patient):
    client.force_login(administrator)
    response = client.get(reverse("adminportal:grant_search", args=[other_nurse.pk]), {"q": patient.mrn})
    assert response.status_code == 200
    assert b"<html" in response.content and patient.full_name.encode() in response.content


def test_granting_access_lets_the_user_see_the_patient(client, administrator, other_nurse, patient):
    assert not can_view_patient(other_nurse, patient)
    client.force_login(administrator)

    response = client.post(
        reverse("adminportal:grant_add", args=[other_nurse.pk]), {"patient": patient.pk}, follow=True
    )

    assert f"{other_nurse.full_name} can now see {patient.full_name}".encode() in response.content
    assert can_view_patient(type(other_nurse).objects.get(pk=other_nurse.pk), patient)
    event = AuditEvent.objects.get(detail__change="patient_access.granted")
    assert (
        event.patient == patient and event.actor == administrator and event.object_id == str(other_nurse.pk)
    )
    assert b'data-testid="grants"' in response.content


def test_granting_twice_changes_nothing(client, administrator, other_nurse, patient):
    client.force_login(administrator)
    client.post(reverse("adminportal:grant_add", args=[other_nurse.pk]), {"patient": patient.pk})
    response = client.post(
        reverse("adminportal:grant_add", args=[other_nurse.pk]), {"patient": patient.pk}, follow=True
    )
    assert b"could already see" in response.content
    assert AuditEvent.objects.filter(detail__change="patient_access.granted").count() == 1


def test_granting_an_unknown_patient_is_refused(client, administrator, other_nurse):
    client.force_login(administrator)
    response = client.post(
        reverse("adminportal:grant_add", args=[other_nurse.pk]), {"patient": 99999}, follow=True
    )
    assert b"That patient does not exist." in response.content
    assert not AuditEvent.objects.filter(detail__change="patient_access.granted").exists()


def test_removing_a_grant_takes_access_away(client, administrator, other_nurse, patient):
    client.force_login(administrator)
    client.post(reverse("adminportal:grant_add", args=[other_nurse.pk]), {"patient": patient.pk})

    response = client.post(reverse("adminportal:grant_remove", args=[other_nurse.pk, patient.pk]))

    assert response.status_code == 302
    assert not can_view_patient(type(other_nurse).objects.get(pk=other_nurse.pk), patient)
    assert AuditEvent.objects.get(detail__change="patient_access.revoked").patient == patient


def test_the_user_page_lists_grants(client, administrator, other_nurse, patient):
    client.force_login(administrator)
    client.post(reverse("adminportal:grant_add", args=[other_nurse.pk]), {"patient": patient.pk})
    response = client.get(reverse("adminportal:user_detail", args=[other_nurse.pk]))
    assert patient.mrn.encode() in response.content
    assert reverse("adminportal:grant_remove", args=[other_nurse.pk, patient.pk]).encode() in response.content
