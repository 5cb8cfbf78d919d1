"""Django admin for the communications engine: lines and addresses, communications, messages, raw inbound items,
notifications and the (view-only) audit log.

Communications, messages and audit events grow to millions of rows: lists select their relations, never count the
whole table twice, and link to related rows by id instead of rendering them.
"""

from django.contrib import admin
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils.html import format_html

from adminportal.admin import LargeTableAdmin
from careportal.admin import StoredFileAdminMixin

from .models import (
    Attachment,
    AuditEvent,
    Communication,
    InboundAddress,
    Message,
    Notification,
    RawInbound,
    SecureAccessCode,
    SendingLine,
    SendingLineUserObjectPermission,
)


def _change_link(model_name: str, pk, text: str | None = None):
    if pk is None:
        return "—"
    url = reverse(f"admin:inbox_{model_name}_change", args=[pk])
    return format_html('<a href="{}">{}</a>', url, text or f"#{pk}")


def _changelist_link(model_name: str, lookup: str, pk, text: str):
    url = reverse(f"admin:inbox_{model_name}_changelist") + f"?{lookup}={pk}"
    return format_html('<a href="{}">{}</a>', url, text)


@admin.register(SendingLine)
class SendingLineAdmin(admin.ModelAdmin):
    list_display = ("number", "label", "owner", "is_active", "created_at")
    list_filter = ("is_active",)
    list_select_related = ("owner",)
    search_fields = ("number", "label", "owner__username")
    autocomplete_fields = ("owner",)


@admin.register(SendingLineUserObjectPermission)
class SendingLineUserObjectPermissionAdmin(admin.ModelAdmin):
    """Who may send from a line (``send_from_line``); the Admin Portal's line page manages these with an audit trail."""

    list_display = ("user", "permission_codename", "content_object")
    list_select_related = ("user", "permission", "content_object")
    search_fields = ("user__username", "^user__last_name", "content_object__number", "content_object__label")
    raw_id_fields = ("user", "content_object")

    @admin.display(description="Permission", ordering="permission__codename")
    def permission_codename(self, obj):
        return obj.permission.codename

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "permission":
            kwargs["queryset"] = Permission.objects.filter(
                content_type=ContentType.objects.get_for_model(SendingLine)
            ).select_related("content_type")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(InboundAddress)
class InboundAddressAdmin(admin.ModelAdmin):
    list_display = ("address", "label", "owner", "is_active", "created_at")
    list_filter = ("is_active",)
    list_select_related = ("owner",)
    search_fields = ("address", "label", "owner__username")
    autocomplete_fields = ("owner",)


@admin.register(Communication)
class CommunicationAdmin(LargeTableAdmin):
    list_display = (
        "id",
        "channel",
        "status",
        "patient",
        "counterpart",
        "sending_line",
        "assignee",
        "is_unrecognized",
        "last_message_at",
    )
    list_filter = ("status", "channel", "is_unrecognized", ("assignee", admin.EmptyFieldListFilter))
    list_select_related = ("patient", "sending_line", "assignee")
    search_fields = ("=counterpart", "=patient__mrn", "^patient__last_name", "^subject")
    autocomplete_fields = ("patient", "contact", "assignee")
    raw_id_fields = ("candidate_patients",)
    readonly_fields = (
        "messages",
        "last_message_at",
        "last_message_preview",
        "last_message_direction",
        "opened_at",
        "closed_at",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("channel", "status", "subject", "counterpart", "messages")}),
        ("Association", {"fields": ("patient", "contact", "is_unrecognized", "candidate_patients")}),
        ("Routing", {"fields": ("sending_line", "inbound_address", "assignee")}),
        (
            "Activity",
            {
                "fields": (
                    "last_message_at",
                    "last_message_preview",
                    "last_message_direction",
                    "opened_at",
                    "closed_at",
                    "created_at",
                    "updated_at",
                )
            },
        ),
    )

    @admin.display(description="Messages")
    def messages(self, obj):
        # Too many to show inline: link to the message list filtered to this communication.
        if obj.pk is None:
            return "—"
        return _changelist_link(
            "message", "communication__id__exact", obj.pk, "Messages of this communication"
        )


@admin.register(Message)
class MessageAdmin(LargeTableAdmin):
    list_display = (
        "id",
        "conversation",
        "direction",
        "provider",
        "delivery_status",
        "author",
        "sender_address",
        "recipient_address",
        "created_at",
    )
    list_filter = (
        "direction",
        "provider",
        "delivery_status",
        "is_secure",
        "is_internal_note",
        "is_auto_reply",
    )
    list_select_related = ("author",)
    search_fields = ("=provider_id", "=email_message_id", "=sender_address", "=recipient_address")
    raw_id_fields = ("communication",)
    autocomplete_fields = ("author",)
    readonly_fields = ("attachments",)

    @admin.display(description="Communication", ordering="communication_id")
    def conversation(self, obj):
        return _change_link("communication", obj.communication_id)

    @admin.display(description="Attachments")
    def attachments(self, obj):
        if obj.pk is None:
            return "—"
        return _changelist_link("attachment", "message__id__exact", obj.pk, "Attachments of this message")


