"""Search all inboxes (``inbox.selectors.search_all_inboxes``): the union of every folder the user has, by each
folder's own search and access rule, newest first, paged exactly; each row says which folders it is in."""

import datetime as dt

import pytest
from django.utils import timezone

from inbox.errors import FolderNotAllowed
from inbox.folders import Folder
from inbox.selectors import FolderFilters, folder_communications, folders_for, search_all_inboxes
from tests.factories import (
    CareTeamMemberFactory,
    CommunicationFactory,
    PatientFactory,
    UnrecognizedCommunicationFactory,
)

pytestmark = pytest.mark.django_db
PHARMACY = "refills@corner-pharmacy.example"


def _at(minutes: int):
    return timezone.now() - dt.timedelta(minutes=minutes)


@pytest.fixture
def world(nurse, patient):
    """The pharmacy's address in an Unrecognized communication whose candidate is the nurse's patient, in one linked
    to her patient, and in one of a patient she may not see."""
    stranger = PatientFactory(first_name="Sam", last_name="Stranger")
    unknown = UnrecognizedCommunicationFactory(counterpart=PHARMACY, last_message_at=_at(1))
    unknown.candidate_patients.add(patient)
    linked = CommunicationFactory(
        patient=patient, counterpart=PHARMACY, assignee=nurse, last_message_at=_at(2)
    )
    hidden = CommunicationFactory(patient=stranger, counterpart=PHARMACY, last_message_at=_at(3))
    CommunicationFactory(patient=patient, counterpart="maria@mail.example", last_message_at=_at(4))
    return {"unknown": unknown, "linked": linked, "hidden": hidden}


def _search(user, term=PHARMACY, **kwargs):
    return search_all_inboxes(user=user, filters=FolderFilters(query=term), **kwargs)


def test_a_nurse_finds_the_term_in_every_folder_she_has_and_never_outside_her_access(nurse, world):
    page = _search(nurse)
    assert [c.pk for c in page.rows] == [world["unknown"].pk, world["linked"].pk]
    assert page.next_cursor is None
    unknown, linked = page.rows
    assert unknown.found_in == [Folder.CARE_TEAM_UNRECOGNIZED]
    assert linked.found_in == [Folder.ASSIGNED_TO_ME, Folder.PRIMARY_CONTACT, Folder.CARE_TEAM_DIRECTED]
    assert Folder.CARE_TEAM_UNRECOGNIZED.full_label == "Care Team · Unrecognized"


def test_a_lead_with_full_patient_finds_it_in_all_patients(lead, world):
    page = _search(lead)
    assert [c.pk for c in page.rows] == [world["unknown"].pk, world["linked"].pk, world["hidden"].pk]
    assert page.rows[0].found_in == [Folder.ALL_UNRECOGNIZED]
    assert page.rows[2].found_in == [Folder.ALL_DIRECTED]


def test_status_and_channel_filters_apply_and_unassigned_only_does_not(lead, world):
    world["linked"].status = "closed"
    world["linked"].save(update_fields=["status"])
    filters = FolderFilters(query=PHARMACY, statuses=frozenset({"open"}), unassigned_only=True)
    page = search_all_inboxes(user=lead, filters=filters)
    assert [c.pk for c in page.rows] == [world["unknown"].pk, world["hidden"].pk]


def test_pages_are_exact_newest_first_without_gaps_or_repeats(nurse, patient, colleague):
    other = PatientFactory()
    CareTeamMemberFactory(patient=other, user=nurse)
    made = []
    for minutes in range(12):
        kind = minutes % 3
        if kind == 0:
            c = UnrecognizedCommunicationFactory(counterpart=PHARMACY, last_message_at=_at(minutes))
            c.candidate_patients.add(other)
        elif kind == 1:
            c = CommunicationFactory(patient=patient, counterpart=PHARMACY, last_message_at=_at(minutes))
        else:
            c = UnrecognizedCommunicationFactory(
                counterpart=PHARMACY, assignee=nurse, last_message_at=_at(minutes)
            )
        made.append(c.pk)
    expected = set()
    for folder in folders_for(nurse):
        qs = folder_communications(user=nurse, folder=folder, filters=FolderFilters(query=PHARMACY))
        expected |= set(qs.values_list("pk", flat=True))
    assert expected == set(made)
    seen, cursor = [], ""
    while True:
        page = _search(nurse, cursor=cursor, limit=5)
        seen += [c.pk for c in page.rows]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == made  # newest first, every match once


def test_no_term_is_no_rows_and_no_inbox_is_refused(nurse, outsider):
    assert _search(nurse, term="  ").rows == []
    with pytest.raises(FolderNotAllowed):
        _search(outsider)
