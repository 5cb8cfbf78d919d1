"""A team lead opens a patient from Patients, reads the profile and panel, copies the email, browses the
communication center and an encounter, and edits the preferred language."""

import datetime as dt
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from careportal.models import Encounter, Patient
from inbox.models import AuditEvent, Channel, Communication
from tests.factories import (
    CareTeamMemberFactory,
    CommunicationFactory,
    ContactFactory,
    DocumentFactory,
    EncounterFactory,
    InboundAddressFactory,
    PatientContactMethodFactory,
    SendingLineFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL = "maria.lopez@mail.example"


@pytest.fixture
def maria(patient, nurse):
    """``patient`` with the record a care team would have: contact methods, family, team, visits, messages."""
    patient.preferred_name = ""
    patient.birth_date = dt.date(1984, 6, 12)
    patient.gender_identity = "Woman"
    patient.pronouns = "she/her"
    patient.time_zone = "America/Chicago"
    patient.address_line1 = "1420 W Addison St"
    patient.city, patient.state, patient.postal_code = "Chicago", "IL", "60613"
    patient.save()
    PatientContactMethodFactory(
        patient=patient, kind="phone", value="+15550102030", label="mobile", is_primary=True, is_verified=True
    )
    PatientContactMethodFactory(
        patient=patient, kind="phone", value="+15550104411", label="home", is_opted_out=True
    )
    PatientContactMethodFactory(patient=patient, kind="email", value=EMAIL, label="personal", is_primary=True)
    ContactFactory(
        patient=patient,
        first_name="Rosa",
        last_name="Lopez",
        relationship="mother",
        phone="+15550107788",
        email="rosa.lopez@mail.example",
    )
    doctor = UserFactory(username="dr-okafor", first_name="Ada", last_name="Okafor", title="MD")
    coordinator = UserFactory(username="coord-kim", first_name="Jin", last_name="Kim")
    CareTeamMemberFactory(patient=patient, user=doctor, team_role="Primary care physician")
    CareTeamMemberFactory(patient=patient, user=coordinator, team_role="Care coordinator")
    nurse.care_teams.filter(patient=patient).update(team_role="Care nurse")

    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    EncounterFactory(
        patient=patient,
        title="Diabetes follow-up",
        encounter_type=Encounter.Type.TELEHEALTH,
        starts_at=now + dt.timedelta(days=2, hours=3),
        provider=doctor,
        location="Video visit",
        notes="Review glucose log and adjust insulin dose.",
    )
    EncounterFactory(
        patient=patient,
        title="Nurse check-in call",
        encounter_type=Encounter.Type.PHONE_CALL,
        starts_at=now + dt.timedelta(days=9),
        provider=nurse,
    )
    EncounterFactory(
        patient=patient,
        title="Annual physical",
        starts_at=now - dt.timedelta(days=20),
        provider=doctor,
        status=Encounter.Status.COMPLETED,
        location="Lakeview Clinic, Room 4",
    )
    EncounterFactory(
        patient=patient,
        title="Lab draw",
        starts_at=now - dt.timedelta(days=41),
        status=Encounter.Status.NO_SHOW,
        location="Lakeview Lab",
    )
    EncounterFactory(
        patient=patient,
        title="Eye exam",
        starts_at=now - dt.timedelta(days=90),
        status=Encounter.Status.CANCELLED,
    )
    DocumentFactory(patient=patient, name="A1C-results-2024-05.pdf", uploaded_by=doctor, size=48_213)
    DocumentFactory(patient=patient, name="insurance-card.jpg", content_type="image/jpeg", size=312_400)

    line = SendingLineFactory(number="+15550100001", label="Care line")
    address = InboundAddressFactory(address="care@clinic.example", label="Care team inbox")
    samples = [
        (Channel.SMS, "", "Can I take the new pill with food?", Communication.Status.OPEN, nurse, 25, "in"),
        (
            Channel.EMAIL,
            "Lab results question",
            "Thanks, I'll bring the log on Tuesday.",
            Communication.Status.OPEN,
            doctor,
            180,
            "in",
        ),
        (
            Channel.SECURE_EMAIL,
            "Your visit summary",
            "Please find your visit summary attached.",
            Communication.Status.CLOSED,
            doctor,
            60 * 30,
            "out",
        ),
        (Channel.CHAT, "", "Great, see you then!", Communication.Status.CLOSED, None, 60 * 24 * 6, "in"),
        (
            Channel.SMS,
            "",
            "Reminder: telehealth visit tomorrow at 10am.",
            Communication.Status.CLOSED,
            nurse,
            60 * 24 * 12,
            "out",
        ),
    ]
    for channel, subject, preview, status, assignee, minutes_ago, direction in samples:
        CommunicationFactory(
            patient=patient,
            channel=channel,
            subject=subject,
            last_message_preview=preview,
            last_message_direction=direction,
            status=status,
            assignee=assignee,
            sending_line=line if channel == Channel.SMS else None,
            inbound_address=address if channel in (Channel.EMAIL, Channel.SECURE_EMAIL) else None,
            counterpart=EMAIL if channel != Channel.SMS else "+15550102030",
            last_message_at=timezone.now() - dt.timedelta(minutes=minutes_ago),
        )
    return patient


def test_lead_opens_a_profile_copies_the_email_and_edits_the_language(
    page, context, live_server, lead, maria, sign_in, screenshot
):
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    sign_in("lead")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Patients", exact=True).click()
    page.get_by_role("link", name="Maria Lopez").click()
    expect(page).to_have_url(f"{live_server.url}/patients/{maria.pk}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Maria Lopez")

    # What the panel shows, in the roomy layout: local time, contact methods, care team, encounters.
    expect(page.get_by_test_id("patient-local-time")).to_have_text(re.compile(r"^\d{1,2}:\d\d [AP]M$"))
    expect(page.locator('a[href="tel:+15550102030"]')).to_be_visible()
    expect(page.get_by_test_id("opted-out")).to_have_text("Opted out of SMS")
    expect(page.get_by_test_id("primary-contact")).to_have_count(1)
    expect(page.locator(".pp-member.is-primary")).to_contain_text("Nora Nurse")
    expect(page.get_by_test_id("encounter")).to_have_count(5)
    expect(page.get_by_test_id("encounter").first).to_contain_text("Diabetes follow-up")
    screenshot("patient-profile")

    copy = page.get_by_role("button", name=f"Copy email address {EMAIL}")
    copy.click()
    expect(copy).to_contain_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == EMAIL

    # The panel partial, as the Inbox embeds it: hx-get on load into a 300px column; copy works after the swap.
    page.evaluate(
        """(url) => {
            const host = document.createElement("aside");
            host.className = "pp-frame";
            host.id = "embedded-panel";
            host.setAttribute("hx-get", url);
            host.setAttribute("hx-trigger", "load");
            document.querySelector("#main").prepend(host);
            htmx.process(host);
        }""",
        f"/patients/{maria.pk}/panel/",
    )
    embedded = page.locator("#embedded-panel [data-testid=patient-panel]")
    expect(embedded).to_contain_text("Maria Lopez")
    page.evaluate("navigator.clipboard.writeText('')")
    embedded.get_by_test_id("copy-email").click()
    expect(embedded.get_by_test_id("copy-email")).to_contain_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == EMAIL

    page.goto(f"{live_server.url}/patients/{maria.pk}/panel/")
    panel = page.get_by_test_id("patient-panel")
    expect(panel.get_by_test_id("patient-age")).to_have_text(f"{maria.age(maria.local_now().date())} yrs")
    expect(panel.get_by_test_id("patient-language")).to_have_text("English")
    expect(panel.get_by_test_id("panel-edit")).to_be_visible()
    screenshot("patient-panel")

    panel.get_by_role("link", name=re.compile("Diabetes follow-up")).click()
    expect(page.get_by_role("heading", name="Diabetes follow-up")).to_be_visible()
    expect(page.get_by_test_id("encounter-patient-time")).to_contain_text("C")  # CST or CDT
    expect(page.get_by_test_id("encounter-viewer-time")).to_contain_text("E")  # the lead reads New York time
    screenshot("patient-encounter")

    page.get_by_role("link", name="Back to profile").click()
    page.get_by_role("navigation", name="Patient sections").get_by_role("link", name="Communications").click()
    rows = page.get_by_test_id("cc-row")
    expect(rows).to_have_count(5)
    expect(rows.first).to_contain_text("Can I take the new pill with food?")
    expect(rows.first).to_have_attribute("href", re.compile(r"/inbox/all-patients/directed/\?c=\d+$"))
    expect(page.locator(".cc-row.is-closed")).to_have_count(3)
    screenshot("patient-communications")

    page.get_by_role("navigation", name="Patient sections").get_by_role("link", name="Profile").click()
    page.get_by_test_id("edit-profile").click()
    expect(page.get_by_label("Preferred language")).to_have_value("en")
    screenshot("patient-edit")
    page.get_by_label("Date of birth").fill("2999-01-01")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_test_id("form-errors")).to_contain_text("Nothing was saved.")
    expect(page.get_by_text("The date of birth cannot be in the future.")).to_be_visible()
    screenshot("patient-edit-errors")

    page.get_by_label("Date of birth").fill("1984-06-12")
    page.get_by_label("Preferred language").select_option(label="Spanish")
    page.get_by_role("button", name="Save changes").click()
    expect(page).to_have_url(f"{live_server.url}/patients/{maria.pk}/")
    expect(page.get_by_role("status")).to_contain_text("Saved Maria Lopez's profile.")
    expect(page.locator("dd[data-testid=patient-language]")).to_have_text("Spanish")

    assert Patient.objects.get(pk=maria.pk).preferred_language == "es"
    update = AuditEvent.objects.get(action=AuditEvent.Action.PATIENT_UPDATED)
    assert update.actor == lead
    assert update.detail == {"changed": ["preferred_language"]}
