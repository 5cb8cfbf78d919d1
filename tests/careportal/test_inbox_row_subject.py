"""Email rows lead with their subject (issue 14, item 9): an inbox of emails is scanned by subject, so an Email or
Secure Email row shows it as its own stronger line above the preview; SMS and chat rows show the preview alone."""

import re

import pytest
from django.urls import reverse

from inbox.folders import Folder
from inbox.models import Channel
from tests.factories import CommunicationFactory, SendingLineFactory, UnrecognizedCommunicationFactory

HX = {"HTTP_HX_REQUEST": "true"}
PREVIEW = "Hi, I have a question about my medication."


def row_html(client, communication) -> str:
    url = reverse("careportal:inbox_rows", args=[Folder.ALL_DIRECTED.inbox, Folder.ALL_DIRECTED.slug])
    if communication.is_unrecognized:
        url = reverse(
            "careportal:inbox_rows", args=[Folder.ALL_UNRECOGNIZED.inbox, Folder.ALL_UNRECOGNIZED.slug]
        )
    html = client.get(url, **HX).content.decode()
    found = re.search(rf'<li id="row-{communication.pk}".*?</li>', html, re.S)
    assert found, html
    return found.group(0)


def body_of(row: str) -> str:
    """The row's text lines in order (subject, snippet), as the eye meets them."""
    found = re.search(r'</time></span>(.*?)<span class="row-bottom">', row, re.S)
    assert found, row
    return re.sub(
        r'<span id="replying-\d+"[^>]*></span>', "", found.group(1)
    )  # the (empty) "is replying" marker


@pytest.mark.django_db
@pytest.mark.parametrize("channel", [Channel.EMAIL, Channel.SECURE_EMAIL])
def test_an_email_row_shows_its_subject_above_the_preview(client, lead, patient, channel):
    email = CommunicationFactory(patient=patient, channel=channel, subject="Lab results: <lipid> panel")
    client.force_login(lead)
    lines = body_of(row_html(client, email))
    assert lines.startswith('<span class="row-subject">Lab results: &lt;lipid&gt; panel</span>')
    assert lines.endswith(f'<span class="row-snippet">{PREVIEW}</span>')
    assert lines.count("Lab results") == 1  # not repeated in the context line


@pytest.mark.django_db
def test_an_unrecognized_email_row_shows_its_subject_too(client, lead):
    email = UnrecognizedCommunicationFactory(subject="New patient enquiry")
    client.force_login(lead)
    assert body_of(row_html(client, email)).startswith('<span class="row-subject">New patient enquiry</span>')


@pytest.mark.django_db
@pytest.mark.parametrize("channel", [Channel.SMS, Channel.CHAT])
def test_sms_and_chat_rows_show_the_preview_alone(client, lead, patient, channel):
    line = SendingLineFactory(label="Main clinic") if channel == Channel.SMS else None
    other = CommunicationFactory(patient=patient, channel=channel, subject="", sending_line=line)
    client.force_login(lead)
    row = row_html(client, other)
    assert "row-subject" not in row
    assert body_of(row) == f'<span class="row-snippet">{PREVIEW}</span>'
