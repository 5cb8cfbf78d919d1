"""Folder semantics (DESIGN.md: Inboxes and folders) through ``folder_communications`` / ``folders_for`` /
``folder_counts``: which communications each named person finds in each folder, with filters and search."""

import pytest

from adminportal.models import User
from inbox.errors import FolderNotAllowed
from inbox.folders import FOLDERS_BY_INBOX, Folder, InboxKind
from inbox.models import Channel, Communication, Message
from inbox.selectors import FolderFilters, folder_communications, folder_counts, folder_page, folders_for
from tests.factories import (
    CareTeamMemberFactory,
    CommunicationFactory,
    ContactFactory,
    MessageFactory,
    PatientFactory,
    RegionFactory,
    SendingLineFactory,
    UnrecognizedCommunicationFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

MY = FOLDERS_BY_INBOX[InboxKind.MY]
CARE_TEAM = FOLDERS_BY_INBOX[InboxKind.CARE_TEAM]
ALL_PATIENTS = FOLDERS_BY_INBOX[InboxKind.ALL_PATIENTS]
SHARED = CARE_TEAM + ALL_PATIENTS


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def every_page(*, user, folder, filters=None, limit: int) -> list[int]:
    """The ids of every page of ``folder``, following each page's cursor to the end."""
    seen, cursor = [], ""
    while True:
        page = folder_page(user=user, folder=folder, filters=filters, cursor=cursor, limit=limit)
        seen.extend(c.pk for c in page.rows)
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


def in_folder(user, folder, **filters) -> list[Communication]:
    return list(folder_communications(user=user, folder=folder, filters=FolderFilters(**filters)))


@pytest.fixture
def stranger(db):
    """A patient nobody in the named cast is on the care team of."""
    return PatientFactory(first_name="Sam", last_name="Stranger")


# --- Which folders ---------------------------------------------------------------------------------------


def test_care_team_nurse_has_my_inbox_and_care_team_inbox(nurse, other_nurse):
    assert folders_for(nurse) == MY + CARE_TEAM
    assert folders_for(other_nurse) == MY + CARE_TEAM


def test_lead_with_full_patient_has_every_inbox(lead):
    assert folders_for(lead) == MY + CARE_TEAM + ALL_PATIENTS


def test_outsider_without_inbox_in_their_menu_has_no_folders(outsider):
    assert folders_for(outsider) == []
    assert folder_counts(user=outsider) == {}
    for folder in Folder:
        with pytest.raises(FolderNotAllowed):
            folder_communications(user=outsider, folder=folder)


def test_all_patients_folders_are_refused_to_a_care_team_nurse(nurse):
    for folder in ALL_PATIENTS:
        with pytest.raises(FolderNotAllowed):
            folder_communications(user=nurse, folder=folder)


def test_user_without_a_role_has_no_folders(patient):
    user = UserFactory(role="")
    CareTeamMemberFactory(patient=patient, user=user)

    assert folders_for(user) == []


# --- My Inbox -------------------------------------------------------------------------------------------------


def test_assigned_to_me_holds_what_is_assigned_to_me(nurse, other_nurse, patient):
    mine = CommunicationFactory(patient=patient, assignee=nurse)
    mine_unrecognized = UnrecognizedCommunicationFactory(assignee=nurse)
    CommunicationFactory(patient=patient, assignee=other_nurse)
    CommunicationFactory(patient=patient)

    assert set(in_folder(nurse, Folder.ASSIGNED_TO_ME)) == {mine, mine_unrecognized}


def test_assigned_to_me_never_shows_a_patient_i_may_not_see(other_nurse, stranger):
    CommunicationFactory(patient=stranger, assignee=other_nurse)

    assert in_folder(other_nurse, Folder.ASSIGNED_TO_ME) == []


def test_primary_contact_holds_my_primary_patients_communications_whoever_is_assigned(
    nurse, other_nurse, patient
):
    assigned_elsewhere = CommunicationFactory(patient=patient, assignee=other_nurse)
    unassigned = CommunicationFactory(patient=patient)
    not_primary = PatientFactory()
    CareTeamMemberFactory(patient=not_primary, user=nurse, is_primary_contact=False)
    CommunicationFactory(patient=not_primary)

    assert set(in_folder(nurse, Folder.PRIMARY_CONTACT)) == {assigned_elsewhere, unassigned}
    assert in_folder(other_nurse, Folder.PRIMARY_CONTACT) == []


def test_my_unrecognized_holds_unlinked_communications_assigned_to_me(nurse, other_nurse, patient):
    mine = UnrecognizedCommunicationFactory(assignee=nurse)
    UnrecognizedCommunicationFactory(assignee=other_nurse)
    UnrecognizedCommunicationFactory()
    CommunicationFactory(patient=patient, assignee=nurse)

    assert in_folder(nurse, Folder.MY_UNRECOGNIZED) == [mine]


def test_sent_holds_communications_in_which_i_sent_a_message(nurse, other_nurse, patient):
    replied = CommunicationFactory(patient=patient)
    MessageFactory(communication=replied)
    MessageFactory(
        communication=replied, direction=Message.Direction.OUTBOUND, author=nurse, delivery_status="sent"
    )
    noted = CommunicationFactory(patient=patient)
    MessageFactory(
        communication=noted, direction=Message.Direction.OUTBOUND, author=nurse, is_internal_note=True
    )
    someone_elses = CommunicationFactory(patient=patient)
    MessageFactory(communication=someone_elses, direction=Message.Direction.OUTBOUND, author=other_nurse)
    CommunicationFactory(patient=patient, assignee=nurse)

    assert in_folder(nurse, Folder.SENT) == [replied]


def test_sent_shows_a_communication_once_however_many_messages_i_sent(nurse, patient):
    communication = CommunicationFactory(patient=patient)
    MessageFactory.create_batch(
        3, communication=communication, direction=Message.Direction.OUTBOUND, author=nurse
    )

    assert in_folder(nurse, Folder.SENT) == [communication]
    assert folder_counts(user=nurse)[Folder.SENT] == 1


# --- Care Team Inbox -----------------------------------------------------------------------------------------------


def test_care_team_directed_holds_communications_of_my_care_teams_patients(
    nurse, other_nurse, patient, stranger
):
    on_team = CommunicationFactory(patient=patient, assignee=other_nurse)
    CommunicationFactory(patient=stranger)
    UnrecognizedCommunicationFactory(assignee=nurse)

    assert in_folder(nurse, Folder.CARE_TEAM_DIRECTED) == [on_team]
    assert in_folder(other_nurse, Folder.CARE_TEAM_DIRECTED) == []


def test_joining_a_care_team_brings_its_patients_communications_into_care_team_directed(other_nurse, patient):
    communication = CommunicationFactory(patient=patient)
    CareTeamMemberFactory(patient=patient, user=other_nurse)

    assert in_folder(other_nurse, Folder.CARE_TEAM_DIRECTED) == [communication]
    assert in_folder(other_nurse, Folder.PRIMARY_CONTACT) == []


def test_care_team_unrecognized_holds_unlinked_ones_with_a_candidate_on_my_team(
    nurse, other_nurse, patient, stranger
):
    my_candidate = UnrecognizedCommunicationFactory()
    my_candidate.candidate_patients.add(patient, stranger)
    other_candidate = UnrecognizedCommunicationFactory()
    other_candidate.candidate_patients.add(stranger)
    UnrecognizedCommunicationFactory()

    assert in_folder(nurse, Folder.CARE_TEAM_UNRECOGNIZED) == [my_candidate]
    assert in_folder(other_nurse, Folder.CARE_TEAM_UNRECOGNIZED) == []


def test_care_team_unrecognized_leaves_out_communications_already_linked(nurse, patient):
    linked = CommunicationFactory(patient=patient)
    linked.candidate_patients.add(patient)  # candidates kept from before it was linked

    assert in_folder(nurse, Folder.CARE_TEAM_UNRECOGNIZED) == []
    assert in_folder(nurse, Folder.CARE_TEAM_DIRECTED) == [linked]


# --- All Patients Inbox ----------------------------------------------------------------------------------------------


def test_all_patients_directed_holds_every_linked_communication_for_the_lead(lead, patient, stranger):
    first = CommunicationFactory(patient=patient)
    second = CommunicationFactory(patient=stranger)
    UnrecognizedCommunicationFactory()

    assert set(in_folder(lead, Folder.ALL_DIRECTED)) == {first, second}


def test_all_patients_unrecognized_holds_every_unlinked_communication_for_the_lead(lead, patient):
    with_candidate = UnrecognizedCommunicationFactory()
    with_candidate.candidate_patients.add(patient)
    without_candidate = UnrecognizedCommunicationFactory()
    CommunicationFactory(patient=patient)

    assert set(in_folder(lead, Folder.ALL_UNRECOGNIZED)) == {with_candidate, without_candidate}


def test_all_patients_folders_respect_the_leads_regions(lead, patient):
    east, west = RegionFactory(code="east"), RegionFactory(code="west")
    lead.regions.add(east)
    eastern = CommunicationFactory(patient=PatientFactory(region=east))
    CommunicationFactory(patient=PatientFactory(region=west))
    lead = User.objects.get(pk=lead.pk)  # as a new request loads it

    assert in_folder(lead, Folder.ALL_DIRECTED) == [eastern]


# --- Filters ------------------------------------------------------------------------------------------------


def test_status_filter_defaults_to_open_and_closed(nurse, patient):
    open_one = CommunicationFactory(patient=patient, status=Communication.Status.OPEN)
    closed_one = CommunicationFactory(patient=patient, status=Communication.Status.CLOSED)

    assert set(in_folder(nurse, Folder.PRIMARY_CONTACT)) == {open_one, closed_one}
    assert in_folder(nurse, Folder.PRIMARY_CONTACT, statuses=frozenset({"open"})) == [open_one]
    assert in_folder(nurse, Folder.PRIMARY_CONTACT, statuses=frozenset({"closed"})) == [closed_one]


def test_channel_filter_email_includes_secure_email(nurse, patient):
    by_channel = {
        channel: CommunicationFactory(patient=patient, channel=channel) for channel in Channel.values
    }

    def channels(*keys):
        return {c.channel for c in in_folder(nurse, Folder.CARE_TEAM_DIRECTED, channels=frozenset(keys))}

    assert set(in_folder(nurse, Folder.CARE_TEAM_DIRECTED)) == set(by_channel.values())
    assert channels("email") == {Channel.EMAIL, Channel.SECURE_EMAIL}
    assert channels("sms") == {Channel.SMS}
    assert channels("chat") == {Channel.CHAT}
    assert channels("sms", "chat") == {Channel.SMS, Channel.CHAT}


def test_status_and_channel_filters_combine(lead, patient):
    wanted = CommunicationFactory(patient=patient, channel=Channel.SMS, status=Communication.Status.CLOSED)
    CommunicationFactory(patient=patient, channel=Channel.SMS, status=Communication.Status.OPEN)
    CommunicationFactory(patient=patient, channel=Channel.EMAIL, status=Communication.Status.CLOSED)

    found = in_folder(lead, Folder.ALL_DIRECTED, statuses=frozenset({"closed"}), channels=frozenset({"sms"}))

    assert found == [wanted]


def test_unassigned_only_narrows_shared_folders(nurse, lead, patient):
    assigned = CommunicationFactory(patient=patient, assignee=nurse)
    unassigned = CommunicationFactory(patient=patient)
    unrecognized_assigned = UnrecognizedCommunicationFactory(assignee=nurse)
    unrecognized_assigned.candidate_patients.add(patient)
    unrecognized_unassigned = UnrecognizedCommunicationFactory()
    unrecognized_unassigned.candidate_patients.add(patient)

    assert set(in_folder(nurse, Folder.CARE_TEAM_DIRECTED)) == {assigned, unassigned}
    assert in_folder(nurse, Folder.CARE_TEAM_DIRECTED, unassigned_only=True) == [unassigned]
    assert in_folder(nurse, Folder.CARE_TEAM_UNRECOGNIZED, unassigned_only=True) == [unrecognized_unassigned]
    assert in_folder(lead, Folder.ALL_DIRECTED, unassigned_only=True) == [unassigned]
    assert in_folder(lead, Folder.ALL_UNRECOGNIZED, unassigned_only=True) == [unrecognized_unassigned]


def test_unassigned_only_does_not_apply_to_my_inbox(nurse, patient):
    assigned = CommunicationFactory(patient=patient, assignee=nurse)

    assert in_folder(nurse, Folder.ASSIGNED_TO_ME, unassigned_only=True) == [assigned]
    assert in_folder(nurse, Folder.PRIMARY_CONTACT, unassigned_only=True) == [assigned]


def test_folders_list_newest_first(nurse, patient):
    older = CommunicationFactory(patient=patient)
    newer = CommunicationFactory(patient=patient, last_message_at=older.last_message_at.replace(year=2100))

    assert in_folder(nurse, Folder.PRIMARY_CONTACT) == [newer, older]


# --- Counts ------------------------------------------------------------------------------------------------------


@pytest.fixture
def busy_inbox(nurse, other_nurse, lead, patient, stranger):
    """A mix of every kind of communication, so every folder has something to count."""
    CommunicationFactory(patient=patient, assignee=nurse, channel=Channel.SMS)
    CommunicationFactory(patient=patient, status=Communication.Status.CLOSED, channel=Channel.SECURE_EMAIL)
    CommunicationFactory(patient=stranger, assignee=lead, channel=Channel.CHAT)
    UnrecognizedCommunicationFactory(assignee=nurse)
    with_candidate = UnrecognizedCommunicationFactory(status=Communication.Status.CLOSED)
    with_candidate.candidate_patients.add(patient)
    UnrecognizedCommunicationFactory()
    sent = CommunicationFactory(patient=patient)
    MessageFactory(communication=sent, direction=Message.Direction.OUTBOUND, author=nurse)


@pytest.mark.parametrize(
    "filters",
    [
        FolderFilters(),
        FolderFilters(statuses=frozenset({"open"})),
        FolderFilters(channels=frozenset({"email"})),
        FolderFilters(unassigned_only=True),
        FolderFilters(query="Lopez"),
    ],
    ids=["default", "open", "email", "unassigned", "search"],
)
def test_counts_equal_the_length_of_each_folder(busy_inbox, nurse, other_nurse, lead, filters):
    for user in (nurse, other_nurse, lead):
        counts = folder_counts(user=user, filters=filters)

        assert list(counts) == folders_for(user)
        for folder, count in counts.items():
            assert count == len(folder_communications(user=user, folder=folder, filters=filters)), folder


def test_counts_of_the_nurse_match_the_folder_rules(busy_inbox, nurse):
    assert folder_counts(user=nurse) == {
        Folder.ASSIGNED_TO_ME: 2,
        Folder.PRIMARY_CONTACT: 3,
        Folder.MY_UNRECOGNIZED: 1,
        Folder.SENT: 1,
        Folder.CARE_TEAM_DIRECTED: 3,
        Folder.CARE_TEAM_UNRECOGNIZED: 1,
    }


def test_every_folder_is_counted_in_one_query(busy_inbox, lead, django_assert_num_queries):
    folder_counts(
        user=lead
    )  # the role's folders and regions are read once per user object (a request's user)
    with django_assert_num_queries(1):
        counts = folder_counts(user=lead)
    assert counts == {f: len(folder_communications(user=lead, folder=f)) for f in folders_for(lead)}


def test_counts_with_no_status_chosen_are_zero_without_a_query(busy_inbox, nurse, django_assert_num_queries):
    folders_for(nurse)
    with django_assert_num_queries(0):
        counts = folder_counts(user=nurse, filters=FolderFilters(statuses=frozenset()))
    assert set(counts.values()) == {0} and list(counts) == folders_for(nurse)


# --- Search ------------------------------------------------------------------------------------------------------


def test_search_by_phone_as_typed_finds_the_e164_counterpart(lead, patient):
    texted = CommunicationFactory(patient=patient, channel=Channel.SMS, counterpart="+15550102030")
    CommunicationFactory(patient=patient, channel=Channel.SMS, counterpart="+15550109999")

    assert in_folder(lead, Folder.ALL_DIRECTED, query="(555) 010-2030") == [texted]
    assert in_folder(lead, Folder.ALL_DIRECTED, query="555-010-2030") == [texted]
    assert in_folder(lead, Folder.ALL_DIRECTED, query="+1 555 010 2030") == [texted]


@pytest.mark.parametrize("query", ["2030", "010-2030", "0102030", "(555) 010"])
def test_search_by_part_of_a_phone_number_finds_the_counterpart(lead, patient, query):
    texted = CommunicationFactory(patient=patient, channel=Channel.SMS, counterpart="+15550102030")
    CommunicationFactory(patient=patient, channel=Channel.SMS, counterpart="+15559876541")

    assert in_folder(lead, Folder.ALL_DIRECTED, query=query) == [texted]
    assert folder_page(user=lead, folder=Folder.ALL_DIRECTED, filters=FolderFilters(query=query)).rows == [
        texted
    ]


def test_two_digits_or_digits_among_words_are_not_a_phone_search(lead, patient):
    CommunicationFactory(patient=patient, channel=Channel.SMS, counterpart="+15550102030")

    assert in_folder(lead, Folder.ALL_DIRECTED, query="30") == []
    assert in_folder(lead, Folder.ALL_DIRECTED, query="room 2030") == []


def test_search_by_phone_finds_the_sending_line(lead, patient):
    line = SendingLineFactory(number="+15550100042", label="Cardiology")
    on_line = CommunicationFactory(
        patient=patient, channel=Channel.SMS, sending_line=line, counterpart="+15550102030"
    )
    CommunicationFactory(patient=patient, channel=Channel.SMS, counterpart="+15550102031")

    assert in_folder(lead, Folder.ALL_DIRECTED, query="(555) 010-0042") == [on_line]


def test_search_by_email_ignores_case(lead, patient):
    mailed = CommunicationFactory(patient=patient, counterpart="maria.lopez@mail.example")
    CommunicationFactory(patient=patient, counterpart="someone@mail.example")

    assert in_folder(lead, Folder.ALL_DIRECTED, query="Maria.Lopez@MAIL.example") == [mailed]
    assert in_folder(lead, Folder.ALL_DIRECTED, query="maria.lopez@mail") == [mailed]


def test_a_whole_address_finds_that_address_and_messages_that_mention_it(lead, patient):
    """A whole address is that address (not every address ending in it), in the counterpart and in message text —
    PostgreSQL indexes an address in text as one word, so searching its parts would never find it there."""
    mailed = CommunicationFactory(patient=patient, counterpart="maria.lopez@mail.example")
    CommunicationFactory(patient=patient, counterpart="anamaria.lopez@mail.example")
    mentioned = CommunicationFactory(patient=patient, counterpart="+15550102030", channel=Channel.SMS)
    MessageFactory(communication=mentioned, body_text="Please write to Maria.Lopez@mail.example instead.")

    found = in_folder(lead, Folder.ALL_DIRECTED, query="MARIA.LOPEZ@mail.example")
    assert sorted(c.pk for c in found) == sorted([mailed.pk, mentioned.pk])
    page = folder_page(
        user=lead, folder=Folder.ALL_DIRECTED, filters=FolderFilters(query="maria.lopez@mail.example")
    )
    assert sorted(c.pk for c in page.rows) == sorted([mailed.pk, mentioned.pk])


def test_search_by_the_start_of_an_address_finds_it(lead, patient):
    mailed = CommunicationFactory(patient=patient, counterpart="ashaw1817@webmail.example")
    CommunicationFactory(patient=patient, counterpart="someone@mail.example")

    assert in_folder(lead, Folder.ALL_DIRECTED, query="ashaw18") == [mailed]
    assert folder_page(user=lead, folder=Folder.ALL_DIRECTED, filters=FolderFilters(query="AShaw")).rows == [
        mailed
    ]


def test_search_by_email_finds_unrecognized_senders(lead):
    unknown = UnrecognizedCommunicationFactory(counterpart="new.person@mail.example")
    UnrecognizedCommunicationFactory(counterpart="other@mail.example")

    assert in_folder(lead, Folder.ALL_UNRECOGNIZED, query="NEW.PERSON@mail.example") == [unknown]


def test_search_by_patient_name(lead, patient, stranger):
    hers = CommunicationFactory(patient=patient)
    CommunicationFactory(patient=stranger)

    assert in_folder(lead, Folder.ALL_DIRECTED, query="Lopez") == [hers]
    assert in_folder(lead, Folder.ALL_DIRECTED, query="maria") == [hers]
    assert in_folder(lead, Folder.ALL_DIRECTED, query="Maria Lopez") == [hers]


def test_search_by_the_name_the_patient_goes_by(lead, stranger):
    """Lists show the preferred name with the last name ("Liz Taylor"); typing what is shown finds her."""
    elizabeth = PatientFactory(first_name="Elizabeth", preferred_name="Liz", last_name="Taylor")
    hers = CommunicationFactory(patient=elizabeth)
    CommunicationFactory(patient=stranger)

    assert in_folder(lead, Folder.ALL_DIRECTED, query="Liz Taylor") == [hers]
    assert in_folder(lead, Folder.ALL_DIRECTED, query="Elizabeth Taylor") == [hers]


def test_search_by_contact_name(lead, patient):
    contact = ContactFactory(patient=patient, first_name="Carla", last_name="Caregiver")
    from_contact = CommunicationFactory(patient=patient, contact=contact)
    CommunicationFactory(patient=patient)

    assert in_folder(lead, Folder.ALL_DIRECTED, query="Caregiver") == [from_contact]
    assert in_folder(lead, Folder.ALL_DIRECTED, query="Carla Caregiver") == [from_contact]


def test_search_by_message_text(lead, patient):
    asked = CommunicationFactory(patient=patient)
    MessageFactory(communication=asked, body_text="Could I get a refill of my inhaler please?")
    other = CommunicationFactory(patient=patient)
    MessageFactory(communication=other, body_text="Thanks for the appointment.")

    assert in_folder(lead, Folder.ALL_DIRECTED, query="inhaler") == [asked]
    assert in_folder(lead, Folder.ALL_DIRECTED, query="Refill") == [asked]


def test_search_that_matches_nothing_finds_nothing(lead, patient):
    CommunicationFactory(patient=patient)

    assert in_folder(lead, Folder.ALL_DIRECTED, query="zzzz-nothing") == []


def test_search_stays_inside_the_folder_and_my_access(nurse, patient, stranger):
    CommunicationFactory(patient=stranger, counterpart="+15550102030")
    mine = CommunicationFactory(patient=patient, counterpart="+15550102030")

    assert in_folder(nurse, Folder.CARE_TEAM_DIRECTED, query="(555) 010-2030") == [mine]
    assert in_folder(nurse, Folder.CARE_TEAM_DIRECTED, query="Stranger") == []


@pytest.mark.parametrize("folder", [f for f in Folder if f.implies_visibility])
def test_folders_that_imply_visibility_select_only_visible_communications(folder, nurse, lead, patient):
    """The fast path of folder_communications must give exactly the rows the general visibility filter gives."""
    from careportal.access import communications_visible_to
    from inbox.selectors import _folder_q

    hidden = PatientFactory()
    for owner in (patient, hidden):
        CommunicationFactory(patient=owner, assignee=nurse)
    shared = UnrecognizedCommunicationFactory(assignee=nurse)
    shared.candidate_patients.add(patient, hidden)
    UnrecognizedCommunicationFactory(assignee=nurse)
    stranger = UnrecognizedCommunicationFactory()
    stranger.candidate_patients.add(hidden)
    for user in (nurse, lead):
        if folder not in folders_for(user):
            continue
        fast = set(folder_communications(user=user, folder=folder).values_list("pk", flat=True))
        general = set(
            communications_visible_to(user).filter(_folder_q(user, folder)).values_list("pk", flat=True)
        )
        assert fast == general


def test_a_search_matching_a_large_share_pages_through_every_match_newest_first(lead, patient, monkeypatch):
    """However many communications match (here more than SEARCH_ID_LIMIT, where counts switch to a sub-select),
    the pages give the same rows in the same order as the plain query, page after page."""
    import datetime as dt

    from django.utils import timezone

    from inbox import selectors

    monkeypatch.setattr(selectors, "SEARCH_ID_LIMIT", 3)
    monkeypatch.setattr(selectors, "KIND_IDS", 3)
    base = timezone.now()
    matching = []
    for i in range(12):
        communication = CommunicationFactory(patient=patient, last_message_at=base - dt.timedelta(minutes=i))
        text = "needs a refill" if i % 3 else "all good"
        MessageFactory(communication=communication, body_text=text)
        if i % 3:
            matching.append(communication.pk)
    filters = FolderFilters(query="refill")
    assert selectors.Search("refill").selective_ids is None
    assert every_page(user=lead, folder=Folder.ALL_DIRECTED, filters=filters, limit=3) == matching
    assert (
        list(
            folder_communications(user=lead, folder=Folder.ALL_DIRECTED, filters=filters).values_list(
                "pk", flat=True
            )
        )
        == matching
    )


@pytest.mark.parametrize("rare_text_messages", [0, 10**9], ids=["text walked", "text resolved by index"])
@pytest.mark.parametrize("id_limit", [1, 20_000], ids=["kinds walked", "kinds resolved"])
@pytest.mark.parametrize("window", [2, 5_000], ids=["window too short", "window"])
@pytest.mark.parametrize(
    ("who", "folder"),
    [("lead", Folder.ALL_DIRECTED), ("nurse", Folder.CARE_TEAM_DIRECTED)],
    ids=["organisation-wide folder", "one person's folder"],
)
def test_every_search_strategy_gives_the_same_pages(
    request, patient, monkeypatch, rare_text_messages, id_limit, window, who, folder
):
    """Message text resolved by its index or tested row by row on a window of the folder's newest rows (falling
    back to the index when the window is too short), names and other kinds resolved to ids or walked: the pages
    are the same rows in the same order as the plain query."""
    import datetime as dt

    from django.utils import timezone

    from inbox import selectors

    monkeypatch.setattr(selectors, "RARE_TEXT_MESSAGES", rare_text_messages)
    monkeypatch.setattr(selectors, "SEARCH_ID_LIMIT", id_limit)
    monkeypatch.setattr(selectors, "KIND_IDS", id_limit)
    monkeypatch.setattr(selectors, "TEXT_WALK_WINDOW", window)
    base = timezone.now()
    clark = PatientFactory(first_name="Ann", last_name="Clarkson")
    for i in range(9):
        owner = clark if i % 3 == 0 else patient
        communication = CommunicationFactory(patient=owner, last_message_at=base - dt.timedelta(minutes=i))
        MessageFactory(communication=communication, body_text="ask Dr Clark" if i % 3 == 1 else "fine")
    filters = FolderFilters(query="clark")
    user = request.getfixturevalue(who)
    if who == "nurse":  # Ann Clarkson is on the nurse's care team too
        CareTeamMemberFactory(patient=clark, user=user)
    expected = list(
        folder_communications(user=user, folder=folder, filters=filters).values_list("pk", flat=True)
    )
    assert len(expected) == 6
    assert every_page(user=user, folder=folder, filters=filters, limit=2) == expected


def test_one_word_expected_in_more_messages_than_a_probe_reads_is_not_probed(lead, patient, monkeypatch):
    """One word the planner expects in more messages than the probe would read goes straight to the exact filter
    on the folder (a probe would read its limit and give up); the page is the same."""
    import datetime as dt

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from inbox import selectors

    if connection.vendor != "postgresql":
        pytest.skip("the planner's estimate and the probe are PostgreSQL's")
    monkeypatch.setattr(selectors, "RARE_TEXT_MESSAGES", 0)  # not rare: walked on a window first
    monkeypatch.setattr(selectors, "TEXT_WALK_WINDOW", 2)  # too short for the page
    monkeypatch.setattr(selectors, "SEARCH_ID_LIMIT", 0)  # every estimate is past probing
    base = timezone.now()
    for i in range(8):
        communication = CommunicationFactory(patient=patient, last_message_at=base - dt.timedelta(minutes=i))
        MessageFactory(communication=communication, body_text="see you at the clinic" if i % 2 else "fine")
    filters = FolderFilters(query="clinic")
    expected = list(
        folder_communications(user=lead, folder=Folder.ALL_DIRECTED, filters=filters).values_list(
            "pk", flat=True
        )
    )
    with CaptureQueriesContext(connection) as queries:
        assert every_page(user=lead, folder=Folder.ALL_DIRECTED, filters=filters, limit=2) == expected
    assert len(expected) == 4
    assert not [q for q in queries.captured_queries if 'SELECT DISTINCT "inbox_message"' in q["sql"]]


def test_a_searched_folder_page_reads_a_bounded_number_of_rows_per_kind(lead, patient):
    """A searched page asks each kind of search for its newest limit + 1 matches (one query each) and reads the
    rows once: the number of queries does not depend on how many communications match."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from inbox.selectors import Search, folder_page

    CommunicationFactory(patient=patient, subject="Refill request")
    kinds = len(Search("refill").kinds) + 1  # and message text
    folder_page(user=lead, folder=Folder.ALL_DIRECTED)  # the user's role and regions are read once per user
    counts = []
    for extra in (0, 6):
        for _ in range(extra):
            CommunicationFactory(patient=patient, subject="Refill request")
        with CaptureQueriesContext(connection) as ctx:
            page = folder_page(
                user=lead, folder=Folder.ALL_DIRECTED, filters=FolderFilters(query="refill"), limit=3
            )
        assert len(page.rows) == (1 if not extra else 3)
        per_kind = [q["sql"] for q in ctx.captured_queries if "LIMIT 4" in q["sql"]]
        assert 1 <= len(per_kind) <= kinds
        # at most: each kind's ids (by its own index), its newest matches, and one read of the page's rows
        assert len(ctx.captured_queries) <= 2 * kinds + 1
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]


def test_counts_stop_above_the_cap_and_the_navigation_says_so(busy_inbox, nurse, client, monkeypatch):
    """A count reads at most COUNT_CAP + 1 rows; above the cap the navigation shows "N+" instead of a number."""
    from inbox import selectors

    exact = folder_counts(user=nurse)
    monkeypatch.setattr(selectors, "COUNT_CAP", 2)
    capped = folder_counts(user=nurse)
    assert capped == {folder: min(count, 3) for folder, count in exact.items()}
    assert capped[Folder.PRIMARY_CONTACT] == 3 and exact[Folder.PRIMARY_CONTACT] == 3

    client.force_login(nurse)
    response = client.get("/inbox/my/primary-contact/counts/", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert 'data-count="my/primary-contact"' in html
    assert "2+" in html.split('data-count="my/primary-contact"')[1].split("</span></span>")[0]


@pytest.mark.parametrize("folder", [Folder.PRIMARY_CONTACT, Folder.CARE_TEAM_DIRECTED])
@pytest.mark.parametrize(
    "filters",
    [
        FolderFilters(),
        FolderFilters(statuses=frozenset({"open"})),
        FolderFilters(channels=frozenset({"email"})),
    ],
    ids=["default", "open", "email"],
)
def test_care_team_folder_pages_walk_exactly_the_folder_newest_first(nurse, folder, filters):
    """Care-team folders are paged from the user's care teams on PostgreSQL (a LATERAL join per patient): page after
    page they give exactly the rows, in the order, that the folder's own selector gives — ties on time included."""
    import datetime as dt

    from django.utils import timezone

    at = timezone.now()
    primary, member, elsewhere = PatientFactory(), PatientFactory(), PatientFactory()
    CareTeamMemberFactory(patient=primary, user=nurse, is_primary_contact=True)
    CareTeamMemberFactory(patient=member, user=nurse, is_primary_contact=False)
    for i in range(9):
        for owner in (primary, member, elsewhere):
            CommunicationFactory(
                patient=owner,
                channel=Channel.EMAIL if i % 2 else Channel.SMS,
                status=Communication.Status.OPEN if i % 3 else Communication.Status.CLOSED,
                last_message_at=at
                - dt.timedelta(minutes=i // 2),  # pairs share a time: the id breaks the tie
            )
    CommunicationFactory(patient=None, is_unrecognized=True, last_message_at=at)
    expected = list(
        folder_communications(user=nurse, folder=folder, filters=filters).values_list("pk", flat=True)
    )
    assert expected
    assert every_page(user=nurse, folder=folder, filters=filters, limit=2) == expected


@pytest.mark.parametrize("id_limit", [1, 20_000], ids=["walked", "resolved from my messages"])
def test_sent_pages_walk_exactly_the_folder_newest_first(nurse, other_nurse, patient, monkeypatch, id_limit):
    """Sent is read from the user's own outbound messages on PostgreSQL (or walked when they sent in very many):
    page after page exactly the rows, in the order, that the folder's own selector gives — never a note, never
    someone else's message, never a communication the user may no longer see."""
    import datetime as dt

    from django.utils import timezone

    from inbox import selectors

    monkeypatch.setattr(selectors, "SEARCH_ID_LIMIT", id_limit)
    at = timezone.now()
    hidden = PatientFactory()
    for i in range(8):
        owner = hidden if i == 3 else patient
        communication = CommunicationFactory(patient=owner, last_message_at=at - dt.timedelta(minutes=i // 2))
        author = other_nurse if i == 5 else nurse
        MessageFactory(
            communication=communication,
            direction=Message.Direction.OUTBOUND,
            author=author,
            is_internal_note=i == 6,
        )
    expected = list(folder_communications(user=nurse, folder=Folder.SENT).values_list("pk", flat=True))
    assert len(expected) == 5  # not the hidden patient's, not the other nurse's, not the note
    assert every_page(user=nurse, folder=Folder.SENT, limit=2) == expected


def test_sent_pages_skip_what_i_may_no_longer_see_however_much_of_it_comes_first(nurse, patient):
    """What I sent to a patient I no longer see stays out of Sent, on every page, however much of it is newest."""
    import datetime as dt

    from django.utils import timezone

    at = timezone.now()
    hidden = PatientFactory()
    for i in range(20):
        owner = hidden if i < 13 else patient  # the 13 newest are a patient the nurse no longer sees
        communication = CommunicationFactory(patient=owner, last_message_at=at - dt.timedelta(minutes=i))
        MessageFactory(communication=communication, direction=Message.Direction.OUTBOUND, author=nurse)
    expected = list(folder_communications(user=nurse, folder=Folder.SENT).values_list("pk", flat=True))
    assert len(expected) == 7
    assert every_page(user=nurse, folder=Folder.SENT, limit=2) == expected
    assert folder_page(user=nurse, folder=Folder.SENT, limit=10).rows == list(
        folder_communications(user=nurse, folder=Folder.SENT)
    )


@pytest.mark.parametrize("folder", list(Folder))
def test_a_page_with_no_status_or_no_channel_chosen_is_empty_in_every_folder(folder, nurse, lead, patient):
    """Every chip of a group off: no rows, on every folder's own path (the care-team and search paths build SQL that
    an empty choice cannot be written into)."""
    CommunicationFactory(patient=patient, assignee=nurse)
    user = lead if folder.inbox == InboxKind.ALL_PATIENTS else nurse
    for filters in (FolderFilters(statuses=frozenset()), FolderFilters(channels=frozenset(), query="Lopez")):
        assert folder_page(user=user, folder=folder, filters=filters).rows == []
