"""Django admin for users, regions and feature settings, plus the changelist settings shared by big tables."""

from zoneinfo import available_timezones

from django import forms
from django.contrib import admin
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property

from designer.models import ConfigVersion, Role
from inbox import audit

from .models import ApiToken, FeatureSetting, Region, User, WebhookDelivery, WebhookSubscription


class EstimatedCountPaginator(Paginator):
    """Counts an unfiltered changelist of a huge PostgreSQL table from the planner's row estimate.

    An exact ``COUNT(*)`` over a million rows on every page load is the slowest part of a changelist; a
    filtered or searched list (or a small table, or SQLite) still counts exactly.
    """

    estimate_threshold = 100_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        query = getattr(queryset, "query", None)
        if query is not None and not query.where:
            connection = connections[queryset.db]
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                        [queryset.model._meta.db_table],
                    )
                    row = cursor.fetchone()
                if row and row[0] >= self.estimate_threshold:
                    return row[0]
        return super().count


class LargeTableAdmin(admin.ModelAdmin):
    """Changelist settings for tables that grow to millions of rows (patients, communications, messages, audit)."""

    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin):
    list_display = ("name", "code")
    search_fields = ("name", "code")
    prepopulated_fields = {"code": ("name",)}


def _role_choices(current: str = "") -> list[tuple[str, str]]:
    """Role keys offered for a user: published roles first, then keys that exist only in other versions."""
    published = dict(
        Role.objects.filter(version__status=ConfigVersion.Status.PUBLISHED)
        .order_by("name")
        .values_list("key", "name")
    )
    others = Role.objects.exclude(key__in=published).order_by("key").values_list("key", flat=True).distinct()
    choices = [("", "— no role —")]
    choices += [(key, f"{name} ({key})") for key, name in published.items()]
    choices += [(key, f"{key} (not in the published version)") for key in others]
    if current and current not in {key for key, _ in choices}:
        choices.append((current, f"{current} (unknown role)"))
    return choices


TIME_ZONE_CHOICES = [(tz, tz) for tz in sorted(available_timezones())]


class _CareInboxUserFields(forms.ModelForm):
    """Role as a choice of Designer role keys and time zone as a choice of IANA zones, so typos are impossible."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "role" in self.fields:
            current = self.initial.get("role") or ""
            self.fields["role"] = forms.ChoiceField(
                choices=_role_choices(current),
                required=False,
                help_text=User._meta.get_field("role").help_text,
            )
        if "time_zone" in self.fields:
            self.fields["time_zone"] = forms.ChoiceField(
                choices=TIME_ZONE_CHOICES, initial=self.fields["time_zone"].initial
            )

    def clean_email(self):
        """One account per address, whatever its case, as the Admin Portal's user forms require
        (``adminportal.forms``): invitations and password resets go by email."""
        email = (self.cleaned_data.get("email") or "").strip()
        others = User.objects.filter(email__iexact=email)
        if self.instance.pk:
            others = others.exclude(pk=self.instance.pk)
        if email and others.exists():
            raise forms.ValidationError(f"Another user already has the email address {email}.")
        return email


class UserCreationForm(_CareInboxUserFields, auth_forms.AdminUserCreationForm):
    class Meta(auth_forms.AdminUserCreationForm.Meta):
        model = User
        fields = ("username", "first_name", "last_name", "email", "role", "title", "time_zone")


class UserChangeForm(_CareInboxUserFields, auth_forms.UserChangeForm):
    class Meta(auth_forms.UserChangeForm.Meta):
        model = User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    fieldsets = (
        *BaseUserAdmin.fieldsets[:2],
        ("Care Inbox", {"fields": ("role", "title", "time_zone", "regions")}),
        *BaseUserAdmin.fieldsets[2:],
    )
    add_fieldsets = (
        *BaseUserAdmin.add_fieldsets,
        (
            "Care Inbox",
            {
                "classes": ("wide",),
                "fields": ("first_name", "last_name", "email", "role", "title", "time_zone"),
            },
        ),
    )
    list_display = (
        "username",
        "first_name",
        "last_name",
        "email",
        "role",
        "title",
        "is_active",
        "is_staff",
        "last_login",
    )
    list_filter = ("role", "is_active", "is_staff", "is_superuser", "regions", "groups")
    search_fields = ("username", "first_name", "last_name", "email")
    filter_horizontal = ("groups", "user_permissions", "regions")
    show_full_result_count = False


@admin.register(FeatureSetting)
class FeatureSettingAdmin(admin.ModelAdmin):
    list_display = ("key", "is_enabled", "updated_at", "updated_by")
    list_filter = ("is_enabled",)
    list_select_related = ("updated_by",)
    readonly_fields = ("updated_at", "updated_by")
    fields = ("key", "is_enabled", "value", "updated_at", "updated_by")

    def save_model(self, request, obj, form, change):
        """Who changed a setting is kept on the row and in the audit log (DESIGN.md: Audit)."""
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)
        audit.record(
            actor=request.user,
            action=audit.Action.SETTING_CHANGED,
            request=request,
            obj=obj,
            detail={"key": obj.key, "is_enabled": obj.is_enabled, "value": obj.value, "via": "django-admin"},
        )


# --- Inbox API tokens and webhooks (created and revoked in the Admin Portal → Integrations, which audits) -------


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "user", "created_at", "last_used_at", "revoked_at")
    list_select_related = ("user",)
    search_fields = ("name", "prefix", "user__username")
    exclude = ("secret_hash",)
    readonly_fields = ("user", "name", "prefix", "created_at", "created_by", "last_used_at", "revoked_at")

    def has_add_permission(self, request):
        return False  # a token is shown once, by the Admin Portal that creates it


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):
    list_display = ("name", "url", "user", "is_active", "paused_at", "consecutive_failures")
    list_filter = ("is_active",)
    exclude = ("secret",)
    readonly_fields = ("created_at", "created_by", "paused_at", "consecutive_failures")

    def has_add_permission(self, request):
        return False  # the secret is shown once, by the Admin Portal that creates it


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(LargeTableAdmin):
    list_display = ("event", "subscription", "created_at", "attempts", "last_status_code", "delivered_at")
    list_filter = ("event",)
    list_select_related = ("subscription",)
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
