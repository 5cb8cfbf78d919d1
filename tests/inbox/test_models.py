"""Database constraints of the data model: the database refuses what the product rules forbid."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from careportal.models import CareTeamMember, Encounter
from designer.models import ConfigVersion
from inbox.models import Attachment, AuditEvent, Communication, Message, RawInbound
from tests.factories import (
    AttachmentFactory,
    AuditEventFactory,
    CareTeamMemberFactory,
    CommunicationFactory,
    ConfigVersionFactory,
    ContactFactory,
    DraftConfigVersionFactory,
    EncounterFactory,
    MessageFactory,
    PatientFactory,
    RawInboundFactory,
    UnrecognizedCommunicationFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- Configuration versions ------------------------------------------------------------------------------


def test_only_one_configuration_version_can_be_published():
    ConfigVersionFactory()

    with pytest.raises(IntegrityError), transaction.atomic():
        ConfigVersionFactory()


def test_only_one_draft_can_be_open():
    DraftConfigVersionFactory()

    with pytest.raises(IntegrityError), transaction.atomic():
        DraftConfigVersionFactory()


def test_a_draft_and_a_published_version_and_many_archived_ones_coexist():
    ConfigVersionFactory()
    DraftConfigVersionFactory()
    ConfigVersionFactory.create_batch(2, status=ConfigVersion.Status.ARCHIVED)

    assert ConfigVersion.objects.count() == 4


def test_a_published_version_needs_a_publication_time():
    with pytest.raises(IntegrityError), transaction.atomic():
        ConfigVersionFactory(published_at=None)


# --- Care team -------------------------------------------------------------------------------------------


def test_a_patient_has_at_most_one_primary_contact():
    patient = PatientFactory()
    CareTeamMemberFactory(patient=patient, is_primary_contact=True)

    with pytest.raises(IntegrityError), transaction.atomic():
        CareTeamMemberFactory(patient=patient, is_primary_contact=True)


def test_a_patient_may_have_many_care_team_members_who_are_not_primary():
    patient = PatientFactory()
    CareTeamMemberFactory(patient=patient, is_primary_contact=True)
    CareTeamMemberFactory.create_batch(2, patient=patient)

    assert CareTeamMember.objects.filter(patient=patient).count() == 3


def test_a_user_is_on_a_patients_care_team_once():
    member = CareTeamMemberFactory()

    with pytest.raises(IntegrityError), transaction.atomic():
        CareTeamMemberFactory(patient=member.patient, user=member.user)


# --- Messages and raw inbound items ---------------------------------------------------------------------


def test_the_same_provider_message_id_is_stored_once():
    MessageFactory(provider=Message.Provider.TWILIO, provider_id="SM0001")

    with pytest.raises(IntegrityError), transaction.atomic():
        MessageFactory(provider=Message.Provider.TWILIO, provider_id="SM0001")


def test_the_same_provider_id_from_different_providers_is_allowed():
    MessageFactory(provider=Message.Provider.TWILIO, provider_id="abc")
    MessageFactory(provider=Message.Provider.SMTP, provider_id="abc")

    assert Message.objects.filter(provider_id="abc").count() == 2


def test_messages_without_a_provider_id_may_repeat():
    communication = CommunicationFactory()
    MessageFactory.create_batch(
        3, communication=communication, provider=Message.Provider.PORTAL, provider_id=""
    )

    assert Message.objects.filter(provider=Message.Provider.PORTAL, provider_id="").count() == 3


def test_the_same_raw_inbound_item_is_stored_once_per_source():
    RawInboundFactory(source=RawInbound.Source.TWILIO_SMS, provider_id="SM0001")
    RawInboundFactory(source=RawInbound.Source.TWILIO_STATUS, provider_id="SM0001")

    with pytest.raises(IntegrityError), transaction.atomic():
        RawInboundFactory(source=RawInbound.Source.TWILIO_SMS, provider_id="SM0001")


def test_raw_inbound_items_without_a_provider_id_may_repeat():
    RawInboundFactory.create_batch(2, source=RawInbound.Source.SMTP, provider_id="")

    assert RawInbound.objects.filter(source=RawInbound.Source.SMTP, provider_id="").count() == 2


# --- Communications ------------------------------------------------------------------------------------------


def test_a_linked_communication_needs_a_patient():
    with pytest.raises(IntegrityError), transaction.atomic():
        CommunicationFactory(patient=None, is_unrecognized=False)


def test_an_unrecognized_communication_has_no_patient():
    with pytest.raises(IntegrityError), transaction.atomic():
        CommunicationFactory(is_unrecognized=True)


def test_a_communication_with_a_contact_needs_a_patient():
    contact = ContactFactory()

    with pytest.raises(IntegrityError), transaction.atomic():
        UnrecognizedCommunicationFactory(contact=contact)


def test_linked_and_unrecognized_communications_are_stored():
    contact = ContactFactory()
    CommunicationFactory(patient=contact.patient, contact=contact)
    UnrecognizedCommunicationFactory()

    assert Communication.objects.filter(is_unrecognized=False, contact=contact).count() == 1
    assert Communication.objects.filter(is_unrecognized=True, patient__isnull=True).count() == 1


# --- Attachments and encounters ------------------------------------------------------------------------------


def test_an_attachment_needs_a_document_or_a_file():
    message = MessageFactory()

    with pytest.raises(IntegrityError), transaction.atomic():
        Attachment.objects.create(message=message, filename="x.pdf", content_type="application/pdf", size=1)


def test_an_attachment_may_be_a_document_or_an_uploaded_file():
    message = MessageFactory()
    AttachmentFactory(message=message)
    upload = Attachment(message=message, filename="scan.pdf", content_type="application/pdf", size=4)
    upload.file.save("scan.pdf", ContentFile(b"%PDF"), save=True)

    assert message.attachments.count() == 2
    assert message.attachments.filter(document__isnull=True).get().file.name.endswith(".pdf")


def test_an_encounter_ends_after_it_starts():
    starts = timezone.now()

    with pytest.raises(IntegrityError), transaction.atomic():
        EncounterFactory(starts_at=starts, ends_at=starts - dt.timedelta(minutes=1))


def test_an_encounter_may_end_when_it_starts():
    starts = timezone.now()
    EncounterFactory(starts_at=starts, ends_at=starts)

    assert Encounter.objects.count() == 1


# --- Audit log: append-only ----------------------------------------------------------------------------------


def test_an_audit_event_cannot_be_saved_again():
    event = AuditEventFactory()
    event.actor_label = "someone else"

    with pytest.raises(ValidationError):
        event.save()

    event.refresh_from_db()
    assert event.actor_label != "someone else"


def test_an_audit_event_loaded_from_the_database_cannot_be_saved():
    event = AuditEvent.objects.get(pk=AuditEventFactory().pk)

    with pytest.raises(ValidationError):
        event.save(update_fields=["actor_label"])


def test_an_audit_event_cannot_be_deleted():
    event = AuditEventFactory()

    with pytest.raises(ValidationError):
        event.delete()

    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_audit_events_cannot_be_updated_in_bulk():
    AuditEventFactory.create_batch(2)

    with pytest.raises(ValidationError):
        AuditEvent.objects.update(actor_label="rewritten")
    with pytest.raises(ValidationError):
        AuditEvent.objects.filter(actor_label__isnull=False).update(actor_label="rewritten")

    assert not AuditEvent.objects.filter(actor_label="rewritten").exists()


def test_audit_events_cannot_be_deleted_in_bulk():
    AuditEventFactory.create_batch(2)

    with pytest.raises(ValidationError):
        AuditEvent.objects.all().delete()
    with pytest.raises(ValidationError):
        AuditEvent.objects.filter(action=AuditEvent.Action.COMMUNICATION_VIEWED).delete()

    assert AuditEvent.objects.count() == 2


def test_audit_events_are_appended():
    AuditEventFactory()
    AuditEventFactory(action=AuditEvent.Action.SIGN_IN, communication=None)

    assert AuditEvent.objects.count() == 2


# The owner's own statement meets the trigger (PostgreSQL and SQLite alike); the application's role is refused
# earlier, by privileges (tests/inbox/test_audit_integrity.py).
@pytest.mark.database_owner
def test_the_database_refuses_a_raw_sql_update_of_an_audit_event():
    event = AuditEventFactory(actor_label="Nora Nurse")

    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE inbox_auditevent SET actor_label = %s WHERE id = %s", ["forged", event.pk])

    event.refresh_from_db()
    assert event.actor_label == "Nora Nurse"


# The owner's own statement meets the trigger (PostgreSQL and SQLite alike); the application's role is refused
# earlier, by privileges (tests/inbox/test_audit_integrity.py).
@pytest.mark.database_owner
def test_the_database_refuses_a_raw_sql_delete_of_an_audit_event():
    event = AuditEventFactory()

    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM inbox_auditevent WHERE id = %s", [event.pk])

    assert AuditEvent.objects.filter(pk=event.pk).exists()