@admin.register(Attachment)
class AttachmentAdmin(StoredFileAdminMixin, LargeTableAdmin):
    list_display = ("filename", "message_link", "document", "content_type", "size", "created_at")
    list_filter = ("content_type",)
    list_select_related = ("document",)
    search_fields = ("filename",)
    raw_id_fields = ("message", "document")
    fields = ("message", "document", "file", "filename", "content_type", "size", "created_at")

    @admin.display(description="Message", ordering="message_id")
    def message_link(self, obj):
        return _change_link("message", obj.message_id)


class ProcessingStateFilter(admin.SimpleListFilter):
    title = "processing"
    parameter_name = "processing"

    def lookups(self, request, model_admin):
        return [("pending", "Pending"), ("failed", "Pending with an error"), ("processed", "Processed")]

    def queryset(self, request, queryset):
        match self.value():
            case "pending":
                return queryset.filter(processed_at__isnull=True)
            case "failed":
                return queryset.filter(processed_at__isnull=True).exclude(error="")
            case "processed":
                return queryset.filter(processed_at__isnull=False)
        return queryset


@admin.register(RawInbound)
class RawInboundAdmin(LargeTableAdmin):
    """Raw items exactly as received: what arrived is read-only, only the processing state may be corrected.

    Items arrive from providers, never by hand, and are kept (nothing is lost).
    """

    list_display = (
        "id",
        "source",
        "provider_id",
        "received_at",
        "processed_at",
        "attempts",
        "has_error",
        "message_link",
    )
    list_filter = ("source", ProcessingStateFilter)
    search_fields = ("=provider_id",)
    date_hierarchy = "received_at"
    raw_id_fields = ("message",)
    fields = (
        "source",
        "provider_id",
        "received_at",
        "raw_preview",
        "payload",
        "envelope",
        "processed_at",
        "attempts",
        "error",
        "message",
    )
    readonly_fields = ("source", "provider_id", "received_at", "raw_preview", "payload", "envelope")

    raw_preview_bytes = 20_000

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Error", boolean=True)
    def has_error(self, obj):
        return bool(obj.error)

    @admin.display(description="Message", ordering="message_id")
    def message_link(self, obj):
        return _change_link("message", obj.message_id)

    @admin.display(description="Raw bytes")
    def raw_preview(self, obj):
        raw = bytes(obj.raw or b"")
        if not raw:
            return "—"
        shown = raw[: self.raw_preview_bytes].decode("utf-8", errors="replace")
        more = f" (first {self.raw_preview_bytes:,} shown)" if len(raw) > self.raw_preview_bytes else ""
        return format_html("<p>{} bytes{}</p><pre>{}</pre>", f"{len(raw):,}", more, shown)


@admin.register(Notification)
class NotificationAdmin(LargeTableAdmin):
    list_display = ("created_at", "user", "kind", "text", "conversation", "is_read")
    list_filter = ("kind", "is_read")
    list_select_related = ("user",)
    search_fields = ("user__username", "text")
    autocomplete_fields = ("user",)
    raw_id_fields = ("communication", "message")

    @admin.display(description="Communication", ordering="communication_id")
    def conversation(self, obj):
        return _change_link("communication", obj.communication_id)


@admin.register(AuditEvent)
class AuditEventAdmin(LargeTableAdmin):
    """The audit log, view only: nothing edits or deletes an audit event (DESIGN.md: Audit)."""

    list_display = ("at", "who", "action", "patient", "conversation", "object_type", "object_id", "ip")
    list_filter = ("action",)
    list_select_related = ("actor", "patient")
    date_hierarchy = "at"
    search_fields = (
        "actor__username",
        "actor_label",
        "^patient__last_name",
        "^patient__first_name",
        "=patient__mrn",
    )
    raw_id_fields = ("actor", "patient", "communication")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Who", ordering="actor__username")
    def who(self, obj):
        return obj.actor.username if obj.actor_id else obj.actor_label or "—"

    @admin.display(description="Communication", ordering="communication_id")
    def conversation(self, obj):
        return _change_link("communication", obj.communication_id)


@admin.register(SecureAccessCode)
class SecureAccessCodeAdmin(admin.ModelAdmin):
    """One-time codes of the secure message page: visible for support, never editable (only a hash is stored)."""

    list_display = (
        "id",
        "communication_id",
        "sent_to",
        "created_at",
        "expires_at",
        "attempts",
        "used_at",
        "locked_until",
    )
    list_select_related = ()
    search_fields = ("sent_to",)
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in SecureAccessCode._meta.fields if f.name != "code_hash"]
    exclude = ("code_hash",)
    raw_id_fields = ("communication", "message")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
