"""Django admin for versioned configuration.

Only a draft version is edited here, as in the Designer: a published or archived version is shown read-only, because
the Care Portal reads the published one and versions are kept. Versions are opened and published by the Designer.
"""

from django.contrib import admin

from .models import ConfigVersion, MessageTemplate, PolicyGrant, Role, RoleMenuItem


def _is_draft(version: ConfigVersion | None) -> bool:
    return version is not None and version.status == ConfigVersion.Status.DRAFT


class DraftOnlyEditsMixin:
    """Rows of a configuration version may be added, changed or deleted only while that version is a draft."""

    version_path = "version"  # from a row to its ConfigVersion, e.g. "role.version"

    def version_of(self, obj) -> ConfigVersion | None:
        for attribute in self.version_path.split("."):
            obj = getattr(obj, attribute)
        return obj

    def _editable(self, request, obj) -> bool:
        return obj is None or _is_draft(self.version_of(obj))

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._editable(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._editable(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "version":
            kwargs["queryset"] = ConfigVersion.objects.filter(status=ConfigVersion.Status.DRAFT)
        elif db_field.name == "role":
            kwargs["queryset"] = Role.objects.filter(
                version__status=ConfigVersion.Status.DRAFT
            ).select_related("version")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class _ParentRoleInline(admin.TabularInline):
    """Inline rows of a role: editable only when the role belongs to the draft (``obj`` is the role)."""

    extra = 0

    def _editable(self, obj) -> bool:
        return obj is None or _is_draft(obj.version)

    def has_add_permission(self, request, obj=None):
        return super().has_add_permission(request, obj) and self._editable(obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._editable(obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._editable(obj)


class RoleMenuItemInline(_ParentRoleInline):
    model = RoleMenuItem
    fields = ("item", "position")


class PolicyGrantInline(_ParentRoleInline):
    model = PolicyGrant
    fields = ("policy",)


class _ReadOnlyVersionInline(admin.TabularInline):
    """What a version holds, as links; each row is edited on its own page."""

    extra = 0
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class RoleInline(_ReadOnlyVersionInline):
    model = Role
    fields = ("name", "key", "is_active")


class MessageTemplateInline(_ReadOnlyVersionInline):
    model = MessageTemplate
    fields = ("name", "key", "channel", "subject")


@admin.register(ConfigVersion)
class ConfigVersionAdmin(admin.ModelAdmin):
    list_display = ("number", "status", "author", "created_at", "published_at", "revision")
    list_filter = ("status",)
    list_select_related = ("author",)
    search_fields = ("=number", "change_summary")
    date_hierarchy = "created_at"
    fields = ("number", "status", "author", "created_at", "published_at", "revision", "change_summary")
    readonly_fields = ("number", "status", "author", "created_at", "published_at", "revision")
    inlines = (RoleInline, MessageTemplateInline)

    def has_add_permission(self, request):
        """Drafts are opened in the Designer, which copies the published version."""
        return False

    def has_delete_permission(self, request, obj=None):
        """Versions are kept (DESIGN.md: Designer); the Designer discards drafts."""
        return False


@admin.register(Role)
class RoleAdmin(DraftOnlyEditsMixin, admin.ModelAdmin):
    list_display = ("name", "key", "version", "is_active", "menu", "policies")
    list_filter = ("version__status", "is_active", "policy_grants__policy", "menu_items__item")
    search_fields = ("name", "key")
    list_select_related = ("version",)
    inlines = (RoleMenuItemInline, PolicyGrantInline)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("menu_items", "policy_grants")

    @admin.display(description="Menu")
    def menu(self, obj):
        return ", ".join(m.get_item_display() for m in obj.menu_items.all()) or "—"

    @admin.display(description="Policies")
    def policies(self, obj):
        return ", ".join(g.get_policy_display() for g in obj.policy_grants.all()) or "—"


@admin.register(RoleMenuItem)
class RoleMenuItemAdmin(DraftOnlyEditsMixin, admin.ModelAdmin):
    list_display = ("role_name", "item", "position", "version")
    list_filter = ("item", "role__version__status")
    search_fields = ("role__name", "role__key")
    list_select_related = ("role__version",)

    version_path = "role.version"

    @admin.display(description="Role", ordering="role__name")
    def role_name(self, obj):
        return obj.role.name

    @admin.display(description="Version", ordering="role__version__number")
    def version(self, obj):
        return obj.role.version


@admin.register(PolicyGrant)
class PolicyGrantAdmin(DraftOnlyEditsMixin, admin.ModelAdmin):
    list_display = ("role_name", "policy", "version")
    list_filter = ("policy", "role__version__status")
    search_fields = ("role__name", "role__key")
    list_select_related = ("role__version",)

    version_path = "role.version"

    @admin.display(description="Role", ordering="role__name")
    def role_name(self, obj):
        return obj.role.name

    @admin.display(description="Version", ordering="role__version__number")
    def version(self, obj):
        return obj.role.version


@admin.register(MessageTemplate)
class MessageTemplateAdmin(DraftOnlyEditsMixin, admin.ModelAdmin):
    list_display = ("name", "key", "channel", "version")
    list_filter = ("channel", "version__status")
    search_fields = ("name", "key", "subject", "body")
    list_select_related = ("version",)
