"""``manage.py seed_demo``: deterministic, consistent synthetic demo data, and its idempotence contract."""

import re
import time
from collections import Counter
from io import StringIO

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from adminportal.models import Region, User
from careportal import demo
from careportal.demo import demo_logins
from careportal.models import CareTeamMember, Contact, Document, Encounter, Patient, PatientContactMethod
from designer.models import ConfigVersion, MessageTemplate, Policy
from designer.selectors import role_access
from inbox.models import Attachment, Channel, Communication, InboundAddress, Message, SendingLine
from tests.factories import PatientFactory

PATIENTS, COMMUNICATIONS, SEED = 30, 120, 7
E164 = re.compile(r"^\+1555\d{7}$")
EXAMPLE_EMAIL = re.compile(r"^[a-z0-9.]+@([a-z0-9-]+\.)*(example\.com|[a-z0-9-]+\.example|example)$")
MESSAGE_ID = re.compile(r"^<[0-9a-f]{32}@[a-z0-9.-]+>$")

# The PostgreSQL load sets indexes and foreign keys aside and moves sequences: the schema owner's work.
pytestmark = [pytest.mark.django_db, pytest.mark.database_owner]
postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the COPY path (indexes and foreign keys set aside and rebuilt, sequences) is PostgreSQL's; "
    "CI runs these on PostgreSQL",
)


def seed(*args: str, stderr: StringIO | None = None) -> str:
    out = StringIO()
    call_command(
        "seed_demo",
        "--patients",
        str(PATIENTS),
        "--communications",
        str(COMMUNICATIONS),
        "--seed",
        str(SEED),
        *args,
        stdout=out,
        stderr=stderr if stderr is not None else StringIO(),
    )
    return out.getvalue()


