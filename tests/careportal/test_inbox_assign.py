"""Assign, reassign and unassign from the conversation header; the assignee list holds only users with access."""

import pytest
from django.urls import reverse

from inbox.models import AuditEvent
from tests.factories import (
    CareTeamMemberFactory,
    CommunicationFactory,
    PatientFactory,
    UnrecognizedCommunicationFactory,
    UserFactory,
)

HX = {"HTTP_HX_REQUEST": "true"}


def url(name, communication):
    return reverse(f"careportal:{name}", args=[communication.pk])


@pytest.fixture
def communication(nurse, patient):
    return CommunicationFactory(patient=patient, assignee=nurse)


def test_assignee_list_holds_only_users_who_can_see_the_patient(
    client, nurse, other_nurse, lead, communication
):
    inactive = UserFactory(
        username="gone", first_name="Gina", last_name="Gone", role="care-nurse", is_active=False
    )
    CareTeamMemberFactory(patient=communication.patient, user=inactive)
    client.force_login(nurse)
    response = client.get(url("communication_assign", communication), **HX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith("<dialog")
    assert "Nora Nurse (you)" in html and "Lena Lead" in html
    assert "Otto Other" not in html and "Gina Gone" not in html
    assert 'name="assignee" value=""' in html  # unassign


def test_assignee_list_for_an_unrecognized_communication_follows_its_candidates(client, nurse, other_nurse):
    elsewhere = PatientFactory()
    CareTeamMemberFactory(patient=elsewhere, user=other_nurse)
    unknown = UnrecognizedCommunicationFactory(assignee=nurse)
    unknown.candidate_patients.add(elsewhere)
    client.force_login(nurse)
    html = client.get(url("communication_assign", unknown), **HX).content.decode()
    assert "Otto Other" in html and "Nora Nurse" not in html


def test_assigning_returns_the_header_closes_the_dialog_and_is_audited(client, nurse, lead, patient):
    unassigned = CommunicationFactory(patient=patient)
    client.force_login(lead)
    response = client.post(url("communication_assign", unassigned), {"assignee": nurse.pk}, **HX)
    assert response.status_code == 200
    unassigned.refresh_from_db()
    assert unassigned.assignee == nurse
    html = response.content.decode()
    assert html.lstrip().startswith('<header id="conversation-header"') and "Nora Nurse" in html
    assert '<div id="dialog-slot" hx-swap-oob="true"></div>' in html
    assert '"inbox:changed"' in response["HX-Trigger"]
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ASSIGNMENT_CHANGED, actor=lead).exists()


def test_unassigning(client, nurse, communication):
    client.force_login(nurse)
    client.post(url("communication_assign", communication), {"assignee": ""}, **HX)
    communication.refresh_from_db()
    assert communication.assignee is None


def test_assigning_someone_without_access_is_refused_with_a_clear_message(
    client, nurse, other_nurse, communication
):
    client.force_login(nurse)
    response = client.post(url("communication_assign", communication), {"assignee": other_nurse.pk}, **HX)
    assert response.status_code == 422
    assert response["HX-Retarget"] == "#dialog-slot"
    assert "Otto Other cannot be assigned: they have no access to this patient." in response.content.decode()
    communication.refresh_from_db()
    assert communication.assignee == nurse


def test_assigning_an_unknown_user_is_refused(client, nurse, communication):
    client.force_login(nurse)
    response = client.post(url("communication_assign", communication), {"assignee": 999999}, **HX)
    assert response.status_code == 422
    assert "Choose a person from the list." in response.content.decode()


def test_assign_without_htmx_get_redirects_and_post_redirects_back(client, nurse, communication):
    client.force_login(nurse)
    assert client.get(url("communication_assign", communication)).status_code == 302
    assert client.post(url("communication_assign", communication), {"assignee": ""}).status_code == 302


def test_assign_rejects_other_methods(client, nurse, communication):
    client.force_login(nurse)
    assert client.put(url("communication_assign", communication), **HX).status_code == 405
    assert client.delete(url("communication_assign", communication), **HX).status_code == 405


def test_assign_by_a_user_without_access_is_404(client, other_nurse, communication):
    client.force_login(other_nurse)
    for response in (
        client.get(url("communication_assign", communication), **HX),
        client.post(url("communication_assign", communication), {"assignee": other_nurse.pk}, **HX),
    ):
        assert (
            response.status_code == 404
            and b"Lopez" not in response.content
            and b"Nora" not in response.content
        )
    communication.refresh_from_db()
    assert communication.assignee.username == "nurse"


def test_assign_needs_sign_in(client, communication):
    assert client.get(url("communication_assign", communication), **HX)["Location"].startswith(
        reverse("login")
    )


def test_assign_list_runs_a_constant_number_of_queries(
    client, nurse, communication, django_assert_max_num_queries
):
    client.force_login(nurse)
    for _ in range(5):
        CareTeamMemberFactory(patient=communication.patient, user=UserFactory(role="care-nurse"))
    with django_assert_max_num_queries(10):
        client.get(url("communication_assign", communication), **HX)
    for _ in range(25):
        CareTeamMemberFactory(patient=communication.patient, user=UserFactory(role="care-nurse"))
    with django_assert_max_num_queries(10):
        client.get(url("communication_assign", communication), **HX)
