"""Designer writes: open a draft (a copy of the published version), edit it under an optimistic revision check,
compare it with the published version, publish it atomically, discard it, and restore an archived version as a draft.

Every edit names the draft ``revision`` its form was built from. The edit claims the draft by bumping that revision
with a guarded ``UPDATE … WHERE revision = expected``; when another designer saved in between, nothing matches, the
edit is refused with ``DraftConflict`` and nothing changes. The claim also row-locks the draft until commit, so two
edits of one draft are serialised by the database, whichever process runs them.

The reads the Designer pages need (the open draft, a version's contents, the history, the change summary) live in
the "Reads" section below, next to the writes that share their snapshots.
"""

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Prefetch, QuerySet
from django.utils import timezone
from django.utils.text import slugify

from inbox import audit

from .models import (
    ConfigVersion,
    MenuItem,
    MessageTemplate,
    Policy,
    PolicyGrant,
    Role,
    RoleMenuItem,
    TemplateChannel,
)
from .placeholders import unknown_placeholders
from .selectors import has_policy, published_version

DRAFT = ConfigVersion.Status.DRAFT
PUBLISHED = ConfigVersion.Status.PUBLISHED
ARCHIVED = ConfigVersion.Status.ARCHIVED
# What a role created in the Designer starts with: Home only. Inbox is off by default for every role (DESIGN.md).
NEW_ROLE_MENU = (MenuItem.HOME,)
MENU_ORDER = {item: position for position, item in enumerate(MenuItem.values)}


# --- Errors ------------------------------------------------------------------------------------------------------


class DesignerError(Exception):
    """A refused Designer action; ``message`` is shown to the designer as is."""

    message = "That change could not be made."

    def __init__(self, message: str | None = None):
        self.message = message or self.message
        super().__init__(self.message)


class DraftConflict(DesignerError):
    message = (
        "Someone else changed this draft while you were editing it. Nothing was saved: reload the draft to see "
        "their changes, then make yours again."
    )


class NoOpenDraft(DesignerError):
    message = (
        "There is no open draft any more: it was published or discarded. Open a new draft to make changes."
    )


class DraftAlreadyOpen(DesignerError):
    message = "A draft is already open. Publish or discard it before restoring another version."


class InvalidChange(DesignerError):
    """Bad input for one field (``field`` names it, or ``None`` for the whole form)."""

    def __init__(self, message: str, *, field: str | None = None):
        self.field = field
        super().__init__(message)


def require_designer(user) -> None:
    """The Designer is for users whose *published* role holds the Designer policy."""
    if not has_policy(user, Policy.DESIGNER):
        raise PermissionDenied("Your role does not hold the Designer policy.")


# --- Snapshots and the change summary (reads) ----------------------------------------------------------------


@dataclass(frozen=True)
class RoleSnapshot:
    key: str
    name: str
    is_active: bool
    menu: frozenset[str]
    policies: frozenset[str]


@dataclass(frozen=True)
class TemplateSnapshot:
    key: str
    name: str
    channel: str
    subject: str
    body: str


@dataclass(frozen=True)
class Change:
    """One line of a change summary. ``group`` is "roles" or "templates"; ``tone`` is added, removed or changed."""

    group: str
    tone: str
    text: str


@dataclass(frozen=True)
class ChangeSummary:
    base_number: int | None
    changes: tuple[Change, ...]

    def __bool__(self) -> bool:
        return bool(self.changes)

    def __len__(self) -> int:
        return len(self.changes)

    @property
    def roles(self) -> list[Change]:
        return [c for c in self.changes if c.group == "roles"]

    @property
    def templates(self) -> list[Change]:
        return [c for c in self.changes if c.group == "templates"]

    @property
    def text(self) -> str:
        """The summary kept on a published version (one change per line)."""
        return "\n".join(c.text for c in self.changes) or "No changes."


def roles_of(version: ConfigVersion) -> QuerySet[Role]:
    return version.roles.prefetch_related(
        Prefetch("menu_items", queryset=RoleMenuItem.objects.order_by("position", "item")),
        "policy_grants",
    ).order_by("name", "key")


def templates_of(version: ConfigVersion) -> QuerySet[MessageTemplate]:
    return version.templates.order_by("name", "key")