def schema() -> tuple[set, set]:
    """Every index and every constraint of the database (PostgreSQL), with its definition."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")
        indexes = set(cursor.fetchall())
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated, condeferrable, "
            "condeferred FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
        )
        constraints = set(cursor.fetchall())
    return indexes, constraints


@pytest.fixture
def seeded(db):
    return seed()


class _RolledBack(Exception):
    def __init__(self, snapshot):
        self.snapshot = snapshot


def seeded_snapshot(seed_value: int):
    """Seed an empty database, record what was made, and roll it all back."""
    try:
        with transaction.atomic():
            call_command(
                "seed_demo",
                "--patients",
                "12",
                "--communications",
                "40",
                "--seed",
                str(seed_value),
                stdout=StringIO(),
            )
            raise _RolledBack(
                (
                    list(
                        Patient.objects.order_by("mrn").values_list("first_name", "last_name", "birth_date")
                    ),
                    list(
                        Communication.objects.order_by("id").values_list("channel", "counterpart", "subject")
                    ),
                    list(Message.objects.order_by("id").values_list("direction", "body_text")),
                )
            )
    except _RolledBack as done:
        return done.snapshot


def patients_matching(value: str) -> set[int]:
    """Patients whose contact methods, or whose contacts, hold this address or number (the recognition rule)."""
    own = PatientContactMethod.objects.filter(value=value).values_list("patient_id", flat=True)
    related = Contact.objects.filter(Q(email=value) | Q(phone=value)).values_list("patient_id", flat=True)
    return set(own) | set(related)


def test_it_creates_the_requested_patients_and_communications_with_five_messages_on_average(seeded):
    assert Patient.objects.count() == PATIENTS
    assert Communication.objects.count() == COMMUNICATIONS
    assert Message.objects.count() == 5 * COMMUNICATIONS
    assert not Communication.objects.annotate(n=Count("messages")).filter(n=0).exists()


def test_every_channel_is_present(seeded):
    channels = set(Communication.objects.values_list("channel", flat=True))
    assert channels == {Channel.SMS, Channel.EMAIL, Channel.SECURE_EMAIL, Channel.CHAT}


def test_recognized_communications_are_linked_to_a_patient_and_some_to_a_contact(seeded):
    recognized = Communication.objects.filter(is_unrecognized=False)
    assert recognized.exists()
    assert not recognized.filter(patient__isnull=True).exists()
    with_contact = recognized.filter(contact__isnull=False)
    assert with_contact.exists()
    for communication in with_contact:
        assert communication.contact.patient_id == communication.patient_id
        assert communication.counterpart in {communication.contact.email, communication.contact.phone}


def test_a_recognized_sender_matches_its_patient_and_only_hand_linked_family_senders_match_more(seeded):
    for communication in Communication.objects.filter(is_unrecognized=False):
        matching = patients_matching(communication.counterpart)
        assert communication.patient_id in matching, communication.pk
        candidates = set(communication.candidate_patients.values_list("pk", flat=True))
        assert matching == (candidates or {communication.patient_id}), communication.pk


def test_unrecognized_senders_sharing_a_family_number_or_email_have_several_candidates(seeded):
    unrecognized = Communication.objects.filter(is_unrecognized=True).annotate(n=Count("candidate_patients"))
    assert not unrecognized.filter(patient__isnull=False).exists()
    shared = unrecognized.filter(n__gte=2)
    assert shared.exists()
    assert set(shared.values_list("n", flat=True)) <= {2, 3}
    for communication in shared:
        candidates = set(communication.candidate_patients.values_list("pk", flat=True))
        assert candidates == patients_matching(communication.counterpart)


def test_unrecognized_senders_matching_nobody_have_no_candidates(seeded):
    strangers = (
        Communication.objects.filter(is_unrecognized=True).annotate(n=Count("candidate_patients")).filter(n=0)
    )
    assert strangers.exists()
    for communication in strangers:
        assert patients_matching(communication.counterpart) == set()


def test_unrecognized_communications_hold_only_inbound_messages_and_sms_ones_a_single_message(seeded):
    unrecognized = Message.objects.filter(communication__is_unrecognized=True)
    assert not unrecognized.filter(direction=Message.Direction.OUTBOUND).exists()
    sms_counts = (
        Communication.objects.filter(is_unrecognized=True, channel=Channel.SMS)
        .annotate(n=Count("messages"))
        .values_list("n", flat=True)
    )
    assert set(sms_counts) == {1}


def test_each_patient_with_a_care_team_has_exactly_one_primary_contact(seeded):
    teams = CareTeamMember.objects.values("patient").annotate(
        primaries=Count("pk", filter=Q(is_primary_contact=True))
    )
    assert teams.count() >= PATIENTS * 0.8
    assert {team["primaries"] for team in teams} == {1}


def test_the_demo_nurse_is_on_many_care_teams_and_primary_contact_for_many(seeded):
    nurse = User.objects.get(username="nurse")
    assert CareTeamMember.objects.filter(user=nurse).count() >= 5
    assert CareTeamMember.objects.filter(user=nurse, is_primary_contact=True).count() >= 3
    staff_on_teams = set(CareTeamMember.objects.values_list("user__username", flat=True))
    assert len(staff_on_teams) >= 6


def test_last_message_fields_match_the_newest_message(seeded):
    newest = dict(
        Communication.objects.annotate(newest=Max("messages__created_at")).values_list("pk", "newest")
    )
    for communication in Communication.objects.all():
        last = communication.messages.order_by("-created_at", "-id").first()
        assert communication.last_message_at == newest[communication.pk] == last.created_at
        assert communication.last_message_preview == last.body_text[:200]
        assert communication.last_message_direction == last.direction
        assert communication.created_at == communication.messages.order_by("created_at").first().created_at


def test_status_is_mixed_and_only_closed_communications_have_closed_at(seeded):
    statuses = Counter(Communication.objects.values_list("status", flat=True))
    assert statuses[Communication.Status.OPEN] and statuses[Communication.Status.CLOSED]
    assert not Communication.objects.filter(status="closed", closed_at__isnull=True).exists()
    assert not Communication.objects.filter(status="open", closed_at__isnull=False).exists()
    assert not Communication.objects.filter(opened_at__isnull=True).exists()
    assert Communication.objects.filter(assignee__isnull=True).exists()
    assert Communication.objects.filter(assignee__isnull=False).exists()


def test_channel_fields_are_consistent_with_the_channel(seeded):
    for communication in Communication.objects.all():
        if communication.channel == Channel.SMS:
            assert communication.sending_line_id is not None
            assert communication.inbound_address_id is None
            assert E164.match(communication.counterpart), communication.counterpart
        elif communication.channel in (Channel.EMAIL, Channel.SECURE_EMAIL):
            assert communication.inbound_address_id is not None
            assert communication.sending_line_id is None
            assert EXAMPLE_EMAIL.match(communication.counterpart), communication.counterpart
            assert communication.subject
        else:
            assert communication.sending_line_id is None and communication.inbound_address_id is None
            assert EXAMPLE_EMAIL.match(communication.counterpart), communication.counterpart


def test_sms_communications_are_one_per_patient_and_sending_line(seeded):
    pairs = Communication.objects.filter(channel=Channel.SMS, patient__isnull=False).values_list(
        "patient", "sending_line"
    )
    assert len(pairs) == len(set(pairs))


def test_phones_are_e164_and_emails_lower_case_example_addresses(seeded):
    for kind, value in PatientContactMethod.objects.values_list("kind", "value"):
        assert (E164 if kind == "phone" else EXAMPLE_EMAIL).match(value), value
    for email, phone in Contact.objects.values_list("email", "phone"):
        assert not email or EXAMPLE_EMAIL.match(email)
        assert not phone or E164.match(phone)
    for number in SendingLine.objects.values_list("number", flat=True):
        assert E164.match(number)
    for address in InboundAddress.objects.values_list("address", flat=True):
        assert EXAMPLE_EMAIL.match(address)
    for address in User.objects.values_list("email", flat=True):
        assert EXAMPLE_EMAIL.match(address)


def test_outbound_messages_are_written_by_staff_and_inbound_ones_by_nobody(seeded):
    assert (
        Message.objects.filter(direction="out").exists() and Message.objects.filter(direction="in").exists()
    )
    assert not Message.objects.filter(direction="out", author__isnull=True).exists()
    assert not Message.objects.filter(direction="in", author__isnull=False).exists()
    assert not Message.objects.filter(direction="out", sent_at__isnull=True).exists()


def test_email_messages_carry_message_ids_and_replies_thread_to_the_previous_message(seeded):
    emails = Communication.objects.filter(channel__in=[Channel.EMAIL, Channel.SECURE_EMAIL])
    threaded = 0
    for communication in emails:
        previous_ids: list[str] = []
        for message in communication.messages.order_by("created_at", "id"):
            assert MESSAGE_ID.match(message.email_message_id), message.email_message_id
            if previous_ids:
                assert message.in_reply_to == previous_ids[-1]
                assert message.references.split() == previous_ids[-20:]
                threaded += 1
            else:
                assert message.in_reply_to == message.references == ""
            previous_ids.append(message.email_message_id)
    assert threaded
    outbound = Message.objects.filter(communication__in=emails, direction="out")
    assert all(
        mid.endswith("@careinbox.local>") for mid in outbound.values_list("email_message_id", flat=True)
    )


def test_sms_messages_have_unique_twilio_ids(seeded):
    sms = Message.objects.filter(communication__channel=Channel.SMS)
    assert set(sms.filter(direction="in").values_list("provider", flat=True)) == {Message.Provider.TWILIO}
    assert set(sms.filter(direction="out").values_list("provider", flat=True)) == {Message.Provider.PORTAL}
    ids = list(sms.values_list("provider_id", flat=True))
    assert all(re.fullmatch(r"SM[0-9a-f]{32}", sid) for sid in ids)
    assert len(ids) == len(set(ids))


def test_sending_lines_include_labelled_unlabelled_and_the_nurses_direct_line(seeded):
    nurse = User.objects.get(username="nurse")
    labels = set(SendingLine.objects.values_list("label", flat=True))
    assert {"Main clinic", "Cardiology", ""} <= labels
    assert SendingLine.objects.filter(owner=nurse).exists()
    assert InboundAddress.objects.filter(owner=nurse).exists()
    assert InboundAddress.objects.filter(address__startswith="care@", owner__isnull=True).exists()


def test_messages_to_the_nurses_direct_line_or_alias_are_assigned_to_her(seeded):
    nurse = User.objects.get(username="nurse")
    direct = Communication.objects.filter(sending_line__owner=nurse) | Communication.objects.filter(
        inbound_address__owner=nurse
    )
    assert direct.exists()
    assert set(direct.values_list("assignee", flat=True)) == {nurse.pk}
    assert Communication.objects.filter(assignee=nurse, is_unrecognized=True).exists()


def test_patients_have_regions_past_and_upcoming_encounters_and_a_few_documents(seeded):
    assert Region.objects.count() == 2
    assert not Patient.objects.filter(region__isnull=True).exists()
    now = timezone.now()
    assert Encounter.objects.filter(starts_at__lt=now).exists()
    assert Encounter.objects.filter(starts_at__gt=now, status=Encounter.Status.SCHEDULED).exists()
    documents = Document.objects.all()
    assert 0 < documents.count() <= 2 * PATIENTS
    for document in documents:
        assert default_storage.exists(document.file.name)
        assert default_storage.size(document.file.name) == document.size
    assert Attachment.objects.filter(document__isnull=False).exists()


def test_the_published_config_gives_the_nurse_the_inbox_and_the_coordinator_none(seeded):
    version = ConfigVersion.objects.get()
    assert (version.number, version.status) == (1, ConfigVersion.Status.PUBLISHED)
    assert version.published_at is not None
    nurse = role_access(User.objects.get(username="nurse"))
    assert nurse.has_inbox and nurse.can_care_team_inbox and not nurse.can_all_patients_inbox
    assert not role_access(User.objects.get(username="coordinator")).has_inbox
    lead = role_access(User.objects.get(username="lead"))
    assert lead.can_all_patients_inbox and Policy.EDIT_PATIENT_PROFILE in lead.policies
    assert Policy.DESIGNER in role_access(User.objects.get(username="designer")).policies
    assert Policy.ADMINISTRATOR in role_access(User.objects.get(username="admin")).policies


def test_message_templates_are_published_with_placeholders(seeded):
    templates = MessageTemplate.objects.filter(version__status=ConfigVersion.Status.PUBLISHED)
    assert 3 <= templates.count() <= 4
    assert {"sms", "email", "any"} <= set(templates.values_list("channel", flat=True))
    assert all("{{ patient.first_name }}" in body for body in templates.values_list("body", flat=True))


def test_demo_logins_can_sign_in(seeded, client):
    logins = demo_logins()
    assert [login.username for login in logins] == ["nurse", "coordinator", "lead", "designer", "admin"]
    for login in logins:
        assert login.password == settings.DEMO_PASSWORD
        assert client.login(username=login.username, password=login.password), login.username
        client.logout()
    admin = User.objects.get(username="admin")
    assert admin.is_staff and admin.is_superuser
    nurse = User.objects.get(username="nurse")
    assert (nurse.full_name, nurse.title, nurse.time_zone) == ("Nora Diaz", "RN", "America/New_York")
    assert User.objects.filter(role="care-nurse").count() >= 9


def test_it_prints_the_demo_logins(seeded):
    for login in demo_logins():
        assert f"{login.username}" in seeded and login.role in seeded
    assert settings.DEMO_PASSWORD in seeded


def test_the_same_seed_gives_the_same_data_and_another_seed_different_data(db):
    first = seeded_snapshot(7)
    assert first[0] and first[1] and first[2]
    assert seeded_snapshot(7) == first
    assert seeded_snapshot(8)[0] != first[0]


def test_if_empty_skips_when_the_database_already_has_patients(db):
    PatientFactory()
    out = seed("--if-empty")
    assert "Demo data already present; skipping." in out
    assert Patient.objects.count() == 1
    assert not ConfigVersion.objects.exists()
    assert not Communication.objects.exists()


def test_if_empty_seeds_an_empty_database(db):
    seed("--if-empty")
    assert Patient.objects.count() == PATIENTS


def test_without_if_empty_a_non_empty_database_is_refused(db):
    PatientFactory()
    with pytest.raises(CommandError, match="not empty"):
        seed()
    assert Patient.objects.count() == 1
    assert not User.objects.filter(username="nurse").exists()


def test_running_it_twice_is_refused_the_second_time(seeded):
    with pytest.raises(CommandError, match="patients exist"):
        seed()
    assert Patient.objects.count() == PATIENTS


def test_it_rejects_too_few_patients(db):
    with pytest.raises(CommandError, match="--patients"):
        call_command("seed_demo", "--patients", "2", stdout=StringIO())
    assert not Patient.objects.exists()


def test_a_large_organisation_gets_more_teams_and_panels_stay_human_sized(monkeypatch):
    """Beyond TEAM_PATIENTS patients every further block of patients gets its own generated team, so the named
    demo staff's panels (and the benchmark's per-user folders) do not grow with the organisation."""
    from careportal import demo

    monkeypatch.setattr(demo, "TEAM_PATIENTS", 40)
    counts = demo.seed_demo(patients=130, communications=300, seed=SEED)
    generated = User.objects.filter(username__startswith="t0")
    assert counts["users"] == 13 + 3 * (demo.TEAM_NURSES + demo.TEAM_PROVIDERS) == User.objects.count()
    assert generated.count() == 3 * (demo.TEAM_NURSES + demo.TEAM_PROVIDERS)
    nurse = User.objects.get(username="nurse")
    first_team = set(Patient.objects.order_by("pk").values_list("pk", flat=True)[:40])
    assert set(CareTeamMember.objects.filter(user=nurse).values_list("patient_id", flat=True)) <= first_team
    others = CareTeamMember.objects.exclude(patient_id__in=first_team)
    assert others.exists()
    assert not others.exclude(user__in=generated).exists()
    # Each later patient's team is one generated nurse (primary) and one generated provider.
    per_patient = others.values("patient_id").annotate(
        n=Count("pk"), primaries=Count("pk", filter=Q(is_primary_contact=True))
    )
    assert {(row["n"], row["primaries"]) for row in per_patient} == {(2, 1)}
    # Outbound messages on later patients are written by their own team (or the organisation-wide lead).
    authors = set(
        Message.objects.filter(direction="out", communication__patient_id__in=others.values("patient_id"))
        .exclude(author=None)
        .values_list("author__username", flat=True)
    )
    assert authors and all(name.startswith("t0") or name == "lead" for name in authors)


def test_progress_is_printed_as_plain_lines_when_the_output_is_not_a_terminal(db):
    err = StringIO()
    seed(stderr=err)
    lines = err.getvalue().splitlines()
    assert lines and all(
        re.fullmatch(r"[A-Z][a-z ]+: [\d,]+ / [\d,]+ \(\d+ %\) \d+ s", line) for line in lines
    )
    assert f"Patients: {PATIENTS} / {PATIENTS} (100 %)" in err.getvalue()
    assert f"Communications: {COMMUNICATIONS} / {COMMUNICATIONS} (100 %)" in err.getvalue()
    assert "\r" not in err.getvalue()


def test_progress_prints_every_tenth_at_most_once_a_second_and_while_a_long_step_runs(monkeypatch):
    out = StringIO()
    with demo.Progress("Things", 1000, out) as progress:
        for _ in range(1000):
            progress.update()
    assert out.getvalue().splitlines() == [
        out.getvalue().splitlines()[-1]
    ]  # all within a second: the end only
    assert re.fullmatch(r"Things: 1,000 / 1,000 \(100 %\) 0 s\n", out.getvalue())

    monkeypatch.setattr(demo, "PROGRESS_SECONDS", 0.05)
    out = StringIO()
    with demo.Progress("Index", 4, out) as progress:
        progress.update()
        time.sleep(0.3)  # one slow statement: the timer still reports
        progress.update(3)
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3
    assert lines[0].startswith("Index: 1 / 4 (25 %)") and lines[-1].startswith("Index: 4 / 4 (100 %)")


def test_a_failure_part_way_leaves_the_database_as_it_was(monkeypatch):
    before = schema() if connection.vendor == "postgresql" else None

    def fail(self):
        raise RuntimeError("disk full")

    monkeypatch.setattr(demo.DemoBuilder, "build_communications", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        seed()
    assert not Patient.objects.exists() and not User.objects.filter(username="nurse").exists()
    if before is not None:
        assert schema() == before


def test_new_rows_can_be_created_after_seeding(seeded):
    """The seed assigned ids itself rather than the database: the sequences must have moved past them."""
    models = (Patient, Contact, Communication, Message)
    top = {model: model.objects.order_by("-pk").values_list("pk", flat=True)[0] for model in models}
    patient = Patient.objects.create(
        mrn="NEW0000001", first_name="New", last_name="Patient", birth_date=timezone.localdate()
    )
    contact = Contact.objects.create(
        patient=patient, first_name="New", last_name="Contact", relationship="friend"
    )
    communication = Communication.objects.create(
        channel=Channel.SMS,
        patient=patient,
        counterpart="+15559999999",
        sending_line=SendingLine.objects.first(),
    )
    message = Message.objects.create(
        communication=communication, direction="in", body_text="New after seeding", delivery_status="received"
    )
    for created in (patient, contact, communication, message):
        assert created.pk > top[type(created)], type(created).__name__


@postgresql_only
def test_the_postgresql_load_keeps_every_index_and_constraint_of_the_migrated_schema(db):
    before = schema()
    counts = demo.seed_demo(
        patients=PATIENTS, communications=COMMUNICATIONS, seed=SEED, progress_file=StringIO()
    )
    assert schema() == before
    assert counts["communications"] == Communication.objects.count() == COMMUNICATIONS
    assert counts["messages"] == Message.objects.count() == 5 * COMMUNICATIONS
    assert counts["patients"] == Patient.objects.count() == PATIENTS
    assert counts["candidate_links"] == Communication.candidate_patients.through.objects.count()
    assert counts["attachments"] == Attachment.objects.count()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM inbox_message WHERE body_tsv IS NULL OR body_tsv = ''::tsvector")
        assert cursor.fetchone()[0] == 0
        # The full-text search reads the stored vector: a word of a seeded message finds it.
        cursor.execute("SELECT count(*) FROM inbox_message WHERE body_tsv @@ to_tsquery('simple', 'thanks')")
        assert cursor.fetchone()[0] > 0
