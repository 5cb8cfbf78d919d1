"""Communications and their messages, sending lines, inbound addresses, raw inbound items and the audit log."""

import json

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from guardian.models import UserObjectPermissionBase


class Channel(models.TextChoices):
    SMS = "sms", "SMS"
    EMAIL = "email", "Email"
    SECURE_EMAIL = "secure_email", "Secure Email"
    CHAT = "chat", "Live Chat"


class SendingLine(models.Model):
    """An organisational phone number. Each line makes its own communication with a patient."""

    number = models.CharField(max_length=20, unique=True, help_text="E.164, e.g. +15550100000")
    label = models.CharField(max_length=60, blank=True, help_text="Shown instead of the number when set.")
    is_active = models.BooleanField(default=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="direct_lines",
        help_text="A user's direct line: inbound SMS to it is assigned to that user.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["label", "number"]
        # Who may send from a line (django-guardian per-object grants): ``inbox.selectors.sending_lines_usable_by``.
        permissions = [("send_from_line", "Can send SMS from this sending line")]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return self.label or self.number


class SendingLineUserObjectPermission(UserObjectPermissionBase):
    """django-guardian direct grant: a user allowed to send from one sending line (``send_from_line``). A line with
    no grants may be used by every Inbox user; with grants, only by them (and by its owner)."""

    content_object = models.ForeignKey(SendingLine, on_delete=models.CASCADE)

    class Meta(UserObjectPermissionBase.Meta):
        pass


class InboundAddress(models.Model):
    """An email address the organisation receives on; with an owner it is that user's alias."""

    address = models.EmailField(unique=True, help_text="Lower-case.")
    label = models.CharField(max_length=60, blank=True)
    is_active = models.BooleanField(default=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="email_aliases",
        help_text="Inbound mail to this address is assigned to this user.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["address"]
        verbose_name_plural = "inbound addresses"

    def __str__(self) -> str:
        return self.address

    def save(self, *args, **kwargs):
        self.address = self.address.strip().lower()
        super().save(*args, **kwargs)


class Communication(models.Model):
    """One conversation with a patient (or an unrecognised sender) on one channel.

    Folder queries read only this table plus small join tables; ``last_message_*`` are denormalised from
    the newest message so a list page never touches the message table.
    """

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    channel = models.CharField(max_length=12, choices=Channel.choices)
    status = models.CharField(max_length=6, choices=Status.choices, default=Status.OPEN)
    patient = models.ForeignKey(
        "careportal.Patient", null=True, blank=True, on_delete=models.PROTECT, related_name="communications"
    )
    contact = models.ForeignKey(
        "careportal.Contact", null=True, blank=True, on_delete=models.PROTECT, related_name="communications"
    )
    sending_line = models.ForeignKey(
        SendingLine, null=True, blank=True, on_delete=models.PROTECT, related_name="communications"
    )
    inbound_address = models.ForeignKey(
        InboundAddress, null=True, blank=True, on_delete=models.PROTECT, related_name="communications"
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="assigned_communications",
    )
    subject = models.CharField(max_length=255, blank=True)
    counterpart = models.CharField(
        max_length=254, help_text="The patient-side address or E.164 number (lower-case email)."
    )
    is_unrecognized = models.BooleanField(default=False)
    candidate_patients = models.ManyToManyField(
        "careportal.Patient", blank=True, related_name="candidate_communications"
    )
    last_message_at = models.DateTimeField(default=timezone.now)
    last_message_preview = models.CharField(max_length=200, blank=True)
    last_message_direction = models.CharField(max_length=3, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True, help_text="When it last became Open.")
    closed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-last_message_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(is_unrecognized=False, patient__isnull=False)
                | Q(is_unrecognized=True, patient__isnull=True),
                name="communication_linked_xor_unrecognized",
            ),
            models.CheckConstraint(
                condition=Q(contact__isnull=True) | Q(patient__isnull=False),
                name="communication_contact_needs_patient",
            ),
        ]
        indexes = [
            # My Inbox → Assigned to me / Unrecognized (assignee = me), newest first, with or without status.
            models.Index(fields=["assignee", "-last_message_at", "-id"], name="comm_assignee_recent_idx"),
            models.Index(fields=["assignee", "status", "-last_message_at"], name="comm_assignee_status_idx"),
            # Primary Contact, Care Team Directed, patient communication center (patient IN …), newest first.
            models.Index(fields=["patient", "-last_message_at", "-id"], name="comm_patient_recent_idx"),
            # Newest first over everything: folders whose rule is an EXISTS (Sent, Primary Contact, Care Team) walk it
            # and stop after a page.
            models.Index(fields=["-last_message_at", "-id"], name="comm_recent_idx"),
            # All Patients Directed / Unrecognized, newest first (the whole-table folders). The patient and contact
            # ride along (PostgreSQL): a search by name walks this index testing each row's patient or contact
            # without reading the row.
            models.Index(
                fields=["-last_message_at", "-id"],
                name="comm_linked_recent_idx",
                condition=Q(is_unrecognized=False),
                include=["patient", "contact"],
            ),
            models.Index(
                fields=["-last_message_at", "-id"],
                name="comm_unrecog_recent_idx",
                condition=Q(is_unrecognized=True),
            ),
            # "Unassigned only" on the shared inboxes.
            models.Index(
                fields=["-last_message_at", "-id"],
                name="comm_unassigned_recent_idx",
                condition=Q(assignee__isnull=True),
            ),
            # Recognition, SMS joining (patient + line) and search by phone/email.
            models.Index(fields=["counterpart", "channel"], name="comm_counterpart_idx"),
            models.Index(fields=["patient", "sending_line", "channel"], name="comm_patient_line_idx"),
            # Real time: a tab that (re)subscribes reads what changed since its list was read (careportal.live).
            models.Index(fields=["updated_at"], name="comm_updated_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} with {self.patient or self.counterpart}"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN

    @property
    def is_email(self) -> bool:
        return self.channel in (Channel.EMAIL, Channel.SECURE_EMAIL)


class Message(models.Model):
    class Direction(models.TextChoices):
        INBOUND = "in", "Inbound"
        OUTBOUND = "out", "Outbound"

    class Provider(models.TextChoices):
        PORTAL = "portal", "Care Portal"
        SMTP = "smtp", "SMTP"
        EMAIL_WEBHOOK = "email_webhook", "Email webhook"
        TWILIO = "twilio", "Twilio"
        CHAT = "chat", "Live chat"
        SECURE_PORTAL = "secure_portal", "Secure message page"
        API = "api", "Inbox API"

    class DeliveryStatus(models.TextChoices):
        RECEIVED = "received", "Received"
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        UNDELIVERED = "undelivered", "Undelivered"
        FAILED = "failed", "Failed"

    communication = models.ForeignKey(Communication, on_delete=models.PROTECT, related_name="messages")
    direction = models.CharField(max_length=3, choices=Direction.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="authored_messages",
        help_text="The staff member who wrote an outbound message or internal note.",
    )
    sender_name = models.CharField(max_length=200, blank=True, help_text="External sender's display name.")
    sender_address = models.CharField(max_length=254, blank=True, help_text="From address or number.")
    recipient_address = models.CharField(max_length=254, blank=True, help_text="To address or number.")
    subject = models.CharField(max_length=255, blank=True)
    body_text = models.TextField(blank=True)
    body_html = models.TextField(blank=True, help_text="Sanitised HTML (email only).")
    is_secure = models.BooleanField(default=False, help_text="Delivered through the secure message page.")
    is_internal_note = models.BooleanField(default=False, help_text="Staff-only; never sent to the patient.")
    is_auto_reply = models.BooleanField(default=False)
    email_message_id = models.CharField(max_length=998, blank=True)
    in_reply_to = models.CharField(max_length=998, blank=True)
    references = models.TextField(blank=True)
    provider = models.CharField(max_length=20, choices=Provider.choices, default=Provider.PORTAL)
    provider_id = models.CharField(max_length=255, blank=True, help_text="MessageSid, Message-ID, …")
    delivery_status = models.CharField(max_length=12, choices=DeliveryStatus.choices)
    delivery_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_id"],
                condition=~Q(provider_id=""),
                name="message_provider_id_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["communication", "created_at", "id"], name="message_conversation_idx"),
            # My Inbox → Sent: communications in which I sent a message.
            models.Index(
                fields=["author", "communication"],
                name="message_author_idx",
                condition=Q(author__isnull=False),
            ),
            # Email threading: In-Reply-To / References → stored Message-ID.
            models.Index(
                fields=["email_message_id"], name="message_email_id_idx", condition=~Q(email_message_id="")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} message {self.pk} on {self.communication_id}"


class Attachment(models.Model):
    """A file on a message: a patient document, or a stored file when the message is not yet linked."""

    message = models.ForeignKey(Message, on_delete=models.PROTECT, related_name="attachments")
    document = models.ForeignKey(
        "careportal.Document", null=True, blank=True, on_delete=models.PROTECT, related_name="attachments"
    )
    file = models.FileField(upload_to="attachments/%Y/%m/", max_length=400, blank=True)
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=120)
    size = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(document__isnull=False) | ~Q(file=""), name="attachment_has_document_or_file"
            ),
        ]

    def __str__(self) -> str:
        return self.filename


