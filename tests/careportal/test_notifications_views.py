"""The notification bell, its list, mark read / all read, the one route a click takes (Inbox Notifications on → the
Inbox, off → the patient's communication center), internal notes posted from the reply box and the @mention
autocomplete — each tried by the wrong method, anonymously and by users who may not."""

import pytest
from django.urls import reverse

from adminportal.models import FeatureSetting
from careportal.models import CareTeamMember
from inbox.models import Channel, Message, Notification
from tests.factories import (
    CommunicationFactory,
    FeatureSettingFactory,
    MessageFactory,
    NotificationFactory,
    UnrecognizedCommunicationFactory,
)

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def sms(patient, nurse):
    communication = CommunicationFactory(
        patient=patient, channel=Channel.SMS, counterpart="+15550102030", assignee=nurse
    )
    MessageFactory(communication=communication, body_text="My ankle is still swollen")
    return communication


@pytest.fixture
def notification(nurse, sms):
    return NotificationFactory(
        user=nurse, communication=sms, kind="assigned", text="Cara assigned you the SMS"
    )


def signed_in(client, user):
    client.force_login(user)
    return client


def notifications_off():
    FeatureSettingFactory(key=FeatureSetting.Key.INBOX_NOTIFICATIONS, is_enabled=False)


# --- The bell ---------------------------------------------------------------------------------------------------


def test_every_portal_page_has_the_bell_which_loads_its_count_and_list(client, nurse, sms, notification):
    NotificationFactory(user=nurse, communication=sms, text="Second one")
    NotificationFactory(user=nurse, communication=sms, text="Already seen", is_read=True)
    signed_in(client, nurse)
    for url in (reverse("careportal:home"), reverse("careportal:patients")):
        page = client.get(url).content.decode()
        assert 'data-testid="bell"' in page and 'id="bell-count"' in page
        assert 'hx-get="/notifications/" hx-trigger="load"' in page
        assert 'src="/static/js/notifications.js"' in page
    bell = client.get(reverse("careportal:notifications"), **HX).content.decode()
    assert 'data-testid="bell-count" data-count="2" hx-swap-oob="true"' in bell
    assert "Second one" in bell and "Already seen" in bell
    assert bell.count('class="bell-item is-unread"') == 2


def test_the_bell_counts_only_ones_own_notifications_about_visible_communications(
    client, nurse, other_nurse, sms, notification
):
    NotificationFactory(user=other_nurse, communication=sms, text="Not for Nora")
    hidden = CommunicationFactory()  # a patient Nora cannot see
    NotificationFactory(user=nurse, communication=hidden, text="About a stranger")
    bell = signed_in(client, nurse).get(reverse("careportal:notifications"), **HX).content.decode()
    assert 'data-count="1"' in bell
    assert "Not for Nora" not in bell and "About a stranger" not in bell


def test_no_bell_for_a_role_without_the_inbox(client, outsider):
    page = signed_in(client, outsider).get(reverse("careportal:home")).content.decode()
    assert "bell-count" not in page and "/notifications/" not in page


def test_the_list_partial_and_the_full_page(client, nurse, notification):
    signed_in(client, nurse)
    partial = client.get(reverse("careportal:notifications"), **HX)
    assert partial.status_code == 200
    html = partial.content.decode()
    assert 'id="bell-list"' in html and "Cara assigned you the SMS" in html
    assert 'id="bell-count"' in html and 'hx-swap-oob="true"' in html
    assert "is-unread" in html and "Just now" in html
    page = client.get(reverse("careportal:notifications"))
    assert page.status_code == 200
    assert "<h1>Notifications</h1>" in page.content.decode() and "1 unread" in page.content.decode()


def test_the_list_refuses_post(client, nurse):
    assert signed_in(client, nurse).post(reverse("careportal:notifications")).status_code == 405


def test_the_list_is_not_found_for_a_role_without_the_inbox(client, outsider):
    assert signed_in(client, outsider).get(reverse("careportal:notifications")).status_code == 404


