"""Opening a communication: the conversation partial (audited), its deep link, the header, messages and row
partials, sanitised message HTML, attachment downloads, and the access rule on every one of them."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from inbox.folders import Folder
from inbox.models import AuditEvent, Channel, Message
from tests.factories import (
    AttachmentFactory,
    CommunicationFactory,
    ContactFactory,
    DocumentFactory,
    MessageFactory,
    MessageTemplateFactory,
    SendingLineFactory,
    UnrecognizedCommunicationFactory,
)

HX = {"HTTP_HX_REQUEST": "true"}


def url(name, *args):
    return reverse(f"careportal:{name}", args=args)


def folder_url(folder: Folder, query: str = "") -> str:
    path = reverse("careportal:inbox_folder", args=[folder.inbox, folder.slug])
    return f"{path}?{query}" if query else path


@pytest.fixture
def communication(nurse, patient):
    line = SendingLineFactory(label="Main clinic", number="+15550100001")
    communication = CommunicationFactory(
        patient=patient, assignee=nurse, channel=Channel.SMS, sending_line=line, counterpart="+15550102030"
    )
    MessageFactory(communication=communication, body_text="I feel dizzy", sender_address="+15550102030")
    MessageFactory(
        communication=communication,
        direction=Message.Direction.OUTBOUND,
        author=nurse,
        body_text="How often?",
        delivery_status=Message.DeliveryStatus.DELIVERED,
    )
    return communication


# --- Open ---------------------------------------------------------------------------------------------------------


def test_opening_a_communication_renders_the_conversation_and_is_audited(client, nurse, communication):
    client.force_login(nurse)
    response = client.get(url("communication", communication.pk), HTTP_REMOTE_ADDR="10.0.0.9", **HX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<!doctype html>" not in html
    assert "Maria Lopez" in html and "Main clinic" in html and "SMS" in html
    assert "I feel dizzy" in html and "How often?" in html
    assert "is-inbound" in html and "is-outbound" in html and "Delivered" in html
    assert 'id="reply-box"' in html and 'id="conversation-header"' in html
    event = AuditEvent.objects.get(action=AuditEvent.Action.COMMUNICATION_VIEWED)
    assert (event.actor, event.communication, event.patient) == (nurse, communication, communication.patient)


def test_the_patient_panel_is_loaded_by_its_own_url(client, nurse, communication):
    client.force_login(nurse)
    html = client.get(url("communication", communication.pk), **HX).content.decode()
    panel = reverse("careportal:patient_panel", args=[communication.patient_id])
    assert f'hx-get="{panel}" hx-trigger="load"' in html


def test_a_conversation_url_without_htmx_redirects_to_a_folder_that_opens_it(client, nurse, communication):
    client.force_login(nurse)
    response = client.get(url("communication", communication.pk))
    assert response.status_code == 302
    assert response["Location"] == folder_url(Folder.ASSIGNED_TO_ME, f"c={communication.pk}")
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.COMMUNICATION_VIEWED).exists()


def test_a_deep_link_renders_the_folder_with_the_conversation_open_and_audits_it(
    client, nurse, communication
):
    client.force_login(nurse)
    response = client.get(folder_url(Folder.PRIMARY_CONTACT, f"c={communication.pk}"))
    html = response.content.decode()
    assert "<!doctype html>" in html and "I feel dizzy" in html
    assert f'<li id="row-{communication.pk}" class="row is-selected"' in html
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.COMMUNICATION_VIEWED, communication=communication
    ).exists()


def test_an_unrecognized_deep_link_prefers_the_care_team_unrecognized_folder(client, nurse, patient):
    unknown = UnrecognizedCommunicationFactory()
    unknown.candidate_patients.add(patient)
    client.force_login(nurse)
    response = client.get(url("communication", unknown.pk))
    assert response["Location"] == folder_url(Folder.CARE_TEAM_UNRECOGNIZED, f"c={unknown.pk}")


def test_header_messages_and_row_partials_are_served_on_their_own_urls(client, nurse, communication):
    client.force_login(nurse)
    header = client.get(url("communication_header", communication.pk), **HX).content.decode()
    assert header.lstrip().startswith('<header id="conversation-header"') and "Assign" in header
    messages = client.get(url("communication_messages", communication.pk), **HX).content.decode()
    assert messages.lstrip().startswith('<div id="messages"') and "I feel dizzy" in messages
    current = "http://testserver" + folder_url(Folder.PRIMARY_CONTACT, f"status=open&c={communication.pk}")
    row = client.get(url("communication_row", communication.pk), HTTP_HX_CURRENT_URL=current, **HX)
    html = row.content.decode()
    assert html.lstrip().startswith(f'<li id="row-{communication.pk}"')
    assert "is-selected" in html
    assert folder_url(Folder.PRIMARY_CONTACT, f"status=open&amp;c={communication.pk}") in html
    for name in ("communication_header", "communication_messages", "communication_row"):
        assert client.get(url(name, communication.pk)).status_code == 302


def test_contact_communications_name_the_contact_and_the_patient(client, nurse, patient):
    mother = ContactFactory(patient=patient, first_name="Rosa", last_name="Lopez", relationship="mother")
    communication = CommunicationFactory(patient=patient, contact=mother, assignee=nurse)
    client.force_login(nurse)
    html = client.get(url("communication", communication.pk), **HX).content.decode()
    assert "via Rosa Lopez (mother)" in html
    assert "Mother of Maria Lopez" in html


def test_an_unrecognized_conversation_offers_link_first_and_a_text_reply(client, nurse, patient):
    unknown = UnrecognizedCommunicationFactory(assignee=nurse, counterpart="who@mail.example")
    unknown.candidate_patients.add(patient)
    client.force_login(nurse)
    html = client.get(url("communication", unknown.pk), **HX).content.decode()
    assert "Not linked to a patient yet." in html
    assert url("communication_link", unknown.pk) in html
    # Item 16: a text reply to the raw address, confirmed on send; nothing that needs a patient.
    assert 'id="reply-form"' in html and 'aria-label="Email to who@mail.example"' in html
    assert "Attach a file" not in html and "Use a template" not in html and "data-secure-toggle" not in html
    assert "1 possible patient" in html


def test_secure_messages_are_marked(client, nurse, patient):
    communication = CommunicationFactory(patient=patient, channel=Channel.SECURE_EMAIL, assignee=nurse)
    MessageFactory(communication=communication, is_secure=True, body_text="Results inside")
    client.force_login(nurse)
    html = client.get(url("communication", communication.pk), **HX).content.decode()
    assert "secure-marker" in html and "Secure message" in html
    assert 'name="is_secure" data-secure-toggle checked' in html
    assert "Send securely" in html


def test_script_in_message_html_never_reaches_the_page(client, nurse, patient):
    communication = CommunicationFactory(patient=patient, assignee=nurse)
    MessageFactory(
        communication=communication,
        body_html='<p onclick="steal()">Hi</p><script>alert("x")</script><img src=x onerror=alert(1)>',
    )
    client.force_login(nurse)
    html = client.get(url("communication", communication.pk), **HX).content.decode()
    assert "<p>Hi</p>" in html
    assert "<script>alert" not in html and "onerror" not in html and "onclick" not in html


def test_messages_show_local_day_dividers_times_and_escaped_text(client, nurse, patient):
    communication = CommunicationFactory(patient=patient, assignee=nurse, counterpart="maria@mail.example")
    late = dt.datetime(2026, 3, 2, 4, 30, tzinfo=dt.UTC)  # 22:30 on March 1 in Chicago
    early = dt.datetime(2026, 3, 2, 15, 5, tzinfo=dt.UTC)  # 09:05 on March 2
    first = MessageFactory(communication=communication, body_text="<b>one</b>\r\ntwo", sender_name="")
    second = MessageFactory(
        communication=communication, direction=Message.Direction.OUTBOUND, author=None, body_text="ok"
    )
    Message.objects.filter(pk=first.pk).update(created_at=late, sender_address="")
    Message.objects.filter(pk=second.pk).update(created_at=early)
    nurse.time_zone = "America/Chicago"  # times and days are the viewer's
    nurse.save(update_fields=["time_zone"])
    client.force_login(nurse)
    html = client.get(url("communication_messages", communication.pk), **HX).content.decode()
    assert html.count('class="day-divider"') == 2
    assert "<span>Sunday, March 1, 2026</span>" in html and "<span>Monday, March 2, 2026</span>" in html
    assert html.index("March 1, 2026") < html.index(f'id="message-{first.pk}"') < html.index("March 2, 2026")
    assert (
        '<time class="message-time" datetime="2026-03-01T22:30:00-06:00"' in html
        and ">10:30 PM</time>" in html
    )
    assert ">9:05 AM</time>" in html
    assert "&lt;b&gt;one&lt;/b&gt;<br>two" in html  # escaped, newlines kept
    # with no sender name or address on the message, the communication's counterpart names the sender
    assert '<span class="message-author">maria@mail.example</span>' in html
    assert '<span class="message-author">Care team</span>' in html  # a send with no author (an automation)


def test_reply_box_offers_templates_for_the_channel_documents_and_emoji(
    client, nurse, communication, published_config
):
    version, _ = published_config
    MessageTemplateFactory(version=version, name="SMS reminder", channel="sms")
    MessageTemplateFactory(version=version, name="Email letter", channel="email")
    MessageTemplateFactory(version=version, name="Either", channel="any")
    DocumentFactory(patient=communication.patient, name="care-plan.pdf")
    client.force_login(nurse)
    html = client.get(url("communication", communication.pk), **HX).content.decode()
    assert "SMS reminder" in html and "Either" in html and "Email letter" not in html
    assert "care-plan.pdf" in html
    assert 'data-emoji="🙂"' in html
    assert "From Main clinic" in html
    assert (
        "Text formatting" not in html and "Secure" not in html.split('id="reply-box"')[1].split("</form>")[0]
    )


def test_email_reply_box_has_formatting_and_secure_toggle(client, nurse, patient):
    communication = CommunicationFactory(patient=patient, assignee=nurse)
    client.force_login(nurse)
    html = client.get(url("communication", communication.pk), **HX).content.decode()
    assert 'aria-label="Text formatting"' in html
    assert 'contenteditable="true"' in html and 'name="body_html"' in html
    assert 'name="is_secure"' in html
    assert "Send and Close" in html and "Send and keep Open" in html


# --- Who may not ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["communication", "communication_header", "communication_messages", "communication_row"]
)
def test_a_user_without_access_gets_404_with_no_patient_data(client, other_nurse, communication, name):
    client.force_login(other_nurse)
    for extra in (HX, {}):
        response = client.get(url(name, communication.pk), **extra)
        assert response.status_code == 404
        assert b"Lopez" not in response.content and b"dizzy" not in response.content
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.COMMUNICATION_VIEWED).exists()


def test_a_deep_link_to_a_communication_the_user_may_not_see_is_404(client, other_nurse, communication):
    client.force_login(other_nurse)
    response = client.get(folder_url(Folder.ASSIGNED_TO_ME, f"c={communication.pk}"))
    assert response.status_code == 404
    assert b"Lopez" not in response.content


def test_an_unknown_communication_is_404(client, nurse, db):
    client.force_login(nurse)
    assert client.get(url("communication", 999999), **HX).status_code == 404


def test_conversation_partials_reject_post(client, nurse, communication):
    client.force_login(nurse)
    for name in ("communication", "communication_header", "communication_messages", "communication_row"):
        assert client.post(url(name, communication.pk), **HX).status_code == 405


def test_conversation_needs_sign_in(client, communication):
    response = client.get(url("communication", communication.pk), **HX)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


# --- Attachments ------------------------------------------------------------------------------------------------


@pytest.fixture
def attachment(communication):
    message = communication.messages.first()
    document = DocumentFactory(patient=communication.patient, name="lab-results.pdf")
    return AttachmentFactory(message=message, document=document, filename="lab-results.pdf")


def test_attachment_download_is_a_nosniff_attachment_and_audited(client, nurse, communication, attachment):
    client.force_login(nurse)
    response = client.get(url("attachment_download", communication.pk, attachment.pk))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert "lab-results.pdf" in response["Content-Disposition"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"] == "application/pdf"
    assert b"".join(response.streaming_content) == b"%PDF-1.4 synthetic"
    event = AuditEvent.objects.get(action=AuditEvent.Action.ATTACHMENT_DOWNLOADED)
    assert (event.actor, event.communication, event.object_id) == (nurse, communication, str(attachment.pk))


def test_an_unsafe_attachment_type_downloads_as_octet_stream(client, nurse, communication, attachment):
    attachment.content_type = "text/html"
    attachment.save(update_fields=["content_type"])
    client.force_login(nurse)
    response = client.get(url("attachment_download", communication.pk, attachment.pk))
    assert response["Content-Type"] == "application/octet-stream"


def test_attachment_download_is_404_for_a_user_without_access_and_not_audited(
    client, other_nurse, communication, attachment
):
    client.force_login(other_nurse)
    response = client.get(url("attachment_download", communication.pk, attachment.pk))
    assert response.status_code == 404 and b"Lopez" not in response.content
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.ATTACHMENT_DOWNLOADED).exists()


def test_an_attachment_of_another_communication_is_404(client, nurse, communication, attachment, patient):
    elsewhere = CommunicationFactory(patient=patient, assignee=nurse)
    client.force_login(nurse)
    assert client.get(url("attachment_download", elsewhere.pk, attachment.pk)).status_code == 404


def test_attachment_download_rejects_post(client, nurse, communication, attachment):
    client.force_login(nurse)
    assert client.post(url("attachment_download", communication.pk, attachment.pk)).status_code == 405


def test_attachment_links_are_listed_on_their_message(client, nurse, communication, attachment):
    client.force_login(nurse)
    html = client.get(url("communication", communication.pk), **HX).content.decode()
    assert url("attachment_download", communication.pk, attachment.pk) in html and "lab-results.pdf" in html


# --- Query counts --------------------------------------------------------------------------------------------------


def test_opening_a_conversation_runs_a_constant_number_of_queries(
    client, nurse, patient, django_assert_max_num_queries, warm_caches
):
    communication = CommunicationFactory(patient=patient, assignee=nurse)

    def add(n):
        for _ in range(n):
            message = MessageFactory(
                communication=communication, author=nurse, direction=Message.Direction.OUTBOUND
            )
            AttachmentFactory(message=message)

    def queries():
        with CaptureQueriesContext(connection) as context:
            assert client.get(url("communication", communication.pk), **HX).status_code == 200
        return len(context.captured_queries)

    client.force_login(nurse)
    add(3)
    warm_caches()
    few = queries()
    add(27)
    assert queries() == few
    with django_assert_max_num_queries(12):
        client.get(url("communication", communication.pk), **HX)
    with django_assert_max_num_queries(20):
        client.get(folder_url(Folder.ASSIGNED_TO_ME, f"c={communication.pk}"))
    with django_assert_max_num_queries(8):
        client.get(url("communication_messages", communication.pk), **HX)