class LosslessJSONField(models.JSONField):
    """A JSON field (jsonb on PostgreSQL) that gives back exactly the strings it was given, whatever they hold.

    jsonb cannot hold NUL (``\\u0000``) and no UTF-8 column can hold a lone surrogate, so a string (value or key)
    holding either is stored as ``ESCAPE`` followed by its ASCII JSON literal, and turned back on read; so is a string
    that already starts with ``ESCAPE``, so decoding is never ambiguous. Every other value is stored as plain JSON, so
    key lookups (``payload__patient_id``) keep working.
    """

    ESCAPE = "\ufdd0"  # a Unicode noncharacter: reserved for internal use, never meaningful in received text

    def get_prep_value(self, value):
        return _escape_json(super().get_prep_value(value), self.ESCAPE)

    def from_db_value(self, value, expression, connection):
        return _unescape_json(super().from_db_value(value, expression, connection), self.ESCAPE)


def _needs_escape(text: str, escape: str) -> bool:
    if text.startswith(escape) or "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (e.g. undecodable bytes kept by surrogateescape)
        return True
    return False


def _escape_json(value, escape: str):
    if isinstance(value, str):
        return escape + json.dumps(value) if _needs_escape(value, escape) else value
    if isinstance(value, dict):
        return {_escape_json(str(k), escape): _escape_json(v, escape) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_escape_json(v, escape) for v in value]
    return value