def _snapshot(version: ConfigVersion | None) -> tuple[dict[str, RoleSnapshot], dict[str, TemplateSnapshot]]:
    if version is None:
        return {}, {}
    roles = {
        role.key: RoleSnapshot(
            key=role.key,
            name=role.name,
            is_active=role.is_active,
            menu=frozenset(m.item for m in role.menu_items.all()),
            policies=frozenset(g.policy for g in role.policy_grants.all()),
        )
        for role in roles_of(version)
    }
    templates = {
        t.key: TemplateSnapshot(key=t.key, name=t.name, channel=t.channel, subject=t.subject, body=t.body)
        for t in templates_of(version)
    }
    return roles, templates


def _labels(values, choices) -> str:
    labels = [str(choices(v).label) for v in sorted(values, key=lambda v: list(choices.values).index(v))]
    return ", ".join(labels) or "none"


def _role_changes(before: dict[str, RoleSnapshot], after: dict[str, RoleSnapshot]) -> list[Change]:
    changes = []
    for key, role in sorted(after.items(), key=lambda kv: kv[1].name.lower()):
        old = before.get(key)
        if old is None:
            changes.append(
                Change(
                    "roles",
                    "added",
                    f"Added role {role.name} ({key}): menu {_labels(role.menu, MenuItem)}; "
                    f"policies {_labels(role.policies, Policy)}" + ("" if role.is_active else "; inactive"),
                )
            )
            continue
        if old.name != role.name:
            changes.append(Change("roles", "changed", f"Renamed role {old.name} to {role.name}"))
        if old.is_active != role.is_active:
            verb = "Reactivated" if role.is_active else "Deactivated"
            changes.append(
                Change("roles", "added" if role.is_active else "removed", f"{verb} role {role.name}")
            )
        for item in MenuItem:
            if (item in role.menu) != (item in old.menu):
                on = item in role.menu
                changes.append(
                    Change(
                        "roles",
                        "added" if on else "removed",
                        f"{role.name}: {item.label} menu item turned {'on' if on else 'off'}",
                    )
                )
        for policy in Policy:
            if (policy in role.policies) != (policy in old.policies):
                granted = policy in role.policies
                changes.append(
                    Change(
                        "roles",
                        "added" if granted else "removed",
                        f"{role.name}: {'granted' if granted else 'revoked'} {policy.label}",
                    )
                )
    for key, old in sorted(before.items(), key=lambda kv: kv[1].name.lower()):
        if key not in after:
            changes.append(Change("roles", "removed", f"Removed role {old.name} ({key})"))
    return changes


def _template_changes(
    before: dict[str, TemplateSnapshot], after: dict[str, TemplateSnapshot]
) -> list[Change]:
    changes = []
    for key, template in sorted(after.items(), key=lambda kv: kv[1].name.lower()):
        old = before.get(key)
        if old is None:
            changes.append(Change("templates", "added", f"Added template {template.name}"))
            continue
        fields = [
            label
            for label, attr in (
                ("name", "name"),
                ("channel", "channel"),
                ("subject", "subject"),
                ("body", "body"),
            )
            if getattr(old, attr) != getattr(template, attr)
        ]
        if fields:
            name = template.name if old.name == template.name else f"{old.name} → {template.name}"
            changes.append(Change("templates", "changed", f"Changed template {name} ({', '.join(fields)})"))
    for key, old in sorted(before.items(), key=lambda kv: kv[1].name.lower()):
        if key not in after:
            changes.append(Change("templates", "removed", f"Removed template {old.name}"))
    return changes


def change_summary(version: ConfigVersion, base: ConfigVersion | None = None) -> ChangeSummary:
    """What ``version`` changes compared with ``base`` (the published version by default): roles added, removed,
    renamed, deactivated; menu items toggled; policies granted or revoked; templates added, changed, removed."""
    if base is None:
        base = published_version()
    if base is not None and base.pk == version.pk:
        return ChangeSummary(base_number=base.number, changes=())
    roles_before, templates_before = _snapshot(base)
    roles_after, templates_after = _snapshot(version)
    changes = _role_changes(roles_before, roles_after) + _template_changes(templates_before, templates_after)
    return ChangeSummary(base_number=base.number if base else None, changes=tuple(changes))


