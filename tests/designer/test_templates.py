"""Message templates in the draft: name, channel, subject for email, body with placeholders; unknown placeholders
are refused when saved; the live preview fills placeholders from a sample patient."""

import pytest
from django.urls import reverse

from designer import services
from designer.models import MessageTemplate, TemplateChannel
from designer.selectors import published_templates
from tests.factories import MessageTemplateFactory


@pytest.fixture
def draft(designer, published_config):
    version, _ = published_config
    MessageTemplateFactory(
        version=version, key="greeting", name="Greeting", body="Hello {{ patient.first_name }}"
    )
    return services.open_draft(user=designer)[0]


def test_the_new_template_page_renders_with_a_preview(client, designer, draft):
    client.force_login(designer)
    response = client.get(reverse("designer:template_new"))
    assert response.status_code == 200
    assert b'data-testid="template-preview"' in response.content
    assert b"{{ patient.first_name }}" in response.content  # the placeholder list


def test_creating_a_template_saves_it_in_the_draft_only(client, designer, draft):
    client.force_login(designer)

    response = client.post(
        reverse("designer:template_new"),
        {
            "revision": draft.revision,
            "name": "Lab results ready",
            "channel": "email",
            "subject": "Your results, {{ patient.first_name }}",
            "body": "Hello {{ patient.preferred_name }},\r\nyour results are in.\r\n{{ user.full_name }}",
        },
    )

    assert response.status_code == 302
    template = draft.templates.get(name="Lab results ready")
    assert template.key == "lab-results-ready"
    assert template.channel == TemplateChannel.EMAIL
    assert template.body == "Hello {{ patient.preferred_name }},\nyour results are in.\n{{ user.full_name }}"
    assert not published_templates().filter(name="Lab results ready").exists()


def test_unknown_placeholders_are_refused_with_a_clear_error(client, designer, draft):
    client.force_login(designer)

    response = client.post(
        reverse("designer:template_new"),
        {
            "revision": draft.revision,
            "name": "Bad",
            "channel": "sms",
            "body": "Hi {{ patient.ssn }}, your code is {{ code }}",
        },
    )

    assert response.status_code == 200
    content = response.content.decode()
    assert "Unknown placeholders “{{ patient.ssn }}”, “{{ code }}”." in content
    assert not MessageTemplate.objects.filter(name="Bad").exists()
    draft.refresh_from_db()
    assert draft.revision == services.open_draft_version().revision  # nothing was claimed


def test_an_unknown_placeholder_in_the_subject_is_refused(designer, draft):
    with pytest.raises(services.InvalidChange) as refused:
        services.save_template(
            user=designer,
            draft=draft,
            revision=draft.revision,
            key=None,
            name="Subject",
            channel="email",
            subject="For {{ patient.dob }}",
            body="Hi",
        )
    assert refused.value.field == "subject"
    assert "“{{ patient.dob }}”" in refused.value.message


def test_an_email_template_needs_a_subject(client, designer, draft):
    client.force_login(designer)
    response = client.post(
        reverse("designer:template_new"),
        {"revision": draft.revision, "name": "No subject", "channel": "email", "body": "Hi"},
    )
    assert response.status_code == 200
    assert b"An email template needs a subject." in response.content
    assert not draft.templates.filter(name="No subject").exists()


def test_a_duplicate_template_name_is_refused(client, designer, draft):
    client.force_login(designer)
    response = client.post(
        reverse("designer:template_new"),
        {"revision": draft.revision, "name": "greeting", "channel": "any", "body": "Hi"},
    )
    assert response.status_code == 200
    assert "The draft already has a template called “greeting”." in response.content.decode()


def test_editing_a_template_keeps_its_key(client, designer, draft):
    client.force_login(designer)
    response = client.post(
        reverse("designer:template_edit", args=["greeting"]),
        {
            "revision": draft.revision,
            "name": "Warm greeting",
            "channel": "sms",
            "body": "Hi {{ patient.first_name }}!",
        },
    )
    assert response.status_code == 302
    template = draft.templates.get(key="greeting")
    assert (template.name, template.channel, template.body) == (
        "Warm greeting",
        "sms",
        "Hi {{ patient.first_name }}!",
    )


def test_removing_a_template(client, designer, draft):
    client.force_login(designer)
    response = client.post(
        reverse("designer:template_remove", args=["greeting"]), {"revision": draft.revision}
    )
    assert response.status_code == 302
    assert not draft.templates.filter(key="greeting").exists()


def test_the_preview_fills_placeholders_from_a_sample_patient_and_the_designer(client, designer, draft):
    client.force_login(designer)
    response = client.post(
        reverse("designer:template_preview"),
        {
            "channel": "any",
            "subject": "For {{ patient.full_name }}",
            "body": "Hi {{ patient.first_name }}, {{ user.full_name }}",
        },
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    content = response.content.decode()
    assert "For Maria Lopez" in content
    assert "Hi Maria, Devin Shah" in content
    assert "<html" not in content  # a partial


def test_the_preview_warns_about_unknown_placeholders(client, designer, draft):
    client.force_login(designer)
    response = client.post(
        reverse("designer:template_preview"), {"channel": "sms", "body": "Hi {{ patient.ssn }}"}
    )
    assert b"Unknown placeholder" in response.content
    assert b"patient.ssn" in response.content