def _unescape_json(value, escape: str):
    if isinstance(value, str):
        return json.loads(value[len(escape) :]) if value.startswith(escape) else value
    if isinstance(value, dict):
        return {_unescape_json(k, escape): _unescape_json(v, escape) for k, v in value.items()}
    if isinstance(value, list):
        return [_unescape_json(v, escape) for v in value]
    return value


class RawInbound(models.Model):
    """An inbound item exactly as received, stored before it is acknowledged (nothing is lost)."""

    class Source(models.TextChoices):
        SMTP = "smtp", "SMTP"
        EMAIL_WEBHOOK = "email_webhook", "Email webhook"
        TWILIO_SMS = "twilio_sms", "Twilio SMS"
        TWILIO_STATUS = "twilio_status", "Twilio status callback"
        CHAT = "chat", "Live chat"
        SECURE_REPLY = "secure_reply", "Secure message reply"

    source = models.CharField(max_length=20, choices=Source.choices)
    provider_id = models.CharField(
        max_length=255,
        blank=True,
        help_text="The provider's id, or a digest of it when it is not storable text.",
    )
    raw = models.BinaryField(
        blank=True, default=b"", help_text="Raw bytes (MIME) when the source sends them."
    )
    payload = LosslessJSONField(default=dict, blank=True, help_text="Form or JSON payload of a webhook.")
    envelope = LosslessJSONField(
        default=dict, blank=True, help_text="SMTP MAIL FROM / RCPT TO, remote address."
    )
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-received_at"]
        verbose_name = "raw inbound item"
        constraints = [
            models.UniqueConstraint(
                fields=["source", "provider_id"],
                condition=~Q(provider_id=""),
                name="raw_inbound_provider_id_unique",
            ),
        ]
        indexes = [
            # The sweeper: unprocessed items older than the grace period.
            models.Index(
                fields=["received_at"], name="raw_inbound_pending_idx", condition=Q(processed_at__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_source_display()} {self.provider_id or self.pk}"


class Notification(models.Model):
    class Kind(models.TextChoices):
        ASSIGNED = "assigned", "Assigned to you"
        INBOUND = "inbound", "New message"
        MENTION = "mention", "Mentioned you"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    communication = models.ForeignKey(Communication, on_delete=models.CASCADE, related_name="notifications")
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    text = models.CharField(max_length=255)
    is_read = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "is_read", "-created_at"], name="notification_user_idx")]

    def __str__(self) -> str:
        return self.text


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ValidationError("Audit events are append-only.")

    def delete(self):
        raise ValidationError("Audit events are append-only.")


