"""Users, their role and regions, and environment feature settings."""

from zoneinfo import available_timezones

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models


def validate_time_zone(value: str) -> None:
    if value not in available_timezones():
        raise ValidationError(f"{value!r} is not a known IANA time zone.")


class Region(models.Model):
    """A slice of the organisation (a state, a clinic network) used to scope Inbox Full Patient access."""

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=120)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """A care-team member, designer, administrator or integration.

    ``role`` is the stable key of a Designer role; what the role may do is read from the *published*
    configuration only (``designer.selectors.role_access``). Direct SMS lines and email aliases used for
    auto-assignment are ``inbox.SendingLine.owner`` / ``inbox.InboundAddress.owner``.
    """

    role = models.SlugField(max_length=60, blank=True, db_index=True, help_text="Key of the Designer role.")
    title = models.CharField(max_length=80, blank=True, help_text="Shown beside the name, e.g. RN.")
    time_zone = models.CharField(max_length=64, default="America/New_York", validators=[validate_time_zone])
    regions = models.ManyToManyField(Region, blank=True, related_name="users")

    class Meta:
        ordering = ["first_name", "last_name", "username"]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return self.get_full_name() or self.username

    @property
    def initials(self) -> str:
        parts = [p for p in (self.first_name, self.last_name) if p]
        return "".join(p[0] for p in parts).upper() or self.username[:2].upper()


class FeatureSetting(models.Model):
    """Admin Portal → Feature Settings → Environment. One row per key; a missing row means the default."""

    class Key(models.TextChoices):
        INBOX_NOTIFICATIONS = "inbox_notifications", "Inbox Notifications"
        CHAT_BUSINESS_HOURS = "chat_business_hours", "Chat business hours"
        SESSION_IDLE_TIMEOUT = "session_idle_timeout", "Session idle timeout"

    DEFAULTS = {
        Key.INBOX_NOTIFICATIONS: (True, {}),
        Key.CHAT_BUSINESS_HOURS: (True, {"days": [0, 1, 2, 3, 4], "start": "08:00", "end": "18:00"}),
        Key.SESSION_IDLE_TIMEOUT: (True, {"minutes": 15}),
    }

    key = models.CharField(max_length=40, choices=Key.choices, unique=True)
    is_enabled = models.BooleanField(default=True)
    value = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return f"{self.get_key_display()}: {'on' if self.is_enabled else 'off'}"

    @classmethod
    def is_on(cls, key: "FeatureSetting.Key") -> bool:
        row = cls.objects.filter(key=key).values_list("is_enabled", flat=True).first()
        return cls.DEFAULTS[key][0] if row is None else row

    @classmethod
    def value_of(cls, key: "FeatureSetting.Key") -> dict:
        row = cls.objects.filter(key=key).values_list("value", flat=True).first()
        return cls.DEFAULTS[key][1] if row is None else row


# --- Inbox API: tokens and outbound webhooks (issue 8) --------------------------------------------------------


class ApiToken(models.Model):
    """A per-integration Inbox API token. Only the SHA-256 of the secret is stored; the token itself is shown once,
    at creation. ``prefix`` (the first characters) lets people tell tokens apart in lists and logs."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=80, help_text="What the integration is, e.g. “EHR sync”.")
    prefix = models.CharField(max_length=16, db_index=True)
    secret_hash = models.CharField(max_length=64, unique=True, help_text="Hex SHA-256 of the whole token.")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class WebhookEvent(models.TextChoices):
    COMMUNICATION_CREATED = "communication.created", "Communication created"
    MESSAGE_CREATED = "message.created", "Message created"
    STATUS_CHANGED = "status.changed", "Status changed"
    ASSIGNMENT_CHANGED = "assignment.changed", "Assignment changed"


class WebhookSubscription(models.Model):
    """An HTTPS endpoint an integration receives signed events on. Events are sent only about communications the
    subscription's ``user`` (an Inbox API user) may see; a subscription that keeps failing is paused."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="webhook_subscriptions",
        help_text="The integration user whose access scope the events follow.",
    )
    name = models.CharField(max_length=80)
    url = models.URLField(max_length=500)
    event_types = models.JSONField(default=list, help_text="Event type names (WebhookEvent values).")
    secret = models.CharField(max_length=128, help_text="HMAC-SHA256 key; shown once at creation.")
    is_active = models.BooleanField(default=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} → {self.url}"

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None


class WebhookDelivery(models.Model):
    """One event sent (or being sent) to one subscription, with its attempts and the last response."""

    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40, choices=WebhookEvent.choices)
    payload = models.JSONField(default=dict)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["subscription", "-created_at"], name="webhook_delivery_recent_idx")]

    def __str__(self) -> str:
        return f"{self.event} → {self.subscription_id} ({self.attempts} attempts)"