def open_draft_version() -> ConfigVersion | None:
    return ConfigVersion.objects.filter(status=DRAFT).select_related("author").first()


def version_history() -> QuerySet[ConfigVersion]:
    """Every version, newest first, with its author (drafts included: the history shows what is open)."""
    return ConfigVersion.objects.select_related("author").order_by("-number")


def draft_role(draft: ConfigVersion, key: str) -> Role:
    return roles_of(draft).get(key=key)


def draft_template(draft: ConfigVersion, key: str) -> MessageTemplate:
    return draft.templates.get(key=key)


def published_role_keys() -> set[str]:
    version = published_version()
    return set(version.roles.values_list("key", flat=True)) if version else set()


# --- Opening, discarding and restoring drafts ----------------------------------------------------------------


def _next_number() -> int:
    return (ConfigVersion.objects.aggregate(top=Max("number"))["top"] or 0) + 1


def _copy_contents(source: ConfigVersion | None, target: ConfigVersion) -> None:
    """Deep copy of roles (with menu items and policy grants) and message templates into ``target``."""
    if source is None:
        return
    for role in roles_of(source):
        copy = Role.objects.create(version=target, key=role.key, name=role.name, is_active=role.is_active)
        RoleMenuItem.objects.bulk_create(
            RoleMenuItem(role=copy, item=m.item, position=m.position) for m in role.menu_items.all()
        )
        PolicyGrant.objects.bulk_create(
            PolicyGrant(role=copy, policy=g.policy) for g in role.policy_grants.all()
        )
    MessageTemplate.objects.bulk_create(
        MessageTemplate(
            version=target, key=t.key, name=t.name, channel=t.channel, subject=t.subject, body=t.body
        )
        for t in templates_of(source)
    )


def _create_draft(*, user, source: ConfigVersion | None) -> ConfigVersion | None:
    """A new draft copied from ``source``, or ``None`` when another draft won the race (the one-draft constraint)."""
    try:
        with transaction.atomic():
            draft = ConfigVersion.objects.create(number=_next_number(), status=DRAFT, author=user)
    except IntegrityError:
        return None
    _copy_contents(source, draft)
    return draft


@transaction.atomic(durable=True)
def open_draft(*, user) -> tuple[ConfigVersion, bool]:
    """Open a draft: a deep copy of the published version. Only one draft is open at a time, so when one already
    is (or another designer opens one at the same moment) that draft is returned. Returns ``(draft, created)``."""
    require_designer(user)
    existing = open_draft_version()
    if existing is not None:
        return existing, False
    draft = _create_draft(user=user, source=published_version())
    if draft is None:
        return ConfigVersion.objects.get(status=DRAFT), False
    return draft, True


@transaction.atomic(durable=True)
def restore_as_draft(*, user, version: ConfigVersion) -> ConfigVersion:
    """Open a draft that is a copy of an archived version (only while no draft is open)."""
    require_designer(user)
    if version.status != ARCHIVED:
        raise InvalidChange("Only an archived version can be restored as a draft.")
    if ConfigVersion.objects.filter(status=DRAFT).exists():
        raise DraftAlreadyOpen()
    draft = _create_draft(user=user, source=version)
    if draft is None:
        raise DraftAlreadyOpen()
    return draft


def _claim(draft: ConfigVersion, revision: int) -> ConfigVersion:
    """Bump the draft's revision if it still is ``revision``; the guarded UPDATE also locks the row until commit."""
    claimed = ConfigVersion.objects.filter(pk=draft.pk, status=DRAFT, revision=revision).update(
        revision=F("revision") + 1
    )
    if not claimed:
        if ConfigVersion.objects.filter(pk=draft.pk, status=DRAFT).exists():
            raise DraftConflict()
        raise NoOpenDraft()
    return ConfigVersion.objects.get(pk=draft.pk)


@transaction.atomic(durable=True)
def discard_draft(*, user, draft: ConfigVersion, revision: int) -> None:
    """Throw the draft away (its roles and templates with it). The published and archived versions stay."""
    require_designer(user)
    _claim(draft, revision)
    ConfigVersion.objects.filter(pk=draft.pk, status=DRAFT).delete()


# --- Editing roles -----------------------------------------------------------------------------------------------


