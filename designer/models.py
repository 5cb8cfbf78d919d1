"""Versioned configuration: a ConfigVersion owns roles (with menu items and policy grants) and message templates.

Exactly one version is published at a time and the Care Portal reads only that one; at most one draft is open.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class MenuItem(models.TextChoices):
    """Items of the Care Portal sidebar a role's menu may hold. Inbox is off by default for every role."""

    HOME = "home", "Home"
    INBOX = "inbox", "Inbox"
    PATIENTS = "patients", "Patients"


class Policy(models.TextChoices):
    INBOX_CARE_TEAM = "inbox_care_team", "Inbox Care Team"
    INBOX_FULL_PATIENT = "inbox_full_patient", "Inbox Full Patient"
    INBOX_API = "inbox_api", "Inbox API"
    EDIT_PATIENT_PROFILE = "edit_patient_profile", "Edit patient profile"
    DESIGNER = "designer", "Designer"
    ADMINISTRATOR = "administrator", "Administrator"


class TemplateChannel(models.TextChoices):
    SMS = "sms", "SMS"
    EMAIL = "email", "Email"
    ANY = "any", "SMS and email"


class ConfigVersion(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"
        ARCHIVED = "archived", "Archived"

    number = models.PositiveIntegerField(unique=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.DRAFT)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    change_summary = models.TextField(blank=True)
    # Optimistic concurrency for concurrent designers: every save of the draft bumps it.
    revision = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="published"), name="designer_one_published_version"
            ),
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="draft"), name="designer_one_open_draft"
            ),
            models.CheckConstraint(
                condition=~Q(status="published") | Q(published_at__isnull=False),
                name="designer_published_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"v{self.number} ({self.get_status_display()})"


class Role(models.Model):
    """A role inside one version. ``key`` is stable across versions; users point at it by key."""

    version = models.ForeignKey(ConfigVersion, on_delete=models.CASCADE, related_name="roles")
    key = models.SlugField(max_length=60)
    name = models.CharField(max_length=120)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["version", "key"], name="designer_role_key_per_version")
        ]

    def __str__(self) -> str:
        return self.name


class RoleMenuItem(models.Model):
    """A sidebar item present in a role's menu. Absence means off (Inbox starts absent for every role)."""

    role = models.ForeignKey(Role, on_delete=models.CASCADE, related_name="menu_items")
    item = models.CharField(max_length=20, choices=MenuItem.choices)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "item"]
        constraints = [
            models.UniqueConstraint(fields=["role", "item"], name="designer_menu_item_once_per_role")
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.get_item_display()}"


class PolicyGrant(models.Model):
    """A security policy held by a role."""

    role = models.ForeignKey(Role, on_delete=models.CASCADE, related_name="policy_grants")
    policy = models.CharField(max_length=30, choices=Policy.choices)

    class Meta:
        ordering = ["policy"]
        constraints = [
            models.UniqueConstraint(fields=["role", "policy"], name="designer_policy_once_per_role")
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.get_policy_display()}"


class MessageTemplate(models.Model):
    """A reply template; placeholders like ``{{ patient.first_name }}`` are filled when inserted."""

    version = models.ForeignKey(ConfigVersion, on_delete=models.CASCADE, related_name="templates")
    key = models.SlugField(max_length=60)
    name = models.CharField(max_length=120)
    channel = models.CharField(max_length=10, choices=TemplateChannel.choices, default=TemplateChannel.ANY)
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["version", "key"], name="designer_template_key_per_version")
        ]

    def __str__(self) -> str:
        return self.name
