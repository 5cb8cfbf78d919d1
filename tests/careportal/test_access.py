"""The one access rule: ``patients_visible_to`` / ``can_view_patient`` / ``communications_visible_to``."""

import pytest
from django.contrib.auth.models import AnonymousUser
from guardian.shortcuts import assign_perm, get_perms

from adminportal.models import User
from careportal.access import (
    can_view_communication,
    can_view_patient,
    communications_visible_to,
    patients_visible_to,
)
from careportal.models import PatientUserObjectPermission
from designer.models import MenuItem, Policy
from tests.factories import (
    CareTeamMemberFactory,
    CommunicationFactory,
    DraftConfigVersionFactory,
    PatientFactory,
    RegionFactory,
    RoleFactory,
    UnrecognizedCommunicationFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def fresh(user):
    """The same user as a new request would load it (the role's access is memoised on the instance)."""
    return User.objects.get(pk=user.pk)


@pytest.fixture
def stranger(db):
    """A patient nobody in the named cast is on the care team of."""
    return PatientFactory(first_name="Sam", last_name="Stranger")


@pytest.fixture
def east(db):
    return RegionFactory(code="east", name="East")


@pytest.fixture
def west(db):
    return RegionFactory(code="west", name="West")


# --- patients_visible_to / can_view_patient ----------------------------------------------------------------


def test_care_team_member_sees_their_patient_and_no_other(nurse, patient, stranger):
    assert list(patients_visible_to(nurse)) == [patient]
    assert can_view_patient(nurse, patient)
    assert can_view_patient(nurse, patient.pk)
    assert not can_view_patient(nurse, stranger)


def test_care_team_member_who_is_not_primary_contact_sees_the_patient(other_nurse, patient):
    CareTeamMemberFactory(patient=patient, user=other_nurse)

    assert can_view_patient(other_nurse, patient)


def test_nurse_off_the_care_team_sees_nobody(other_nurse, patient, stranger):
    assert not patients_visible_to(other_nurse).exists()
    assert not can_view_patient(other_nurse, patient)


def test_full_patient_without_regions_sees_every_patient(lead, patient, stranger, east):
    in_region = PatientFactory(region=east)

    assert set(patients_visible_to(lead)) == {patient, stranger, in_region}
    assert can_view_patient(lead, stranger)


def test_full_patient_with_regions_sees_only_their_regions_patients(lead, patient, east, west):
    lead.regions.add(east)
    eastern, western = PatientFactory(region=east), PatientFactory(region=west)
    lead = fresh(lead)

    assert list(patients_visible_to(lead)) == [eastern]
    assert can_view_patient(lead, eastern)
    assert not can_view_patient(lead, western)
    assert not can_view_patient(lead, patient)  # no region at all


def test_full_patient_with_several_regions_sees_each_regions_patients(lead, east, west):
    lead.regions.add(east, west)
    eastern, western = PatientFactory(region=east), PatientFactory(region=west)

    assert set(patients_visible_to(fresh(lead))) == {eastern, western}


def test_full_patient_with_regions_also_sees_explicitly_granted_patients(lead, east, west):
    lead.regions.add(east)
    western = PatientFactory(region=west)
    assign_perm("careportal.view_patient", lead, western)

    assert can_view_patient(fresh(lead), western)


def test_full_patient_with_regions_still_sees_their_own_care_team_patients(lead, east, west):
    """Any one of the grounds suffices: being on the care team counts whatever the regions."""
    lead.regions.add(east)
    western = PatientFactory(region=west)
    CareTeamMemberFactory(patient=western, user=lead)

    assert can_view_patient(fresh(lead), western)


def test_explicit_grant_is_stored_on_the_direct_patient_permission_table(other_nurse, patient):
    assign_perm("careportal.view_patient", other_nurse, patient)

    grant = PatientUserObjectPermission.objects.get()
    assert (grant.user, grant.content_object, grant.permission.codename) == (
        other_nurse,
        patient,
        "view_patient",
    )
    assert "view_patient" in get_perms(other_nurse, patient)
    assert fresh(other_nurse).has_perm("careportal.view_patient", patient)


def test_explicit_grant_lets_an_off_team_user_see_that_one_patient(other_nurse, patient, stranger):
    assign_perm("careportal.view_patient", other_nurse, patient)

    assert list(patients_visible_to(other_nurse)) == [patient]
    assert not can_view_patient(other_nurse, stranger)


def test_a_grant_of_another_permission_does_not_give_access(other_nurse, patient):
    assign_perm("careportal.change_patient", other_nurse, patient)

    assert not can_view_patient(other_nurse, patient)


def test_a_user_without_a_role_on_the_care_team_sees_the_patient(patient):
    """Access follows the care team, not the menu: a user with no role still sees their team's patient."""
    user = UserFactory(role="")
    CareTeamMemberFactory(patient=patient, user=user)

    assert can_view_patient(user, patient)


def test_inactive_user_sees_nobody(nurse, lead, patient):
    assign_perm("careportal.view_patient", nurse, patient)
    for user in (nurse, lead):
        user.is_active = False
        user.save(update_fields=["is_active"])

        assert not patients_visible_to(fresh(user)).exists()
        assert not can_view_patient(fresh(user), patient)


def test_anonymous_visitor_sees_nobody(patient):
    anonymous = AnonymousUser()

    assert not patients_visible_to(anonymous).exists()
    assert not can_view_patient(anonymous, patient)
    assert not communications_visible_to(anonymous).exists()


def test_nothing_is_not_a_visible_patient(lead):
    assert not can_view_patient(lead, None)


def test_full_patient_in_a_draft_does_not_count(published_config, other_nurse, patient):
    """Only the published configuration counts: a draft granting Inbox Full Patient changes nothing yet."""
    draft = DraftConfigVersionFactory()
    RoleFactory(
        version=draft,
        key="care-nurse",
        name="Care Team Nurse",
        menu=[MenuItem.INBOX],
        policies=[Policy.INBOX_FULL_PATIENT],
    )

    assert not can_view_patient(fresh(other_nurse), patient)
    assert not communications_visible_to(fresh(other_nurse)).exists()


def test_full_patient_on_an_inactive_role_does_not_count(published_config, patient):
    version, _ = published_config
    RoleFactory(version=version, key="retired-lead", is_active=False, policies=[Policy.INBOX_FULL_PATIENT])
    user = UserFactory(role="retired-lead")

    assert not can_view_patient(user, patient)


# --- communications_visible_to ---------------------------------------------------------------------------


def test_linked_communication_is_visible_when_its_patient_is(nurse, other_nurse, lead, patient, stranger):
    mine = CommunicationFactory(patient=patient)
    theirs = CommunicationFactory(patient=stranger)

    assert list(communications_visible_to(nurse)) == [mine]
    assert not communications_visible_to(other_nurse).exists()
    assert set(communications_visible_to(lead)) == {mine, theirs}
    assert can_view_communication(nurse, mine)
    assert not can_view_communication(nurse, theirs)


def test_linked_communication_is_not_visible_through_assignment_alone(other_nurse, stranger):
    """Assignment is no access ground for a linked communication; the patient rule decides."""
    communication = CommunicationFactory(patient=stranger, assignee=other_nurse)

    assert not can_view_communication(other_nurse, communication)


def test_linked_communication_follows_regions_for_full_patient(lead, east, west):
    lead.regions.add(east)
    eastern = CommunicationFactory(patient=PatientFactory(region=east))
    western = CommunicationFactory(patient=PatientFactory(region=west))

    visible = communications_visible_to(fresh(lead))

    assert list(visible) == [eastern]
    assert western not in visible


def test_unrecognized_communication_is_visible_to_its_assignee(other_nurse, outsider):
    communication = UnrecognizedCommunicationFactory(assignee=other_nurse)

    assert can_view_communication(other_nurse, communication)
    assert not can_view_communication(outsider, communication)


def test_unrecognized_communication_is_visible_to_who_can_see_a_candidate(
    nurse, other_nurse, patient, stranger
):
    communication = UnrecognizedCommunicationFactory()
    communication.candidate_patients.add(patient, stranger)

    assert can_view_communication(nurse, communication)
    assert not can_view_communication(other_nurse, communication)


def test_unrecognized_communication_with_candidates_is_not_visible_to_full_patient_outside_their_regions(
    lead, east, west
):
    lead.regions.add(east)
    western = UnrecognizedCommunicationFactory()
    western.candidate_patients.add(PatientFactory(region=west))
    eastern = UnrecognizedCommunicationFactory()
    eastern.candidate_patients.add(PatientFactory(region=east))

    visible = communications_visible_to(fresh(lead))

    assert eastern in visible
    assert western not in visible


def test_unrecognized_communication_without_candidates_is_visible_to_full_patient_holders_only(
    nurse, other_nurse, lead, outsider, east
):
    communication = UnrecognizedCommunicationFactory()
    regional_lead = UserFactory(role="team-lead")
    regional_lead.regions.add(east)

    assert can_view_communication(lead, communication)
    assert can_view_communication(fresh(regional_lead), communication)
    for user in (nurse, other_nurse, outsider):
        assert not can_view_communication(user, communication)


def test_communications_are_invisible_to_an_inactive_user(nurse, patient):
    communication = CommunicationFactory(patient=patient, assignee=nurse)
    nurse.is_active = False
    nurse.save(update_fields=["is_active"])

    assert not can_view_communication(fresh(nurse), communication)


def test_the_rule_follows_care_team_changes_on_the_same_user_object(other_nurse, patient):
    """The rule is built (and its SQL compiled) once per user object; care teams are still read by each query."""
    communication = CommunicationFactory(patient=patient)
    assert not communications_visible_to(other_nurse).exists()

    CareTeamMemberFactory(patient=patient, user=other_nurse)

    assert list(communications_visible_to(other_nurse)) == [communication]
    assert can_view_communication(other_nurse, communication)


def test_the_rule_holds_inside_another_query(nurse, patient, stranger):
    """Nested as a sub-query the rule's tables are renamed; its precompiled SQL must not be used there."""
    from django.db.models import Exists, OuterRef

    from inbox.models import Communication

    mine = CommunicationFactory(patient=patient)
    unknown = UnrecognizedCommunicationFactory()
    unknown.candidate_patients.add(patient)
    CommunicationFactory(patient=stranger)
    UnrecognizedCommunicationFactory().candidate_patients.add(stranger)
    visible = communications_visible_to(nurse)

    assert set(visible) == {mine, unknown}
    assert set(Communication.objects.filter(pk__in=visible)) == {mine, unknown}
    assert set(Communication.objects.filter(Exists(visible.filter(pk=OuterRef("pk"))))) == {mine, unknown}
    assert set(visible.filter(patient__isnull=False) | visible.filter(is_unrecognized=True)) == {
        mine,
        unknown,
    }
