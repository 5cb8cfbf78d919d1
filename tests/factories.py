"""factory-boy factories for every model the tests arrange."""

import datetime as dt

import factory
from django.utils import timezone

from adminportal.models import FeatureSetting, Region, User
from careportal.models import CareTeamMember, Contact, Document, Encounter, Patient, PatientContactMethod
from designer.models import ConfigVersion, MessageTemplate, PolicyGrant, Role, RoleMenuItem
from inbox.models import (
    Attachment,
    AuditEvent,
    Channel,
    Communication,
    InboundAddress,
    Message,
    Notification,
    RawInbound,
    SendingLine,
)


class RegionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Region
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"region-{n}")
    name = factory.LazyAttribute(lambda o: o.code.replace("-", " ").title())


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda o: f"{o.username}@clinic.example")
    role = ""
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")

    @factory.post_generation
    def persist_password(obj, create, extracted, **kwargs):
        if create:
            obj.save(update_fields=["password"])


class ConfigVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConfigVersion

    number = factory.Sequence(lambda n: n + 1)
    status = ConfigVersion.Status.PUBLISHED
    published_at = factory.LazyFunction(timezone.now)


class RoleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Role
        skip_postgeneration_save = True

    version = factory.SubFactory(ConfigVersionFactory)
    key = factory.Sequence(lambda n: f"role-{n}")
    name = factory.LazyAttribute(lambda o: o.key.replace("-", " ").title())

    @factory.post_generation
    def menu(obj, create, extracted, **kwargs):
        for position, item in enumerate(extracted or []):
            RoleMenuItem.objects.create(role=obj, item=item, position=position)

    @factory.post_generation
    def policies(obj, create, extracted, **kwargs):
        for policy in extracted or []:
            PolicyGrant.objects.create(role=obj, policy=policy)


class MessageTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MessageTemplate

    version = factory.SubFactory(ConfigVersionFactory)
    key = factory.Sequence(lambda n: f"template-{n}")
    name = factory.Sequence(lambda n: f"Template {n}")
    body = "Hello {{ patient.first_name }}, this is {{ user.full_name }}."


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    mrn = factory.Sequence(lambda n: f"MRN{n:07d}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    birth_date = factory.Faker("date_of_birth", minimum_age=1, maximum_age=95)
    sex = Patient.Sex.FEMALE
    preferred_language = "en"
    time_zone = "America/Chicago"
    city = factory.Faker("city")
    state = factory.Faker("state_abbr")


class PatientContactMethodFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PatientContactMethod

    patient = factory.SubFactory(PatientFactory)
    kind = "email"
    value = factory.Sequence(lambda n: f"patient{n}@mail.example")


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    patient = factory.SubFactory(PatientFactory)
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    relationship = "caregiver"


class CareTeamMemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CareTeamMember

    patient = factory.SubFactory(PatientFactory)
    user = factory.SubFactory(UserFactory)
    team_role = "Nurse"


class EncounterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Encounter

    patient = factory.SubFactory(PatientFactory)
    encounter_type = Encounter.Type.OFFICE_VISIT
    title = "Follow-up visit"
    starts_at = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(days=3))
    ends_at = factory.LazyAttribute(lambda o: o.starts_at + dt.timedelta(minutes=30))


class DocumentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Document

    patient = factory.SubFactory(PatientFactory)
    name = "lab-results.pdf"
    file = factory.django.FileField(filename="lab-results.pdf", data=b"%PDF-1.4 synthetic")
    content_type = "application/pdf"
    size = 18


class SendingLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SendingLine

    number = factory.Sequence(lambda n: f"+1555010{n:04d}")
    label = ""


class InboundAddressFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = InboundAddress

    address = factory.Sequence(lambda n: f"care{n}@clinic.example")


class CommunicationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Communication

    channel = Channel.EMAIL
    patient = factory.SubFactory(PatientFactory)
    counterpart = factory.Sequence(lambda n: f"sender{n}@mail.example")
    subject = "Question about my medication"
    last_message_preview = "Hi, I have a question about my medication."


class UnrecognizedCommunicationFactory(CommunicationFactory):
    patient = None
    is_unrecognized = True


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    communication = factory.SubFactory(CommunicationFactory)
    direction = Message.Direction.INBOUND
    body_text = "Hi, I have a question about my medication."
    delivery_status = Message.DeliveryStatus.RECEIVED


class FeatureSettingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FeatureSetting
        django_get_or_create = ("key",)

    key = FeatureSetting.Key.INBOX_NOTIFICATIONS
    is_enabled = True


class DraftConfigVersionFactory(ConfigVersionFactory):
    status = ConfigVersion.Status.DRAFT
    published_at = None


class RoleMenuItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RoleMenuItem

    role = factory.SubFactory(RoleFactory)
    item = "inbox"


class PolicyGrantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PolicyGrant

    role = factory.SubFactory(RoleFactory)
    policy = "inbox_care_team"


class AttachmentFactory(factory.django.DjangoModelFactory):
    """An attachment that is a patient document (the other kind carries an uploaded ``file`` instead)."""

    class Meta:
        model = Attachment

    message = factory.SubFactory(MessageFactory)
    document = factory.SubFactory(
        DocumentFactory, patient=factory.SelfAttribute("..message.communication.patient")
    )
    filename = factory.LazyAttribute(lambda o: o.document.name if o.document else "upload.pdf")
    content_type = "application/pdf"
    size = 18


class RawInboundFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RawInbound

    source = RawInbound.Source.TWILIO_SMS
    provider_id = factory.Sequence(lambda n: f"SM{n:032d}")
    payload = factory.LazyAttribute(
        lambda o: {"MessageSid": o.provider_id, "From": "+15550102030", "Body": "Hi"}
    )


class NotificationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Notification

    user = factory.SubFactory(UserFactory)
    kind = Notification.Kind.INBOUND
    communication = factory.SubFactory(CommunicationFactory)
    text = "New message"


class AuditEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuditEvent

    actor = factory.SubFactory(UserFactory)
    actor_label = factory.LazyAttribute(lambda o: o.actor.full_name if o.actor else "system")
    action = AuditEvent.Action.COMMUNICATION_VIEWED
    communication = factory.SubFactory(CommunicationFactory)
    patient = factory.LazyAttribute(lambda o: o.communication.patient if o.communication else None)
    ip = "127.0.0.1"


class SecureMessageFactory(MessageFactory):
    """An outbound secure message: the patient was emailed a link to it, never its content."""

    direction = Message.Direction.OUTBOUND
    is_secure = True
    recipient_address = factory.LazyAttribute(lambda o: o.communication.counterpart)
    subject = factory.LazyAttribute(lambda o: o.communication.subject)
    body_text = "Your lab results are back and look normal."
    body_html = "<p>Your lab results are back and look normal.</p>"
    delivery_status = Message.DeliveryStatus.SENT


class ChatCommunicationFactory(CommunicationFactory):
    """A patient's live chat (one per patient, or per contact of a patient)."""

    channel = Channel.CHAT
    counterpart = factory.LazyAttribute(lambda o: f"chat:{o.patient.pk}")
    subject = "Live chat"
    last_message_preview = "Hello, is anyone there?"
