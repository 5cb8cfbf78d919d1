"""The Inbox folder page, its list and rows partials and the folder counts: state in the URL, HTMX partials
versus full pages, folder semantics per inbox, filters and search, keyset pages, constant query counts."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from inbox.folders import Folder
from inbox.models import Channel, Communication
from inbox.selectors import folder_communications
from tests.factories import (
    CareTeamMemberFactory,
    CommunicationFactory,
    ContactFactory,
    MessageFactory,
    PatientFactory,
    SendingLineFactory,
    UnrecognizedCommunicationFactory,
)

HX = {"HTTP_HX_REQUEST": "true"}


def folder_url(folder: Folder, query: str = "") -> str:
    url = reverse("careportal:inbox_folder", args=[folder.inbox, folder.slug])
    return f"{url}?{query}" if query else url


def rows_url(folder: Folder, query: str = "") -> str:
    url = reverse("careportal:inbox_rows", args=[folder.inbox, folder.slug])
    return f"{url}?{query}" if query else url


def row_ids(response) -> list[int]:
    return [c.pk for c in response.context["rows"]]


# --- The page --------------------------------------------------------------------------------------------------


def test_inbox_redirects_to_the_first_folder_and_keeps_the_open_communication(client, nurse):
    client.force_login(nurse)
    response = client.get(reverse("careportal:inbox") + "?c=42")
    assert response.status_code == 302
    assert response["Location"] == folder_url(Folder.ASSIGNED_TO_ME, "c=42")


def test_each_folder_of_each_offered_inbox_renders_the_full_page(client, lead):
    client.force_login(lead)
    for folder in Folder:
        response = client.get(folder_url(folder))
        assert response.status_code == 200, folder
        html = response.content.decode()
        assert "<!doctype html>" in html
        assert 'id="folder-nav"' in html and 'id="inbox-list"' in html and 'id="conversation-pane"' in html
        assert response.context["state"].folder == folder


def test_folder_navigation_offers_only_the_inboxes_the_role_allows(client, nurse):
    client.force_login(nurse)
    html = client.get(folder_url(Folder.ASSIGNED_TO_ME)).content.decode()
    assert "My Inbox" in html and "Care Team Inbox" in html
    assert "All Patients Inbox" not in html


def test_a_folder_the_role_does_not_offer_is_404(client, nurse):
    client.force_login(nurse)
    assert client.get(folder_url(Folder.ALL_DIRECTED)).status_code == 404
    assert client.get(reverse("careportal:inbox_folder", args=["my", "nowhere"])).status_code == 404


def test_the_inbox_page_is_404_without_inbox_in_the_published_menu(client, outsider):
    client.force_login(outsider)
    assert client.get(folder_url(Folder.ASSIGNED_TO_ME)).status_code == 404
    assert client.get(rows_url(Folder.ASSIGNED_TO_ME), **HX).status_code == 404


def test_anonymous_visitors_are_sent_to_sign_in(client, db):
    for url in (
        folder_url(Folder.ASSIGNED_TO_ME),
        rows_url(Folder.ASSIGNED_TO_ME),
        reverse("careportal:inbox"),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_the_folder_page_rejects_post(client, nurse):
    client.force_login(nurse)
    assert client.post(folder_url(Folder.ASSIGNED_TO_ME)).status_code == 405
    assert client.post(rows_url(Folder.ASSIGNED_TO_ME), **HX).status_code == 405
    counts = reverse("careportal:inbox_counts", args=["my", "assigned"])
    assert client.post(counts, **HX).status_code == 405


def test_folder_semantics_reach_the_page(client, nurse, other_nurse, patient):
    mine = CommunicationFactory(patient=patient, assignee=nurse)
    primary_only = CommunicationFactory(patient=patient)
    other_patient = PatientFactory()
    CareTeamMemberFactory(patient=other_patient, user=nurse)
    team_only = CommunicationFactory(patient=other_patient)
    unrecognized = UnrecognizedCommunicationFactory()
    unrecognized.candidate_patients.add(patient)
    client.force_login(nurse)
    assert set(row_ids(client.get(folder_url(Folder.ASSIGNED_TO_ME)))) == {mine.pk}
    assert set(row_ids(client.get(folder_url(Folder.PRIMARY_CONTACT)))) == {mine.pk, primary_only.pk}
    assert set(row_ids(client.get(folder_url(Folder.CARE_TEAM_DIRECTED)))) == {
        mine.pk,
        primary_only.pk,
        team_only.pk,
    }
    assert set(row_ids(client.get(folder_url(Folder.CARE_TEAM_UNRECOGNIZED)))) == {unrecognized.pk}
    client.force_login(other_nurse)
    assert row_ids(client.get(folder_url(Folder.CARE_TEAM_DIRECTED))) == []


def test_each_row_shows_name_channel_snippet_times_assignee_and_open_age(client, nurse, patient):
    line = SendingLineFactory(label="Main clinic")
    sms = CommunicationFactory(
        patient=patient,
        assignee=nurse,
        channel=Channel.SMS,
        sending_line=line,
        last_message_preview="Can I move my appointment?",
        opened_at=timezone.now() - dt.timedelta(hours=3),
        last_message_at=timezone.now() - dt.timedelta(minutes=12),
    )
    mother = ContactFactory(patient=patient, first_name="Rosa", last_name="Lopez", relationship="mother")
    CommunicationFactory(patient=patient, contact=mother, assignee=nurse, status=Communication.Status.CLOSED)
    unknown = UnrecognizedCommunicationFactory(
        assignee=nurse,
        counterpart="+15550109999",
        channel=Channel.SMS,
        last_message_at=timezone.now() - dt.timedelta(hours=2),
    )
    unknown.candidate_patients.add(patient, PatientFactory())
    client.force_login(nurse)
    html = client.get(folder_url(Folder.ASSIGNED_TO_ME)).content.decode()
    assert "Maria Lopez" in html and "Main clinic" in html and "Can I move my appointment?" in html
    assert ">12m</time>" in html and 'title="' in html
    assert "3h</span>" in html  # open for three hours
    assert ">NN<" in html  # assignee initials
    assert "Rosa Lopez" in html and "for Maria Lopez" in html
    assert 'class="row is-closed' in html
    assert "+15550109999" in html and "2 matches" in html
    assert html.index(f'id="row-{sms.pk}"') < html.index(f'id="row-{unknown.pk}"')  # newest first


def test_every_folder_has_an_empty_state(client, lead):
    client.force_login(lead)
    for folder in Folder:
        html = client.get(folder_url(folder)).content.decode()
        assert 'class="rows-empty"' in html, folder


def test_a_search_without_results_offers_to_clear_it(client, nurse):
    client.force_login(nurse)
    html = client.get(folder_url(Folder.ASSIGNED_TO_ME, "q=zebra")).content.decode()
    assert "No communications match" in html and "Clear search and filters" in html


# --- Filters and search ---------------------------------------------------------------------------------------


@pytest.fixture
def mixed(nurse, patient):
    line = SendingLineFactory()
    return {
        "open_sms": CommunicationFactory(
            patient=patient, assignee=nurse, channel=Channel.SMS, sending_line=line
        ),
        "closed_email": CommunicationFactory(
            patient=patient, assignee=nurse, channel=Channel.EMAIL, status=Communication.Status.CLOSED
        ),
        "secure": CommunicationFactory(patient=patient, assignee=nurse, channel=Channel.SECURE_EMAIL),
        "chat": CommunicationFactory(patient=patient, channel=Channel.CHAT),
    }


def test_status_and_channel_filters_come_from_the_query_string(client, nurse, mixed):
    client.force_login(nurse)
    assert set(row_ids(client.get(folder_url(Folder.PRIMARY_CONTACT)))) == {c.pk for c in mixed.values()}
    open_only = row_ids(client.get(folder_url(Folder.PRIMARY_CONTACT, "status=open")))
    assert mixed["closed_email"].pk not in open_only and len(open_only) == 3
    email = row_ids(client.get(folder_url(Folder.PRIMARY_CONTACT, "channel=email")))
    assert set(email) == {mixed["closed_email"].pk, mixed["secure"].pk}
    sms_or_chat = row_ids(
        client.get(folder_url(Folder.PRIMARY_CONTACT, "channel=sms&channel=chat&status=open"))
    )
    assert set(sms_or_chat) == {mixed["open_sms"].pk, mixed["chat"].pk}


def test_unknown_filter_values_are_ignored_and_nothing_checked_means_all(client, nurse, mixed):
    client.force_login(nurse)
    response = client.get(folder_url(Folder.PRIMARY_CONTACT, "status=bogus&channel=fax"))
    assert len(row_ids(response)) == 4
    html = response.content.decode()
    assert 'name="status" value="open" checked' in html and 'name="channel" value="chat" checked' in html


def test_both_status_chips_off_show_no_rows_and_say_how_to_get_them_back(client, nurse, mixed):
    """Issue 14, item 5: the form sends an empty ``status`` beside its chips, so both chips off means none chosen —
    not everything while both chips look off."""
    client.force_login(nurse)
    response = client.get(folder_url(Folder.PRIMARY_CONTACT, "status="))
    assert row_ids(response) == []
    html = response.content.decode()
    assert 'name="status" value="open">' in html and 'name="status" value="closed">' in html  # both off
    assert 'type="hidden" name="status" value=""' in html
    assert "Choose Open, Closed or both to see communications" in html
    restore = folder_url(Folder.PRIMARY_CONTACT)
    assert f'href="{restore}" hx-get="{restore}"' in html and "Show Open and Closed" in html
    # As the filter form submits it (HTMX): no rows, the URL says so, and every folder counts none.
    form = "status=&channel=&channel=sms&channel=email&channel=chat&unassigned=&q="
    response = client.get(rows_url(Folder.PRIMARY_CONTACT, form), **HX)
    assert row_ids(response) == []
    assert "Choose Open, Closed or both" in response.content.decode()
    assert response["HX-Push-Url"] == folder_url(Folder.PRIMARY_CONTACT, "status=")
    counts_url = reverse("careportal:inbox_counts", args=["my", "primary-contact"]) + "?status="
    nav = client.get(counts_url, **HX).context["nav_groups"]
    assert {e["count"] for g in nav for e in g["folders"]} == {0}
    # The link restores both chips and every row.
    restored = client.get(restore, **HX)
    assert set(row_ids(restored)) == {c.pk for c in mixed.values()}
    restored_html = restored.content.decode()
    assert 'value="open" checked' in restored_html and 'value="closed" checked' in restored_html


def test_one_status_chip_on_is_sent_beside_the_empty_value(client, nurse, mixed):
    client.force_login(nurse)
    form = "status=&status=closed&channel=&channel=sms&channel=email&channel=chat"
    response = client.get(rows_url(Folder.PRIMARY_CONTACT, form), **HX)
    assert row_ids(response) == [mixed["closed_email"].pk]
    assert response["HX-Push-Url"] == folder_url(Folder.PRIMARY_CONTACT, "status=closed")


def test_every_channel_chip_off_shows_no_rows_and_keeps_the_other_filters_on_restore(client, nurse, mixed):
    client.force_login(nurse)
    response = client.get(folder_url(Folder.PRIMARY_CONTACT, "status=open&channel="))
    assert row_ids(response) == []
    html = response.content.decode()
    assert "Choose SMS, Email, Chat or several to see communications" in html
    assert f'href="{folder_url(Folder.PRIMARY_CONTACT, "status=open")}"' in html
    html = client.get(folder_url(Folder.PRIMARY_CONTACT, "status=&channel=")).content.decode()
    assert "Choose a status and a channel to see communications" in html
    assert f'href="{folder_url(Folder.PRIMARY_CONTACT)}"' in html


def test_unassigned_only_applies_to_shared_folders(client, nurse, mixed):
    client.force_login(nurse)
    care_team = row_ids(client.get(folder_url(Folder.CARE_TEAM_DIRECTED, "unassigned=1")))
    assert care_team == [mixed["chat"].pk]
    assert len(row_ids(client.get(folder_url(Folder.ASSIGNED_TO_ME, "unassigned=1")))) == 3
    html = client.get(folder_url(Folder.CARE_TEAM_DIRECTED)).content.decode()
    assert 'name="unassigned" value="1"' in html
    assert 'name="unassigned"' not in client.get(folder_url(Folder.ASSIGNED_TO_ME)).content.decode()


def test_search_finds_name_phone_email_and_text(client, nurse, patient):
    phone = CommunicationFactory(patient=patient, channel=Channel.SMS, counterpart="+15550102030")
    email = CommunicationFactory(patient=patient, counterpart="maria.l@mail.example")
    text = CommunicationFactory(patient=patient)
    MessageFactory(communication=text, body_text="My inhaler ran out")
    other = PatientFactory(first_name="Zed", last_name="Zimmer")
    CareTeamMemberFactory(patient=other, user=nurse)
    by_name = CommunicationFactory(patient=other)
    client.force_login(nurse)

    def found(term):
        return set(row_ids(client.get(folder_url(Folder.CARE_TEAM_DIRECTED), {"q": term})))

    assert found("(555) 010-2030") == {phone.pk}
    assert found("MARIA.L@mail.example") == {email.pk}
    assert found("inhaler") == {text.pk}
    assert found("Zimmer") == {by_name.pk}
    assert found("Zed Zimmer") == {by_name.pk}


def test_counts_equal_the_rows_of_each_folder_with_the_same_filters(client, lead, nurse, mixed):
    CareTeamMemberFactory(patient=mixed["chat"].patient, user=lead)
    client.force_login(lead)
    for query in ("", "status=open", "channel=email", "unassigned=1", "q=Lopez"):
        page = client.get(folder_url(Folder.ALL_DIRECTED, query))
        assert b"count-pending" in page.content  # the page asks for its counts as soon as it loads
        counts_url = reverse("careportal:inbox_counts", args=["all-patients", "directed"])
        response = client.get(f"{counts_url}?{query}", HTTP_HX_REQUEST="true")
        counts = {e["folder"]: e["count"] for g in response.context["nav_groups"] for e in g["folders"]}
        for folder, count in counts.items():
            page = client.get(folder_url(folder, query))
            assert count == len(row_ids(page)), (folder, query)


# --- HTMX partials ------------------------------------------------------------------------------------------------


def test_htmx_folder_request_gets_the_list_and_fresh_counts_and_pushes_the_canonical_url(
    client, nurse, mixed
):
    client.force_login(nurse)
    current = "http://testserver" + folder_url(Folder.CARE_TEAM_DIRECTED, f"c={mixed['chat'].pk}")
    response = client.get(
        folder_url(Folder.PRIMARY_CONTACT, "status=open&status=closed&channel=sms"),
        HTTP_HX_CURRENT_URL=current,
        **HX,
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "<!doctype html>" not in html
    assert html.lstrip().startswith('<section id="inbox-list"')
    assert 'id="folder-nav"' in html and 'hx-swap-oob="true"' in html
    assert response["HX-Push-Url"] == folder_url(Folder.PRIMARY_CONTACT, f"channel=sms&c={mixed['chat'].pk}")
    assert "HX-Request" in response["Vary"]


def test_rows_partial_replaces_the_rows_after_a_filter_change(client, nurse, mixed):
    client.force_login(nurse)
    response = client.get(rows_url(Folder.PRIMARY_CONTACT, "channel=chat&q="), **HX)
    html = response.content.decode()
    assert html.lstrip().startswith("<li")
    assert f'id="row-{mixed["chat"].pk}"' in html and f'id="row-{mixed["open_sms"].pk}"' not in html
    assert 'id="folder-nav"' in html  # counts follow the filters
    assert response["HX-Push-Url"] == folder_url(Folder.PRIMARY_CONTACT, "channel=chat")


def test_rows_partial_without_htmx_redirects_to_the_folder_page(client, nurse):
    client.force_login(nurse)
    response = client.get(rows_url(Folder.ASSIGNED_TO_ME, "status=open"))
    assert response.status_code == 302
    assert response["Location"] == folder_url(Folder.ASSIGNED_TO_ME, "status=open")


def test_keyset_pages_load_more_rows_without_repeats(client, nurse, patient):
    now = timezone.now()
    comms = [
        CommunicationFactory(patient=patient, last_message_at=now - dt.timedelta(minutes=i))
        for i in range(53)
    ]
    client.force_login(nurse)
    first = client.get(folder_url(Folder.PRIMARY_CONTACT))
    assert len(row_ids(first)) == 50
    cursor = first.context["next_cursor"]
    assert f"cursor={cursor}" in first.content.decode()
    more = client.get(rows_url(Folder.PRIMARY_CONTACT, f"cursor={cursor}"), **HX)
    assert row_ids(more) == [c.pk for c in comms[50:]]
    assert more.context["next_cursor"] is None
    assert "folder-nav" not in more.content.decode()
    assert "HX-Push-Url" not in more


def test_a_malformed_cursor_is_a_clear_400(client, nurse):
    client.force_login(nurse)
    response = client.get(rows_url(Folder.ASSIGNED_TO_ME, "cursor=garbage"), **HX)
    assert response.status_code == 400


def test_counts_partial_uses_the_same_selector_and_filters(client, nurse, mixed):
    client.force_login(nurse)
    url = reverse("careportal:inbox_counts", args=["my", "primary-contact"]) + "?status=closed"
    response = client.get(url, **HX)
    html = response.content.decode()
    assert html.lstrip().startswith('<nav id="folder-nav"')
    expected = folder_communications(
        user=nurse, folder=Folder.PRIMARY_CONTACT, filters=response.context["state"].filters
    ).count()
    assert f'data-count="my/primary-contact"><span class="visually-hidden">, </span>{expected}<' in html
    assert client.get(url).status_code == 302


# --- Query counts --------------------------------------------------------------------------------------------------


def queries_for(client, url, **extra) -> int:
    with CaptureQueriesContext(connection) as context:
        assert client.get(url, **extra).status_code == 200
    return len(context.captured_queries)


@pytest.mark.parametrize(
    ("user_name", "bound"),
    [("nurse", 14), ("lead", 24)],
)
def test_folder_page_list_rows_and_counts_run_a_constant_number_of_queries(
    client, request, patient, user_name, bound, django_assert_max_num_queries, warm_caches
):
    user = request.getfixturevalue(user_name)
    line = SendingLineFactory()

    def add(n):
        for _ in range(n):
            contact = ContactFactory(patient=patient)
            CommunicationFactory(
                patient=patient, contact=contact, assignee=user, channel=Channel.SMS, sending_line=line
            )
            unknown = UnrecognizedCommunicationFactory(assignee=user)
            unknown.candidate_patients.add(patient)

    client.force_login(user)
    warm_caches()
    urls = [
        (folder_url(Folder.ASSIGNED_TO_ME), {}),
        (folder_url(Folder.ASSIGNED_TO_ME), HX),
        (rows_url(Folder.ASSIGNED_TO_ME), HX),
        (reverse("careportal:inbox_counts", args=["my", "assigned"]), HX),
    ]
    add(3)
    few = [queries_for(client, url, **extra) for url, extra in urls]
    add(27)
    many = [queries_for(client, url, **extra) for url, extra in urls]
    assert few == many
    for url, extra in urls:
        with django_assert_max_num_queries(bound):
            client.get(url, **extra)