def _clean_name(name: str, *, what: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise InvalidChange(f"Give the {what} a name.", field="name")
    if len(name) > 120:
        raise InvalidChange(f"A {what} name has at most 120 characters.", field="name")
    return name


@transaction.atomic(durable=True)
def create_role(*, user, draft: ConfigVersion, revision: int, name: str, key: str) -> Role:
    """Add a role to the draft. Its menu starts with Home only: Inbox is off by default for every new role."""
    require_designer(user)
    draft = _claim(draft, revision)
    name = _clean_name(name, what="role")
    key = (key or "").strip()
    if not key or slugify(key) != key:
        raise InvalidChange(
            "The key is lower-case letters, digits and hyphens, e.g. care-coordinator.", field="key"
        )
    if len(key) > 60:
        raise InvalidChange("A role key has at most 60 characters.", field="key")
    if draft.roles.filter(key=key).exists():
        raise InvalidChange(f"The draft already has a role with the key “{key}”.", field="key")
    role = Role.objects.create(version=draft, key=key, name=name)
    RoleMenuItem.objects.bulk_create(
        RoleMenuItem(role=role, item=item, position=MENU_ORDER[item]) for item in NEW_ROLE_MENU
    )
    return role


@transaction.atomic(durable=True)
def update_role(
    *,
    user,
    draft: ConfigVersion,
    revision: int,
    key: str,
    name: str,
    is_active: bool,
    menu: set[str],
    policies: set[str],
) -> Role:
    """Rename, (de)activate, and set the role's menu items and security policies in one save."""
    require_designer(user)
    draft = _claim(draft, revision)
    role = draft.roles.filter(key=key).first()
    if role is None:
        raise InvalidChange(f"The draft has no role “{key}”.")
    name = _clean_name(name, what="role")
    unknown = (set(menu) - set(MenuItem.values)) | (set(policies) - set(Policy.values))
    if unknown:
        raise InvalidChange(f"Unknown menu items or policies: {', '.join(sorted(unknown))}.")
    if (role.name, role.is_active) != (name, is_active):
        role.name, role.is_active = name, is_active
        role.save(update_fields=["name", "is_active"])
    current_menu = set(role.menu_items.values_list("item", flat=True))
    role.menu_items.filter(item__in=current_menu - set(menu)).delete()
    RoleMenuItem.objects.bulk_create(
        RoleMenuItem(role=role, item=item, position=MENU_ORDER[item]) for item in set(menu) - current_menu
    )
    current_policies = set(role.policy_grants.values_list("policy", flat=True))
    role.policy_grants.filter(policy__in=current_policies - set(policies)).delete()
    PolicyGrant.objects.bulk_create(
        PolicyGrant(role=role, policy=p) for p in set(policies) - current_policies
    )
    return role


@transaction.atomic(durable=True)
def remove_role(*, user, draft: ConfigVersion, revision: int, key: str) -> None:
    """Remove a role added in this draft. A role of the published version can only be deactivated: users point at
    its key, and removing it would silently take their portal away."""
    require_designer(user)
    draft = _claim(draft, revision)
    if key in published_role_keys():
        raise InvalidChange("This role is in the published version: deactivate it instead of removing it.")
    deleted, _ = draft.roles.filter(key=key).delete()
    if not deleted:
        raise InvalidChange(f"The draft has no role “{key}”.")


# --- Editing message templates -----------------------------------------------------------------------------------


def _unique_template_key(draft: ConfigVersion, name: str) -> str:
    base = slugify(name)[:50] or "template"
    key, n = base, 2
    while draft.templates.filter(key=key).exists():
        key, n = f"{base}-{n}", n + 1
    return key


def validate_template(*, name: str, channel: str, subject: str, body: str) -> tuple[str, str, str, str]:
    """Clean a template's fields or raise ``InvalidChange`` for the first bad one (unknown placeholders
    included: a template that cannot be filled is refused when it is saved, not when a nurse inserts it)."""
    name = _clean_name(name, what="template")
    if channel not in TemplateChannel.values:
        raise InvalidChange("Choose SMS, email, or SMS and email.", field="channel")
    subject = " ".join((subject or "").split())
    body = (body or "").replace("\r\n", "\n").strip()
    if channel == TemplateChannel.EMAIL and not subject:
        raise InvalidChange("An email template needs a subject.", field="subject")
    if len(subject) > 200:
        raise InvalidChange("A subject has at most 200 characters.", field="subject")
    if not body:
        raise InvalidChange("Write the message the template inserts.", field="body")
    for field, text in (("subject", subject), ("body", body)):
        unknown = unknown_placeholders(text)
        if unknown:
            listed = ", ".join(f"“{u}”" if u.startswith("{{") else f"“{{{{ {u} }}}}”" for u in unknown)
            raise InvalidChange(
                f"Unknown placeholder{'s' if len(unknown) > 1 else ''} {listed}. Use only the placeholders listed "
                "beside the editor.",
                field=field,
            )
    return name, channel, subject, body


@transaction.atomic(durable=True)
def save_template(
    *,
    user,
    draft: ConfigVersion,
    revision: int,
    key: str | None,
    name: str,
    channel: str,
    subject: str,
    body: str,
) -> MessageTemplate:
    """Create (``key=None``) or change a message template of the draft. Its key (stable across versions) is made
    from the name when it is created and never changes."""
    require_designer(user)
    draft = _claim(draft, revision)
    name, channel, subject, body = validate_template(name=name, channel=channel, subject=subject, body=body)
    if draft.templates.filter(name__iexact=name).exclude(key=key or "").exists():
        raise InvalidChange(f"The draft already has a template called “{name}”.", field="name")
    if key is None:
        return MessageTemplate.objects.create(
            version=draft,
            key=_unique_template_key(draft, name),
            name=name,
            channel=channel,
            subject=subject,
            body=body,
        )
    template = draft.templates.filter(key=key).first()
    if template is None:
        raise InvalidChange(f"The draft has no template “{key}”.")
    template.name, template.channel, template.subject, template.body = name, channel, subject, body
    template.save(update_fields=["name", "channel", "subject", "body"])
    return template


@transaction.atomic(durable=True)
def remove_template(*, user, draft: ConfigVersion, revision: int, key: str) -> None:
    require_designer(user)
    draft = _claim(draft, revision)
    deleted, _ = draft.templates.filter(key=key).delete()
    if not deleted:
        raise InvalidChange(f"The draft has no template “{key}”.")


# --- Publishing ------------------------------------------------------------------------------------------------


@transaction.atomic(durable=True)
def publish_draft(*, user, draft: ConfigVersion, revision: int, request=None) -> ConfigVersion:
    """Publish the draft in one transaction: lock the draft and the published version, archive the published one,
    mark the draft published with its time, publisher and change summary, and audit it. Any failure rolls all of it
    back, so the published version is untouched. The Care Portal reads the published version on every request, so
    sidebars and inbox access change on each user's next page load."""
    require_designer(user)
    locked = {
        v.pk: v
        for v in ConfigVersion.objects.select_for_update()
        .filter(status__in=[DRAFT, PUBLISHED])
        .order_by("pk")
    }
    current = locked.get(draft.pk)
    if current is None or current.status != DRAFT:
        raise NoOpenDraft()
    if current.revision != revision:
        raise DraftConflict()
    if not current.roles.filter(is_active=True, policy_grants__policy=Policy.DESIGNER).exists():
        raise InvalidChange(
            "No active role in this draft holds the Designer policy: publishing it would lock everyone out of the "
            "Designer. Grant the policy to a role first."
        )
    previous = next((v for v in locked.values() if v.status == PUBLISHED), None)
    summary = change_summary(current, previous)
    if previous is not None:
        previous.status = ARCHIVED
        previous.save(update_fields=["status"])
    current.status = PUBLISHED
    current.published_at = timezone.now()
    current.author = user
    current.change_summary = summary.text
    current.revision = F("revision") + 1
    current.save(update_fields=["status", "published_at", "author", "change_summary", "revision"])
    current.refresh_from_db(fields=["revision"])
    audit.record(
        actor=user,
        action=audit.Action.CONFIG_PUBLISHED,
        request=request,
        obj=current,
        detail={
            "version": current.number,
            "previous_version": previous.number if previous else None,
            "changes": [c.text for c in summary.changes],
        },
    )
    return current