@pytest.mark.parametrize(
    "name,args,method",
    [
        ("notifications", [], "get"),
        ("notifications_read_all", [], "post"),
        ("notification_read", ["N"], "post"),
        ("notification_open", ["N"], "get"),
    ],
)
def test_anonymous_is_sent_to_sign_in(client, notification, name, args, method):
    url = reverse(f"careportal:{name}", args=[notification.pk if a == "N" else a for a in args])
    response = getattr(client, method)(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    notification.refresh_from_db()
    assert not notification.is_read


# --- Mark read ----------------------------------------------------------------------------------------------


def test_mark_read(client, nurse, notification):
    response = signed_in(client, nurse).post(
        reverse("careportal:notification_read", args=[notification.pk]), **HX
    )
    assert response.status_code == 200
    notification.refresh_from_db()
    assert notification.is_read
    html = response.content.decode()
    assert 'data-count="0"' in html and "is-unread" not in html


def test_mark_read_without_htmx_returns_to_the_list(client, nurse, notification):
    response = signed_in(client, nurse).post(reverse("careportal:notification_read", args=[notification.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("careportal:notifications")


def test_mark_read_refuses_get(client, nurse, notification):
    response = signed_in(client, nurse).get(reverse("careportal:notification_read", args=[notification.pk]))
    assert response.status_code == 405
    notification.refresh_from_db()
    assert not notification.is_read


def test_someone_elses_notification_cannot_be_marked_read(client, other_nurse, notification):
    response = signed_in(client, other_nurse).post(
        reverse("careportal:notification_read", args=[notification.pk]), **HX
    )
    assert response.status_code == 404
    notification.refresh_from_db()
    assert not notification.is_read


def test_an_unknown_notification_is_not_found(client, nurse):
    assert (
        signed_in(client, nurse).post(reverse("careportal:notification_read", args=[999999])).status_code
        == 404
    )


def test_mark_all_read_marks_only_ones_own(client, nurse, other_nurse, sms, notification):
    NotificationFactory(user=nurse, communication=sms)
    theirs = NotificationFactory(user=other_nurse, communication=sms)
    response = signed_in(client, nurse).post(reverse("careportal:notifications_read_all"), **HX)
    assert response.status_code == 200 and 'data-count="0"' in response.content.decode()
    assert not Notification.objects.filter(user=nurse, is_read=False).exists()
    theirs.refresh_from_db()
    assert not theirs.is_read


def test_mark_all_read_refuses_get(client, nurse, notification):
    assert signed_in(client, nurse).get(reverse("careportal:notifications_read_all")).status_code == 405


# --- Opening a notification --------------------------------------------------------------------------------


def test_with_inbox_notifications_on_a_click_opens_the_communication_in_the_inbox(
    client, nurse, sms, notification
):
    response = signed_in(client, nurse).get(reverse("careportal:notification_open", args=[notification.pk]))
    assert response.status_code == 302
    assert response["Location"] == f"/inbox/my/assigned/?c={sms.pk}"
    notification.refresh_from_db()
    assert notification.is_read
    assert client.get(response["Location"]).status_code == 200


def test_with_inbox_notifications_off_a_click_opens_the_patients_communication_center(
    client, nurse, sms, patient, notification
):
    notifications_off()
    response = signed_in(client, nurse).get(reverse("careportal:notification_open", args=[notification.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("careportal:patient_communications", args=[patient.pk])
    notification.refresh_from_db()
    assert notification.is_read
    assert client.get(response["Location"]).status_code == 200


def test_an_unrecognized_communication_opens_in_the_inbox_even_with_the_setting_off(client, nurse):
    notifications_off()
    unknown = UnrecognizedCommunicationFactory(
        assignee=nurse, channel=Channel.SMS, counterpart="+15550107777"
    )
    notification = NotificationFactory(user=nurse, communication=unknown)
    response = signed_in(client, nurse).get(reverse("careportal:notification_open", args=[notification.pk]))
    assert response["Location"] == f"/inbox/my/assigned/?c={unknown.pk}"


def test_someone_elses_notification_cannot_be_opened(client, colleague, notification):
    response = signed_in(client, colleague).get(
        reverse("careportal:notification_open", args=[notification.pk])
    )
    assert response.status_code == 404
    notification.refresh_from_db()
    assert not notification.is_read


def test_a_notification_about_a_communication_one_can_no_longer_see_is_not_found(
    client, nurse, sms, notification
):
    sms.assignee = None
    sms.save()
    CareTeamMember.objects.filter(user=nurse).delete()
    response = signed_in(client, nurse).get(reverse("careportal:notification_open", args=[notification.pk]))
    assert response.status_code == 404
    assert b"Maria" not in response.content
    notification.refresh_from_db()
    assert not notification.is_read


def test_open_refuses_post(client, nurse, notification):
    assert (
        signed_in(client, nurse)
        .post(reverse("careportal:notification_open", args=[notification.pk]))
        .status_code
        == 405
    )


# --- Internal notes from the reply box ------------------------------------------------------------------------


def test_the_reply_box_offers_an_internal_note_tab(client, nurse, sms):
    page = signed_in(client, nurse).get(f"/inbox/my/assigned/?c={sms.pk}").content.decode()
    assert 'role="tab" id="note-tab-' in page and "Internal note" in page
    assert f'action="{reverse("careportal:communication_note", args=[sms.pk])}"' in page
    assert f'data-mention-url="{reverse("careportal:mention_options", args=[sms.pk])}"' in page


def test_posting_a_note_adds_it_to_the_conversation(client, nurse, colleague, sms):
    url = reverse("careportal:communication_note", args=[sms.pk])
    response = signed_in(client, nurse).post(url, {"body": "@cara please call her back"}, **HX)
    assert response.status_code == 200
    note = Message.objects.get(is_internal_note=True)
    assert note.author == nurse and note.communication == sms
    html = response.content.decode()
    assert f'id="message-{note.pk}"' in html and 'id="messages"' in html and 'hx-swap-oob="true"' in html
    assert '<span class="mention">@cara</span> please call her back' in html
    assert 'data-testid="note-label"' in html and "never sent to the patient" in html
    assert f'id="note-panel-{sms.pk}"' in html  # a fresh note box
    assert Notification.objects.get(user=colleague).kind == Notification.Kind.MENTION


def test_a_note_shows_distinctly_in_the_conversation(client, nurse, sms):
    from inbox.services import add_internal_note

    add_internal_note(user=nurse, communication=sms, body="Called her; coming Friday")
    page = signed_in(client, nurse).get(f"/inbox/my/assigned/?c={sms.pk}").content.decode()
    assert 'class="message is-outbound is-note"' in page and 'aria-label="Internal note"' in page
    assert "Called her; coming Friday" in page


def test_posting_a_note_without_htmx_redirects_back(client, nurse, sms):
    response = signed_in(client, nurse).post(
        reverse("careportal:communication_note", args=[sms.pk]),
        {"body": "Plain form", "next": "/inbox/my/sent/"},
    )
    assert response.status_code == 302 and response["Location"] == "/inbox/my/sent/"
    assert Message.objects.filter(is_internal_note=True, body_text="Plain form").exists()


def test_an_empty_note_is_refused_with_a_clear_error(client, nurse, sms):
    response = signed_in(client, nurse).post(
        reverse("careportal:communication_note", args=[sms.pk]), {"body": " "}, **HX
    )
    assert response.status_code == 422
    assert "Write the note before adding it." in response.content.decode()
    assert response["HX-Retarget"] == f"#note-panel-{sms.pk}"
    assert not Message.objects.filter(is_internal_note=True).exists()


def test_a_note_mentioning_someone_without_access_is_refused_and_the_draft_kept(
    client, nurse, other_nurse, sms
):
    response = signed_in(client, nurse).post(
        reverse("careportal:communication_note", args=[sms.pk]), {"body": "@other-nurse look"}, **HX
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "cannot see this communication" in html and ">@other-nurse look</textarea>" in html
    assert not Message.objects.filter(is_internal_note=True).exists()
    assert not Notification.objects.exists()


def test_a_note_refuses_get(client, nurse, sms):
    assert (
        signed_in(client, nurse).get(reverse("careportal:communication_note", args=[sms.pk])).status_code
        == 405
    )


@pytest.mark.parametrize("who", ["other_nurse", "outsider"])
def test_a_note_on_a_communication_one_cannot_see_is_not_found(client, request, sms, who):
    user = request.getfixturevalue(who)
    response = signed_in(client, user).post(
        reverse("careportal:communication_note", args=[sms.pk]), {"body": "x"}, **HX
    )
    assert response.status_code == 404
    assert not Message.objects.filter(is_internal_note=True).exists()


def test_anonymous_cannot_post_a_note(client, sms):
    response = client.post(reverse("careportal:communication_note", args=[sms.pk]), {"body": "x"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


# --- @mention autocomplete ---------------------------------------------------------------------------------------


def test_the_autocomplete_lists_only_colleagues_who_can_see_the_communication(
    client, nurse, colleague, lead, other_nurse, outsider, sms
):
    response = signed_in(client, nurse).get(
        reverse("careportal:mention_options", args=[sms.pk]), {"q": ""}, **HX
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-mention-username="cara"' in html and 'data-mention-username="lead"' in html
    assert 'data-mention-username="nurse"' in html
    assert "other-nurse" not in html and "outsider" not in html


def test_the_autocomplete_narrows_by_name_or_username(client, nurse, colleague, lead, sms):
    signed_in(client, nurse)
    url = reverse("careportal:mention_options", args=[sms.pk])
    html = client.get(url, {"q": "Col"}, **HX).content.decode()  # last name
    assert 'data-mention-username="cara"' in html and "lead" not in html
    html = client.get(url, {"q": "@le"}, **HX).content.decode()
    assert 'data-mention-username="lead"' in html and "cara" not in html
    html = client.get(url, {"q": "zzz"}, **HX).content.decode()
    assert "No colleague with access to this conversation matches" in html


@pytest.mark.parametrize("who", ["other_nurse", "outsider"])
def test_the_autocomplete_is_not_found_for_someone_who_cannot_see_the_communication(
    client, request, colleague, sms, who
):
    response = signed_in(client, request.getfixturevalue(who)).get(
        reverse("careportal:mention_options", args=[sms.pk]), {"q": "c"}, **HX
    )
    assert response.status_code == 404
    assert b"cara" not in response.content and b"Maria" not in response.content


def test_the_autocomplete_refuses_post(client, nurse, sms):
    assert (
        signed_in(client, nurse).post(reverse("careportal:mention_options", args=[sms.pk])).status_code == 405
    )


def test_a_notes_stored_html_is_rendered_through_an_allow_list(client, nurse, sms):
    MessageFactory(
        communication=sms, direction=Message.Direction.OUTBOUND, author=nurse, is_internal_note=True, delivery_status="",
        body_text="x", body_html='<p><span class="mention evil" onclick="x()">@cara</span><script>alert(1)</script><a href="https://x.example">link</a></p>',
    )  # fmt: skip
    page = signed_in(client, nurse).get(f"/inbox/my/assigned/?c={sms.pk}").content.decode()
    assert '<span class="mention">@cara</span>' in page
    assert "alert(1)" not in page and "onclick" not in page and "https://x.example" not in page


def test_a_note_can_be_added_to_an_unrecognized_communication_from_its_reply_box(client, nurse):
    unknown = UnrecognizedCommunicationFactory(
        assignee=nurse, channel=Channel.SMS, counterpart="+15550107777"
    )
    signed_in(client, nurse)
    page = client.get(f"/inbox/my/unrecognized/?c={unknown.pk}").content.decode()
    assert "Not linked to a patient yet." in page and f'id="note-panel-{unknown.pk}"' in page
    response = client.post(
        reverse("careportal:communication_note", args=[unknown.pk]), {"body": "Probably her husband"}, **HX
    )
    assert response.status_code == 200 and "Probably her husband" in response.content.decode()
    assert Message.objects.get(is_internal_note=True).communication == unknown
