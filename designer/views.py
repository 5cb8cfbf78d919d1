"""Designer pages: the version overview and history, the open draft (roles, menus, policies, message templates and
its change summary), publish, discard and restore. Only users whose published role holds the Designer policy."""

from functools import wraps
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from careportal.models import Patient

from . import services
from .forms import NewRoleForm, PreviewForm, RevisionForm, RoleForm, TemplateForm
from .models import ConfigVersion, MenuItem, MessageTemplate, Policy, Role, TemplateChannel
from .placeholders import PLACEHOLDERS, fill, unknown_placeholders
from .selectors import published_version
from .services import DesignerError, DraftConflict, InvalidChange, NoOpenDraft

PLACEHOLDER_HELP = {
    "patient.first_name": "Patient's first name",
    "patient.last_name": "Patient's last name",
    "patient.preferred_name": "Preferred name, or first name",
    "patient.full_name": "Preferred (or first) and last name",
    "user.first_name": "Your first name",
    "user.last_name": "Your last name",
    "user.full_name": "Your full name",
    "user.title": "Your title, e.g. RN",
}


def designer_view(*methods: str):
    """Signed in (else the sign-in page), the allowed methods (else 405), the Designer policy (else 403)."""

    def decorate(view):
        @wraps(view)
        def checked(request, *args, **kwargs):
            services.require_designer(request.user)
            return view(request, *args, **kwargs)

        return login_required(require_http_methods(list(methods))(checked))

    return decorate


