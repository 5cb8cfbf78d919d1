"""Recognising an inbound sender: exactly one patient (or one contact of one patient) links; zero or several
matches are Unrecognized with the candidates kept."""

import pytest

from inbox.ingest.recognize import recognize_email, recognize_phone
from tests.factories import ContactFactory, PatientContactMethodFactory, PatientFactory
from tests.inbox.ingest_support import eager_celery, hook_secrets  # noqa: F401  (autouse fixtures)

pytestmark = pytest.mark.django_db


def test_address_of_exactly_one_patient_is_recognized(patient):
    PatientContactMethodFactory(patient=patient, kind="email", value="maria@mail.example")
    recognition = recognize_email("maria@mail.example")
    assert recognition.is_recognized
    assert (recognition.patient, recognition.contact, recognition.candidate_ids) == (patient, None, ())


def test_email_address_is_compared_lower_case(patient):
    PatientContactMethodFactory(patient=patient, kind="email", value="maria@mail.example")
    assert recognize_email("  Maria@MAIL.Example ").patient == patient


def test_address_of_one_contact_links_the_patient_and_the_contact(patient):
    mother = ContactFactory(patient=patient, email="ana@mail.example", relationship="mother")
    recognition = recognize_email("ana@mail.example")
    assert (recognition.patient, recognition.contact) == (patient, mother)


def test_address_shared_by_two_patients_is_unrecognized_with_both_as_candidates(patient):
    sibling = PatientFactory()
    PatientContactMethodFactory(patient=patient, kind="email", value="family@mail.example")
    ContactFactory(patient=sibling, email="family@mail.example")
    recognition = recognize_email("family@mail.example")
    assert not recognition.is_recognized
    assert set(recognition.candidate_ids) == {patient.pk, sibling.pk}


def test_unknown_address_is_unrecognized_without_candidates(patient):
    recognition = recognize_email("stranger@mail.example")
    assert not recognition.is_recognized
    assert recognition.candidate_ids == ()


def test_patient_and_their_own_contact_sharing_an_address_link_the_patient_only(patient):
    PatientContactMethodFactory(patient=patient, kind="email", value="home@mail.example")
    ContactFactory(patient=patient, email="home@mail.example")
    recognition = recognize_email("home@mail.example")
    assert (recognition.patient, recognition.contact) == (patient, None)


def test_phone_number_is_compared_in_e164(patient):
    PatientContactMethodFactory(patient=patient, kind="phone", value="+15550102030")
    assert recognize_phone("(555) 010-2030").patient == patient
    assert recognize_phone("+1 555 010 2030").patient == patient


def test_phone_of_one_contact_links_the_contact(patient):
    caregiver = ContactFactory(patient=patient, phone="+15550109999")
    assert recognize_phone("+15550109999").contact == caregiver


def test_phone_shared_by_two_patients_is_unrecognized_with_both_as_candidates(patient):
    other = PatientFactory()
    PatientContactMethodFactory(patient=patient, kind="phone", value="+15550102222")
    PatientContactMethodFactory(patient=other, kind="phone", value="+15550102222")
    recognition = recognize_phone("+15550102222")
    assert recognition.patient is None
    assert set(recognition.candidate_ids) == {patient.pk, other.pk}


def test_unknown_number_is_unrecognized_without_candidates(patient):
    assert recognize_phone("+15550100001").candidate_ids == ()
