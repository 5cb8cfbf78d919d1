"""Django admin for patients and what belongs to them, and for explicit (django-guardian) patient grants."""

from django.contrib import admin
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils.html import format_html

from adminportal.admin import LargeTableAdmin

from .models import (
    CareTeamMember,
    Contact,
    Document,
    Encounter,
    Patient,
    PatientContactMethod,
    PatientUserObjectPermission,
)


class StoredFileAdminMixin:
    """Patient files are never served from a public URL, so the change page names the stored file instead of
    linking to it; a file is chosen only when the row is created."""

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if obj is not None and "file" in fields:
            fields[fields.index("file")] = "stored_file"
        return fields

    def get_readonly_fields(self, request, obj=None):
        readonly = tuple(super().get_readonly_fields(request, obj))
        return (*readonly, "stored_file") if obj is not None else readonly

    @admin.display(description="File")
    def stored_file(self, obj):
        return obj.file.name if obj.file else "—"


class PatientContactMethodInline(admin.TabularInline):
    model = PatientContactMethod
    fields = ("kind", "value", "label", "is_primary", "is_verified", "is_opted_out")
    extra = 0


class ContactInline(admin.TabularInline):
    model = Contact
    fields = ("first_name", "last_name", "relationship", "email", "phone", "is_opted_out")
    extra = 0


class CareTeamMemberInline(admin.TabularInline):
    model = CareTeamMember
    fields = ("user", "team_role", "is_primary_contact")
    autocomplete_fields = ("user",)
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")


@admin.register(Patient)
class PatientAdmin(LargeTableAdmin):
    list_display = ("mrn", "last_name", "first_name", "preferred_name", "birth_date", "region", "time_zone")
    list_display_links = ("mrn", "last_name")
    list_filter = ("region", "sex")
    list_select_related = ("region",)
    search_fields = ("=mrn", "^last_name", "^first_name", "^preferred_name")
    readonly_fields = ("created_at", "updated_at", "communications")
    fieldsets = (
        (None, {"fields": ("mrn", "first_name", "last_name", "preferred_name", "birth_date", "region")}),
        (
            "Demographics",
            {"fields": ("sex", "gender_identity", "pronouns", "preferred_language", "time_zone")},
        ),
        (
            "Address",
            {"fields": ("address_line1", "address_line2", "city", "state", "postal_code", "country")},
        ),
        (None, {"fields": ("communications", "created_at", "updated_at")}),
    )
    inlines = (PatientContactMethodInline, ContactInline, CareTeamMemberInline)

    @admin.display(description="Communications")
    def communications(self, obj):
        if obj.pk is None:
            return "—"
        url = reverse("admin:inbox_communication_changelist") + f"?patient__id__exact={obj.pk}"
        return format_html('<a href="{}">Communications with this patient</a>', url)


@admin.register(PatientContactMethod)
class PatientContactMethodAdmin(LargeTableAdmin):
    list_display = ("value", "kind", "patient", "label", "is_primary", "is_verified", "is_opted_out")
    list_filter = ("kind", "is_primary", "is_verified", "is_opted_out")
    list_select_related = ("patient",)
    search_fields = ("=value", "=patient__mrn")
    autocomplete_fields = ("patient",)
    readonly_fields = ("created_at",)


@admin.register(Contact)
class ContactAdmin(LargeTableAdmin):
    list_display = ("last_name", "first_name", "relationship", "patient", "email", "phone", "is_opted_out")
    list_display_links = ("last_name", "first_name")
    list_filter = ("is_opted_out",)
    list_select_related = ("patient",)
    search_fields = ("^last_name", "^first_name", "=email", "=phone", "=patient__mrn")
    autocomplete_fields = ("patient",)
    readonly_fields = ("created_at",)


@admin.register(CareTeamMember)
class CareTeamMemberAdmin(LargeTableAdmin):
    list_display = ("patient", "user", "team_role", "is_primary_contact", "added_at")
    list_filter = ("is_primary_contact",)
    list_select_related = ("patient", "user")
    search_fields = ("=patient__mrn", "^patient__last_name", "user__username", "^user__last_name")
    autocomplete_fields = ("patient", "user")
    readonly_fields = ("added_at",)


@admin.register(Encounter)
class EncounterAdmin(LargeTableAdmin):
    list_display = (
        "title",
        "patient",
        "encounter_type",
        "status",
        "starts_at",
        "ends_at",
        "provider",
        "location",
    )
    list_filter = ("encounter_type", "status")
    list_select_related = ("patient", "provider")
    search_fields = ("=patient__mrn", "^patient__last_name", "title")
    autocomplete_fields = ("patient", "provider")
    date_hierarchy = "starts_at"


@admin.register(Document)
class DocumentAdmin(StoredFileAdminMixin, LargeTableAdmin):
    list_display = ("name", "patient", "content_type", "size", "uploaded_by", "created_at")
    list_filter = ("content_type",)
    list_select_related = ("patient", "uploaded_by")
    search_fields = ("name", "=patient__mrn", "^patient__last_name")
    autocomplete_fields = ("patient", "uploaded_by")
    readonly_fields = ("created_at",)
    fields = ("patient", "name", "file", "content_type", "size", "uploaded_by", "created_at")
    date_hierarchy = "created_at"


@admin.register(PatientUserObjectPermission)
class PatientUserObjectPermissionAdmin(admin.ModelAdmin):
    """Explicit access: a user allowed to see one patient outside their care team (``view_patient``)."""

    list_display = ("user", "permission_codename", "content_object")
    list_filter = ("permission__codename",)
    list_select_related = ("user", "permission", "content_object")
    search_fields = (
        "user__username",
        "^user__last_name",
        "=content_object__mrn",
        "^content_object__last_name",
    )
    raw_id_fields = ("user", "content_object")
    show_full_result_count = False

    @admin.display(description="Permission", ordering="permission__codename")
    def permission_codename(self, obj):
        return obj.permission.codename

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "permission":
            kwargs["queryset"] = Permission.objects.filter(
                content_type=ContentType.objects.get_for_model(Patient)
            ).select_related("content_type")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