class AuditEvent(models.Model):
    """Append-only record of who did what to which patient, when and from where. Nothing edits or deletes one."""

    class Action(models.TextChoices):
        SIGN_IN = "auth.sign_in", "Signed in"
        SIGN_OUT = "auth.sign_out", "Signed out"
        SIGN_IN_FAILED = "auth.sign_in_failed", "Sign-in failed"
        COMMUNICATION_VIEWED = "communication.viewed", "Viewed communication"
        COMMUNICATION_CREATED = "communication.created", "Started communication"
        MESSAGE_SENT = "message.sent", "Sent message"
        MESSAGE_RECEIVED = "message.received", "Received message"
        STATUS_CHANGED = "communication.status_changed", "Changed status"
        ASSIGNMENT_CHANGED = "communication.assignment_changed", "Changed assignment"
        LINKED = "communication.linked", "Linked to patient"
        ATTACHMENT_DOWNLOADED = "attachment.downloaded", "Downloaded attachment"
        PATIENT_VIEWED = "patient.viewed", "Viewed patient"
        PATIENT_UPDATED = "patient.updated", "Updated patient"
        CONFIG_PUBLISHED = "config.published", "Published configuration"
        SETTING_CHANGED = "setting.changed", "Changed setting"

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(
        max_length=200, blank=True, help_text="Who, when not a user (patient, system)."
    )
    action = models.CharField(max_length=40, choices=Action.choices)
    patient = models.ForeignKey(
        "careportal.Patient", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    communication = models.ForeignKey(
        Communication, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    object_type = models.CharField(max_length=60, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    at = models.DateTimeField(default=timezone.now)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["-at", "-id"], name="audit_recent_idx"),
            models.Index(fields=["actor", "-at"], name="audit_actor_idx"),
            models.Index(fields=["patient", "-at"], name="audit_patient_idx"),
            models.Index(fields=["action", "-at"], name="audit_action_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor or self.actor_label} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise ValidationError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError("Audit events are append-only.")


class SecureAccessCode(models.Model):
    """A one-time code emailed to the address on file so a patient can open a secure message (DESIGN.md: Secure
    email). Only a keyed hash of the code is stored; limits (expiry, attempts, lock-out, resend rate) are kept per
    communication by ``inbox.secure``."""

    communication = models.ForeignKey(Communication, on_delete=models.CASCADE, related_name="secure_codes")
    message = models.ForeignKey(
        Message,
        on_delete=models.CASCADE,
        related_name="secure_codes",
        help_text="The secure message whose link asked.",
    )
    code_hash = models.CharField(
        max_length=128, help_text="salt$HMAC-SHA256 of the code, keyed with SECRET_KEY."
    )
    sent_to = models.CharField(max_length=254, help_text="The address on file the code was emailed to.")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Wrong codes entered.")
    used_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(
        null=True, blank=True, help_text="Too many wrong codes: no new code or attempt before this time."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The newest code of a communication, its resend and lock-out checks.
            models.Index(fields=["communication", "-created_at"], name="secure_code_recent_idx"),
        ]

    def __str__(self) -> str:
        return f"Secure access code {self.pk} for communication {self.communication_id}"
