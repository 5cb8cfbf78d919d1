"""Reads of the published configuration: what a user's role shows in the sidebar and which policies it holds."""

from dataclasses import dataclass

from django.core.cache import cache

from .models import ConfigVersion, MenuItem, MessageTemplate, Policy, Role


@dataclass(frozen=True)
class RoleAccess:
    role_name: str
    menu: frozenset[str]
    policies: frozenset[str]

    @property
    def has_inbox(self) -> bool:
        return MenuItem.INBOX in self.menu

    @property
    def can_care_team_inbox(self) -> bool:
        """Inbox Care Team, or Inbox Full Patient which includes it (DESIGN.md)."""
        return self.has_inbox and bool({Policy.INBOX_CARE_TEAM, Policy.INBOX_FULL_PATIENT} & self.policies)

    @property
    def can_all_patients_inbox(self) -> bool:
        return self.has_inbox and Policy.INBOX_FULL_PATIENT in self.policies


NO_ACCESS = RoleAccess(role_name="", menu=frozenset(), policies=frozenset())


def published_version() -> ConfigVersion | None:
    return ConfigVersion.objects.filter(status=ConfigVersion.Status.PUBLISHED).first()


PUBLISHED_ROLES_CACHE_KEY = "designer:published-roles"
PUBLISHED_ROLES_CACHE_SECONDS = 300


def _published_roles() -> dict[str, tuple[str, list[str], list[str]]]:
    """Every active role of the published configuration: key → (name, menu items, policies), through the shared
    cache. Every signed-in request needs its user's role, so it is not three queries per request. Any change to a
    configuration version, role, menu item or policy grant drops the cached copy (``designer.signals``), so a
    publish takes effect on the next request in every process sharing the cache (Redis in production)."""
    roles = cache.get(PUBLISHED_ROLES_CACHE_KEY)
    if roles is None:
        roles = {
            role.key: (
                role.name,
                sorted(m.item for m in role.menu_items.all()),
                sorted(g.policy for g in role.policy_grants.all()),
            )
            for role in Role.objects.filter(version__status=ConfigVersion.Status.PUBLISHED, is_active=True)
            .order_by("pk")
            .prefetch_related("menu_items", "policy_grants")
        }
        cache.set(PUBLISHED_ROLES_CACHE_KEY, roles, PUBLISHED_ROLES_CACHE_SECONDS)
    return roles


def forget_published_roles() -> None:
    cache.delete(PUBLISHED_ROLES_CACHE_KEY)


def role_access(user) -> RoleAccess:
    """The user's role as the *published* configuration defines it (drafts never count).

    Memoised on the user object, so a request pays for it once, and read through the shared cache.
    """
    if not getattr(user, "is_authenticated", False) or not user.is_active or not user.role:
        return NO_ACCESS
    cached = getattr(user, "_role_access", None)
    if cached is not None:
        return cached
    role = _published_roles().get(user.role)
    if role is None:
        access = NO_ACCESS
    else:
        name, menu, policies = role
        access = RoleAccess(role_name=name, menu=frozenset(menu), policies=frozenset(policies))
    user._role_access = access
    return access


def has_policy(user, policy: Policy) -> bool:
    return policy in role_access(user).policies


def role_keys_with_policy(policy: Policy) -> list[str]:
    """Keys of published, active roles holding ``policy`` (for queries over many users)."""
    return list(
        Role.objects.filter(
            version__status=ConfigVersion.Status.PUBLISHED, is_active=True, policy_grants__policy=policy
        ).values_list("key", flat=True)
    )


def published_templates(*, channel: str | None = None):
    qs = MessageTemplate.objects.filter(version__status=ConfigVersion.Status.PUBLISHED)
    if channel:
        qs = qs.filter(channel__in=[channel, "any"])
    return qs
