"""Linking an Unrecognized communication: every visible matching patient and contact, a search for any other
visible patient, linking to a patient or a contact, remembering the sender, and the refusals."""

import pytest
from django.urls import reverse

from inbox.models import AuditEvent, Channel
from tests.factories import (
    CareTeamMemberFactory,
    CommunicationFactory,
    ContactFactory,
    PatientContactMethodFactory,
    PatientFactory,
    UnrecognizedCommunicationFactory,
)

HX = {"HTTP_HX_REQUEST": "true"}


def link_url(communication) -> str:
    return reverse("careportal:communication_link", args=[communication.pk])


@pytest.fixture
def unknown(nurse, patient):
    brother = PatientFactory(first_name="Daniel", last_name="Lopez")
    CareTeamMemberFactory(patient=brother, user=nurse)
    hidden = PatientFactory(first_name="Hidden", last_name="Stranger")
    for person in (patient, brother, hidden):
        PatientContactMethodFactory(patient=person, kind="email", value="family@mail.example")
    communication = UnrecognizedCommunicationFactory(assignee=nurse, counterpart="family@mail.example")
    communication.candidate_patients.add(patient, brother, hidden)
    return communication


def test_the_link_dialog_lists_visible_candidates_and_their_contacts(client, nurse, patient, unknown):
    ContactFactory(patient=patient, first_name="Rosa", last_name="Lopez", relationship="mother")
    client.force_login(nurse)
    response = client.get(link_url(unknown), **HX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith("<dialog")
    assert "Link to Maria Lopez" in html and "Link to Daniel Lopez" in html
    assert "Link to Rosa Lopez" in html and "Mother of Maria Lopez" in html
    assert "Hidden" not in html and "Stranger" not in html
    assert "Email matches" in html
    assert 'name="remember" form="link-form"' in html


def test_the_link_search_finds_only_visible_patients(client, nurse, unknown):
    other = PatientFactory(first_name="Aisha", last_name="Khan")
    CareTeamMemberFactory(patient=other, user=nurse)
    PatientFactory(first_name="Aisha", last_name="Invisible")
    client.force_login(nurse)
    html = client.get(link_url(unknown), {"q": "aisha"}, **HX).content.decode()
    assert "Link to Aisha Khan" in html and "Invisible" not in html
    assert (
        "No patient you can see matches"
        in client.get(link_url(unknown), {"q": "nobody"}, **HX).content.decode()
    )
    assert client.get(link_url(unknown), {"q": other.mrn}, **HX).context["results"] == [other]


def test_linking_makes_it_eligible_for_reply_and_returns_the_conversation(client, nurse, patient, unknown):
    client.force_login(nurse)
    response = client.post(link_url(unknown), {"patient": patient.pk}, **HX)
    assert response.status_code == 200
    unknown.refresh_from_db()
    assert (unknown.patient, unknown.is_unrecognized, unknown.contact) == (patient, False, None)
    html = response.content.decode()
    assert 'id="reply-form"' in html and "Not linked to a patient yet." not in html
    assert '<div id="dialog-slot" hx-swap-oob="true"></div>' in html
    assert '"inbox:changed"' in response["HX-Trigger"]
    event = AuditEvent.objects.get(action=AuditEvent.Action.LINKED)
    assert len(event.detail["candidates"]) == 3 and event.detail["remembered"] == ""
    assert not patient.contact_methods.filter(label="remembered").exists()


def test_linking_with_remember_adds_the_number_so_the_next_sms_is_recognized(client, nurse, patient):
    sms = UnrecognizedCommunicationFactory(assignee=nurse, channel=Channel.SMS, counterpart="+15550109999")
    client.force_login(nurse)
    client.post(link_url(sms), {"patient": patient.pk, "remember": "on"}, **HX)
    assert patient.contact_methods.filter(kind="phone", value="+15550109999").exists()


def test_linking_to_a_contact_links_its_patient(client, nurse, patient, unknown):
    mother = ContactFactory(patient=patient, first_name="Rosa", last_name="Lopez", relationship="mother")
    client.force_login(nurse)
    client.post(link_url(unknown), {"contact": mother.pk, "remember": "on"}, **HX)
    unknown.refresh_from_db()
    assert (unknown.patient, unknown.contact) == (patient, mother)
    mother.refresh_from_db()
    assert mother.email == "family@mail.example"


def test_linking_to_a_patient_the_user_may_not_see_is_refused_and_changes_nothing(client, nurse, unknown):
    hidden = unknown.candidate_patients.get(first_name="Hidden")
    client.force_login(nurse)
    response = client.post(link_url(unknown), {"patient": hidden.pk}, **HX)
    assert response.status_code == 422
    assert response["HX-Retarget"] == "#dialog-slot"
    html = response.content.decode()
    assert "Choose a patient from the list." in html and "Stranger" not in html
    unknown.refresh_from_db()
    assert unknown.is_unrecognized


def test_linking_without_a_choice_is_refused(client, nurse, unknown):
    client.force_login(nurse)
    response = client.post(link_url(unknown), {}, **HX)
    assert response.status_code == 422
    assert "Choose the patient (or contact) this communication is from." in response.content.decode()


def test_a_contact_of_another_patient_is_refused(client, nurse, patient, unknown):
    brother = unknown.candidate_patients.get(first_name="Daniel")
    mother = ContactFactory(patient=patient)
    client.force_login(nurse)
    response = client.post(link_url(unknown), {"patient": brother.pk, "contact": mother.pk}, **HX)
    assert response.status_code == 422
    assert "That contact does not belong to the chosen patient." in response.content.decode()


def test_linking_an_already_linked_communication_is_refused(client, nurse, patient):
    linked = CommunicationFactory(patient=patient, assignee=nurse)
    client.force_login(nurse)
    response = client.post(link_url(linked), {"patient": patient.pk}, **HX)
    assert response.status_code == 422
    assert "already linked" in response.content.decode()


def test_link_without_htmx(client, nurse, patient, unknown):
    client.force_login(nurse)
    assert client.get(link_url(unknown)).status_code == 302
    assert client.post(link_url(unknown), {"patient": patient.pk}).status_code == 302
    unknown.refresh_from_db()
    assert not unknown.is_unrecognized


def test_link_rejects_other_methods(client, nurse, unknown):
    client.force_login(nurse)
    assert client.put(link_url(unknown), **HX).status_code == 405


def test_link_by_a_user_without_access_is_404(client, other_nurse, patient, unknown):
    client.force_login(other_nurse)
    for response in (
        client.get(link_url(unknown), **HX),
        client.get(link_url(unknown), {"q": "Lopez"}, **HX),
        client.post(link_url(unknown), {"patient": patient.pk}, **HX),
    ):
        assert response.status_code == 404 and b"Lopez" not in response.content
    unknown.refresh_from_db()
    assert unknown.is_unrecognized


def test_link_needs_sign_in(client, unknown):
    assert client.get(link_url(unknown), **HX)["Location"].startswith(reverse("login"))


def test_the_link_dialog_runs_a_constant_number_of_queries(
    client, nurse, unknown, django_assert_max_num_queries
):
    client.force_login(nurse)
    with django_assert_max_num_queries(11):
        client.get(link_url(unknown), **HX)
    for _ in range(10):
        extra = PatientFactory()
        CareTeamMemberFactory(patient=extra, user=nurse)
        ContactFactory(patient=extra)
        unknown.candidate_patients.add(extra)
    with django_assert_max_num_queries(11):
        client.get(link_url(unknown), **HX)