def _render(request, template: str, context: dict, status: int = 200):
    """Render in the viewer's time zone, with the Designer highlighted in the sidebar."""
    try:
        zone = ZoneInfo(request.user.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    with timezone.override(zone):
        return render(request, template, {"active_nav": "designer", **context}, status=status)


def _open_draft_or_redirect(request) -> ConfigVersion | None:
    draft = services.open_draft_version()
    if draft is None:
        messages.info(request, NoOpenDraft.message)
    return draft


def _refusal(request, error: DesignerError, form=None) -> int:
    """Put a refused change on the page: a field error when it names a field, else a banner. Returns the status:
    409 when the draft changed or closed underneath the form, else 200 (the form again, with its errors)."""
    if isinstance(error, InvalidChange) and error.field and form is not None and error.field in form.fields:
        form.add_error(error.field, error.message)
        return 200
    messages.error(request, error.message)
    return 409 if isinstance(error, DraftConflict | NoOpenDraft) else 200


# --- Overview, history and versions ------------------------------------------------------------------------------


HISTORY_LINES = 2
HISTORY_LENGTH = 100


@designer_view("GET")
def home(request):
    draft = services.open_draft_version()
    published = published_version()
    history = []
    for version in services.version_history()[:HISTORY_LENGTH]:
        lines = [line for line in version.change_summary.splitlines() if line]
        history.append(
            {"version": version, "lines": lines[:HISTORY_LINES], "more": max(len(lines) - HISTORY_LINES, 0)}
        )
    return _render(
        request,
        "designer/home.html",
        {
            "draft": draft,
            "draft_summary": services.change_summary(draft, published) if draft else None,
            "published": published,
            "published_counts": _counts(published),
            "history": history,
        },
    )


def _role_rows(roles, published_keys: set[str] | None = None) -> list[dict]:
    """A role with its menu as on/off items in sidebar order and its policies' labels."""
    rows = []
    for role in roles:
        menu = {m.item for m in role.menu_items.all()}
        policies = {g.policy for g in role.policy_grants.all()}
        rows.append(
            {
                "role": role,
                "menu": [{"value": i.value, "label": i.label, "on": i.value in menu} for i in MenuItem],
                "policies": [p.label for p in Policy if p.value in policies],
                "is_new": published_keys is not None and role.key not in published_keys,
            }
        )
    return rows


def _counts(version: ConfigVersion | None) -> dict | None:
    if version is None:
        return None
    return {"roles": version.roles.count(), "templates": version.templates.count()}


@designer_view("GET")
def version_detail(request, number: int):
    version = ConfigVersion.objects.select_related("author").filter(number=number).first()
    if version is None:
        raise Http404("No such version.")
    return _render(
        request,
        "designer/version.html",
        {
            "version": version,
            "role_rows": _role_rows(services.roles_of(version)),
            "templates": services.templates_of(version),
            "draft": services.open_draft_version(),
            "summary_lines": [line for line in version.change_summary.splitlines() if line],
        },
    )


@designer_view("POST")
def version_restore(request, number: int):
    version = ConfigVersion.objects.filter(number=number).first()
    if version is None:
        raise Http404("No such version.")
    try:
        draft = services.restore_as_draft(user=request.user, version=version)
    except DesignerError as error:
        messages.error(request, error.message)
        return redirect("designer:version", number=number)
    messages.success(
        request, f"Version {version.number} restored as draft v{draft.number}. Publish it to use it."
    )
    return redirect("designer:draft")


# --- The draft ---------------------------------------------------------------------------------------------------


@designer_view("POST")
def draft_open(request):
    draft, created = services.open_draft(user=request.user)
    if created:
        messages.success(request, f"Draft v{draft.number} opened: a copy of the published version.")
    else:
        messages.info(request, f"Draft v{draft.number} is already open; carry on there.")
    return redirect("designer:draft")


@designer_view("GET")
def draft(request):
    draft = _open_draft_or_redirect(request)
    if draft is None:
        return redirect("designer:home")
    return _render_draft(request, draft)


def _render_draft(request, draft: ConfigVersion, status: int = 200):
    published_keys = services.published_role_keys()
    return _render(
        request,
        "designer/draft.html",
        {
            "draft": draft,
            "role_rows": _role_rows(services.roles_of(draft), published_keys),
            "templates": services.templates_of(draft),
            "summary": services.change_summary(draft),
        },
        status=status,
    )


def _revision(request) -> int | None:
    form = RevisionForm(request.POST)
    return form.cleaned_data["revision"] if form.is_valid() else None


@designer_view("POST")
def draft_publish(request):
    draft = _open_draft_or_redirect(request)
    if draft is None:
        return redirect("designer:home")
    revision = _revision(request)
    if revision is None:
        messages.error(request, "The publish form was incomplete; nothing was published.")
        return _render_draft(request, draft, status=400)
    try:
        published = services.publish_draft(user=request.user, draft=draft, revision=revision, request=request)
    except DesignerError as error:
        status = _refusal(request, error)
        draft = services.open_draft_version()
        return _render_draft(request, draft, status=status) if draft else redirect("designer:home")
    messages.success(
        request,
        f"Published v{published.number}. Care Portal users get the new configuration on their next page load.",
    )
    return redirect("designer:home")


@designer_view("POST")
def draft_discard(request):
    draft = _open_draft_or_redirect(request)
    if draft is None:
        return redirect("designer:home")
    revision = _revision(request)
    if revision is None:
        messages.error(request, "The discard form was incomplete; nothing was discarded.")
        return _render_draft(request, draft, status=400)
    try:
        services.discard_draft(user=request.user, draft=draft, revision=revision)
    except DesignerError as error:
        status = _refusal(request, error)
        draft = services.open_draft_version()
        return _render_draft(request, draft, status=status) if draft else redirect("designer:home")
    messages.success(request, f"Draft v{draft.number} discarded. The published version is unchanged.")
    return redirect("designer:home")


# --- Roles -------------------------------------------------------------------------------------------------------


@designer_view("GET", "POST")
def role_new(request):
    draft = _open_draft_or_redirect(request)
    if draft is None:
        return redirect("designer:home")
    status = 200
    if request.method == "POST":
        form = NewRoleForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                role = services.create_role(
                    user=request.user,
                    draft=draft,
                    revision=data["revision"],
                    name=data["name"],
                    key=data["key"],
                )
            except DesignerError as error:
                status = _refusal(request, error, form)
            else:
                messages.success(request, f"Added role {role.name}. Choose its menu items and policies.")
                return redirect("designer:role_edit", key=role.key)
    else:
        form = NewRoleForm(initial={"revision": draft.revision})
    return _render(request, "designer/role_new.html", {"draft": draft, "form": form}, status=status)


@designer_view("GET", "POST")
def role_edit(request, key: str):
    draft = _open_draft_or_redirect(request)
    if draft is None:
        return redirect("designer:home")
    try:
        role = services.draft_role(draft, key)
    except Role.DoesNotExist:
        raise Http404("The draft has no such role.") from None
    status = 200
    if request.method == "POST":
        form = RoleForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.update_role(
                    user=request.user,
                    draft=draft,
                    revision=data["revision"],
                    key=key,
                    name=data["name"],
                    is_active=data["is_active"],
                    menu=set(data["menu"]),
                    policies=set(data["policies"]),
                )
            except DesignerError as error:
                status = _refusal(request, error, form)
            else:
                messages.success(request, f"Saved role {data['name']} in draft v{draft.number}.")
                return redirect("designer:draft")
    else:
        form = RoleForm(
            initial={
                "revision": draft.revision,
                "name": role.name,
                "is_active": role.is_active,
                "menu": [m.item for m in role.menu_items.all()],
                "policies": [g.policy for g in role.policy_grants.all()],
            }
        )
    return _render(
        request,
        "designer/role_edit.html",
        {
            "draft": draft,
            "role": role,
            "form": form,
            "is_new_role": role.key not in services.published_role_keys(),
        },
        status=status,
    )


@designer_view("POST")
def role_remove(request, key: str):
    draft = _open_draft_or_redirect(request)
    if draft is None:
        return redirect("designer:home")
    revision = _revision(request)
    try:
        if revision is None:
            raise InvalidChange("The remove form was incomplete; nothing was removed.")
        services.remove_role(user=request.user, draft=draft, revision=revision, key=key)
    except DesignerError as error:
        messages.error(request, error.message)
        return (
            redirect("designer:role_edit", key=key)
            if draft.roles.filter(key=key).exists()
            else redirect("designer:draft")
        )
    messages.success(request, "Role removed from the draft.")
    return redirect("designer:draft")


# --- Message templates -------------------------------------------------------------------------------------------


def sample_patient() -> Patient:
    """A fictional patient for the live preview: a designer may see no patients, and needs none to write one."""
    return Patient(first_name="Maria", last_name="Lopez", preferred_name="", mrn="SAMPLE")


def _preview(user, *, channel: str, subject: str, body: str) -> dict:
    patient = sample_patient()
    return {
        "channel": channel,
        "shows_subject": channel != TemplateChannel.SMS,
        "subject": fill(subject, patient=patient, user=user),
        "body": fill(body, patient=patient, user=user),
        "unknown": [
            name if name.startswith("{{") else f"{{{{ {name} }}}}"
            for name in unknown_placeholders(f"{subject}\n{body}")
        ],
        "sample_patient": patient,
    }


def _template_context(request, draft, form, template=None) -> dict:
    values = {name: form[name].value() or "" for name in ("channel", "subject", "body")}
    return {
        "draft": draft,
        "template": template,
        "form": form,
        "preview": _preview(request.user, **values),
        "placeholders": [(name, PLACEHOLDER_HELP.get(name, "")) for name in PLACEHOLDERS],
    }


def _save_template(request, draft, form, key: str | None):
    """Shared POST handling of the new and edit template pages: (response, status)."""
    if not form.is_valid():
        return None, 200
    data = form.cleaned_data
    try:
        template = services.save_template(
            user=request.user,
            draft=draft,
            revision=data["revision"],
            key=key,
            name=data["name"],
            channel=data["channel"],
            subject=data["subject"],
            body=data["body"],
        )
    except DesignerError as error:
        return None, _refusal(request, error, form)
    messages.success(request, f"Saved template {template.name} in draft v{draft.number}.")
    return redirect("designer:draft"), 200


@designer_view("GET", "POST")
def template_new(request):
    draft = _open_draft_or_redirect(request)
    if draft is None:
        return redirect("designer:home")
    status = 200
    if request.method == "POST":
        form = TemplateForm(request.POST)
        response, status = _save_template(request, draft, form, key=None)
        if response is not None:
            return response
    else:
        form = TemplateForm(initial={"revision": draft.revision, "channel": TemplateChannel.ANY})
    return _render(
        request, "designer/template_edit.html", _template_context(request, draft, form), status=status
    )


@designer_view("GET", "POST")
def template_edit(request, key: str):
    draft = _open_draft_or_redirect(request)
    if draft is None:
        return redirect("designer:home")
    try:
        template = services.draft_template(draft, key)
    except MessageTemplate.DoesNotExist:
        raise Http404("The draft has no such template.") from None
    status = 200
    if request.method == "POST":
        form = TemplateForm(request.POST)
        response, status = _save_template(request, draft, form, key=key)
        if response is not None:
            return response
    else:
        form = TemplateForm(
            initial={
                "revision": draft.revision,
                "name": template.name,
                "channel": template.channel,
                "subject": template.subject,
                "body": template.body,
            }
        )
    return _render(
        request,
        "designer/template_edit.html",
        _template_context(request, draft, form, template),
        status=status,
    )


@designer_view("POST")
def template_preview(request):
    """The live preview (HTMX): the editor's text filled from the sample patient and the designer."""
    form = PreviewForm(request.POST)
    form.is_valid()
    data = {name: form.cleaned_data.get(name, "") for name in ("channel", "subject", "body")}
    return _render(request, "designer/_template_preview.html", {"preview": _preview(request.user, **data)})


@designer_view("POST")
def template_remove(request, key: str):
    draft = _open_draft_or_redirect(request)
    if draft is None:
        return redirect("designer:home")
    revision = _revision(request)
    try:
        if revision is None:
            raise InvalidChange("The remove form was incomplete; nothing was removed.")
        services.remove_template(user=request.user, draft=draft, revision=revision, key=key)
    except DesignerError as error:
        messages.error(request, error.message)
        if draft.templates.filter(key=key).exists():
            return redirect("designer:template_edit", key=key)
        return redirect("designer:draft")
    messages.success(request, "Template removed from the draft.")
    return redirect("designer:draft")
