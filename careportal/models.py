"""Patients, their contact methods, related contacts, care teams, encounters and documents."""

import datetime as dt
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from guardian.models import UserObjectPermissionBase

from adminportal.models import validate_time_zone


class ContactKind(models.TextChoices):
    EMAIL = "email", "Email"
    PHONE = "phone", "Phone"


class Patient(models.Model):
    class Sex(models.TextChoices):
        FEMALE = "female", "Female"
        MALE = "male", "Male"
        INTERSEX = "intersex", "Intersex"
        UNKNOWN = "unknown", "Unknown"

    mrn = models.CharField("MRN", max_length=32, unique=True)
    first_name = models.CharField(max_length=80)
    last_name = models.CharField(max_length=80)
    preferred_name = models.CharField(max_length=80, blank=True)
    birth_date = models.DateField()
    sex = models.CharField(max_length=10, choices=Sex.choices, default=Sex.UNKNOWN)
    gender_identity = models.CharField(max_length=60, blank=True)
    pronouns = models.CharField(max_length=30, blank=True)
    preferred_language = models.CharField(max_length=35, default="en", help_text="BCP 47 tag, e.g. en, es")
    time_zone = models.CharField(max_length=64, default="America/New_York", validators=[validate_time_zone])
    address_line1 = models.CharField(max_length=120, blank=True)
    address_line2 = models.CharField(max_length=120, blank=True)
    city = models.CharField(max_length=80, blank=True)
    state = models.CharField(max_length=40, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=2, default="US")
    region = models.ForeignKey(
        "adminportal.Region", null=True, blank=True, on_delete=models.PROTECT, related_name="patients"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["last_name", "first_name"]
        indexes = [models.Index(fields=["last_name", "first_name"], name="patient_name_idx")]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        first = self.preferred_name or self.first_name
        return f"{first} {self.last_name}"

    def age(self, today: dt.date | None = None) -> int:
        today = today or timezone.localdate()
        born = self.birth_date
        return today.year - born.year - ((today.month, today.day) < (born.month, born.day))

    def local_now(self) -> dt.datetime:
        return timezone.now().astimezone(ZoneInfo(self.time_zone))


class PatientContactMethod(models.Model):
    """An email address or E.164 phone number of the patient; inbound senders are recognised by ``value``."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="contact_methods")
    kind = models.CharField(max_length=5, choices=ContactKind.choices)
    value = models.CharField(max_length=254, help_text="Lower-case email or E.164 phone number.")
    label = models.CharField(max_length=30, blank=True, help_text="home, mobile, work…")
    is_primary = models.BooleanField(default=False)
    is_verified = models.BooleanField(default=False)
    is_opted_out = models.BooleanField(default=False, help_text="SMS STOP received; do not text.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_primary", "kind", "value"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "kind", "value"], name="contact_method_once_per_patient"
            )
        ]
        indexes = [models.Index(fields=["kind", "value"], name="contact_method_lookup_idx")]

    def __str__(self) -> str:
        return self.value


class Contact(models.Model):
    """A person related to a patient (parent, caregiver, guardian) who may write in on the patient's behalf."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="contacts")
    first_name = models.CharField(max_length=80)
    last_name = models.CharField(max_length=80)
    relationship = models.CharField(max_length=40, help_text="mother, spouse, caregiver…")
    email = models.CharField(max_length=254, blank=True, help_text="Lower-case.")
    phone = models.CharField(max_length=20, blank=True, help_text="E.164.")
    is_opted_out = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["last_name", "first_name"]
        indexes = [
            models.Index(fields=["email"], name="contact_email_idx", condition=~Q(email="")),
            models.Index(fields=["phone"], name="contact_phone_idx", condition=~Q(phone="")),
        ]

    def __str__(self) -> str:
        return f"{self.full_name} ({self.relationship} of {self.patient})"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


class CareTeamMember(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="care_team")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="care_teams")
    team_role = models.CharField(max_length=60, blank=True, help_text="Nurse, coordinator, provider…")
    is_primary_contact = models.BooleanField(default=False)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_primary_contact", "user__first_name"]
        constraints = [
            models.UniqueConstraint(fields=["patient", "user"], name="care_team_member_once"),
            models.UniqueConstraint(
                fields=["patient"], condition=Q(is_primary_contact=True), name="care_team_one_primary_contact"
            ),
        ]
        indexes = [models.Index(fields=["user", "patient"], name="care_team_user_idx")]

    def __str__(self) -> str:
        return f"{self.user} on {self.patient}'s care team"


class Encounter(models.Model):
    class Type(models.TextChoices):
        OFFICE_VISIT = "office_visit", "Office visit"
        TELEHEALTH = "telehealth", "Telehealth"
        PHONE_CALL = "phone_call", "Phone call"
        HOME_VISIT = "home_visit", "Home visit"

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"
        NO_SHOW = "no_show", "No-show"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="encounters")
    encounter_type = models.CharField(max_length=20, choices=Type.choices)
    title = models.CharField(max_length=160)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.SCHEDULED)
    provider = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="encounters"
    )
    location = models.CharField(max_length=120, blank=True)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["-starts_at"]
        indexes = [models.Index(fields=["patient", "starts_at"], name="encounter_patient_time_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gte=models.F("starts_at")), name="encounter_ends_after_start"
            )
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.starts_at:%Y-%m-%d})"


def document_upload_to(instance: "Document", filename: str) -> str:
    return f"documents/{instance.patient_id}/{timezone.now():%Y%m}/{filename}"


class Document(models.Model):
    """A file in the patient's record; message attachments point here (uploads become documents)."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="documents")
    name = models.CharField(max_length=255)
    file = models.FileField(upload_to=document_upload_to, max_length=400)
    content_type = models.CharField(max_length=120)
    size = models.PositiveBigIntegerField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["patient", "-created_at"], name="document_patient_idx")]

    def __str__(self) -> str:
        return self.name


class PatientUserObjectPermission(UserObjectPermissionBase):
    """django-guardian direct grant: a user explicitly allowed to see one patient outside their care team."""

    content_object = models.ForeignKey(Patient, on_delete=models.CASCADE)

    class Meta(UserObjectPermissionBase.Meta):
        pass
