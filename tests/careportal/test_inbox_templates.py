"""Message templates for the reply box: the published template for the channel, placeholders filled from the
patient and the user; drafts and other channels are not offered."""

import pytest
from django.urls import reverse

from designer.models import ConfigVersion
from inbox.models import Channel
from tests.factories import (
    CommunicationFactory,
    ConfigVersionFactory,
    MessageTemplateFactory,
    SendingLineFactory,
    UnrecognizedCommunicationFactory,
)


def fill_url(communication, template) -> str:
    return reverse("careportal:template_fill", args=[communication.pk, template.pk])


@pytest.fixture
def email(nurse, patient):
    return CommunicationFactory(patient=patient, assignee=nurse)


@pytest.fixture
def version(published_config):
    return published_config[0]


def test_a_template_is_filled_from_the_patient_and_the_user(client, nurse, email, version):
    template = MessageTemplateFactory(
        version=version,
        channel="email",
        name="Refill",
        subject="Refill for {{ patient.full_name }}",
        body="Hi {{ patient.first_name }}, this is {{ user.full_name }}. {{ unknown.thing }}",
    )
    client.force_login(nurse)
    response = client.get(fill_url(email, template))
    assert response.status_code == 200
    assert response.json() == {
        "name": "Refill",
        "subject": "Refill for Maria Lopez",
        "body": "Hi Maria, this is Nora Nurse. {{ unknown.thing }}",
    }


def test_templates_for_any_channel_fill_for_sms(client, nurse, patient, version):
    sms = CommunicationFactory(patient=patient, channel=Channel.SMS, sending_line=SendingLineFactory())
    template = MessageTemplateFactory(version=version, channel="any", body="Hi {{ patient.preferred_name }}")
    client.force_login(nurse)
    assert client.get(fill_url(sms, template)).json()["body"] == "Hi Maria"


def test_a_template_of_another_channel_is_404(client, nurse, email, version):
    template = MessageTemplateFactory(version=version, channel="sms")
    client.force_login(nurse)
    assert client.get(fill_url(email, template)).status_code == 404


def test_a_draft_template_is_404(client, nurse, email):
    draft = ConfigVersionFactory(status=ConfigVersion.Status.DRAFT, published_at=None)
    template = MessageTemplateFactory(version=draft, channel="email")
    client.force_login(nurse)
    assert client.get(fill_url(email, template)).status_code == 404


def test_an_unrecognized_communication_fills_patient_placeholders_with_nothing(client, nurse, version):
    unknown = UnrecognizedCommunicationFactory(assignee=nurse)
    template = MessageTemplateFactory(version=version, channel="email", body="Dear {{ patient.first_name }}")
    client.force_login(nurse)
    assert client.get(fill_url(unknown, template)).json()["body"] == "Dear "


def test_template_fill_by_a_user_without_access_is_404(client, other_nurse, email, version):
    template = MessageTemplateFactory(version=version, channel="email", body="Hi {{ patient.first_name }}")
    client.force_login(other_nurse)
    response = client.get(fill_url(email, template))
    assert response.status_code == 404 and b"Maria" not in response.content


def test_template_fill_rejects_post(client, nurse, email, version):
    template = MessageTemplateFactory(version=version, channel="email")
    client.force_login(nurse)
    assert client.post(fill_url(email, template)).status_code == 405


def test_template_fill_needs_sign_in(client, email, version):
    template = MessageTemplateFactory(version=version, channel="email")
    assert client.get(fill_url(email, template))["Location"].startswith(reverse("login"))
