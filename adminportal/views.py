"""Admin Portal pages: users (with explicit patient grants), feature settings, sending lines, inbound addresses, the
audit log and ingestion health. Only users whose published role holds the Administrator policy; the invitation
pages are public (the signed link is the credential)."""

from functools import wraps

from django.apps import apps
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.text import capfirst
from django.views.decorators.http import require_GET, require_http_methods

from careportal.models import Patient
from inbox.models import AuditEvent, InboundAddress, RawInbound, SendingLine

from . import services
from .forms import (
    DAYS,
    AuditFilterForm,
    BusinessHoursForm,
    GrantForm,
    IdleTimeoutForm,
    InboundAddressForm,
    InboxNotificationsForm,
    LineSenderForm,
    PatientSearchForm,
    SendingLineForm,
    UserForm,
    line_sender_choices,
)
from .models import FeatureSetting, User
from .services import AdminError, AuditFilters, UserDetails

USERS_PAGE_SIZE = 25
SETTING_FORMS = {
    FeatureSetting.Key.INBOX_NOTIFICATIONS: InboxNotificationsForm,
    FeatureSetting.Key.CHAT_BUSINESS_HOURS: BusinessHoursForm,
    FeatureSetting.Key.SESSION_IDLE_TIMEOUT: IdleTimeoutForm,
}


def admin_view(*methods: str):
    """Signed in (else the sign-in page), the allowed methods (else 405), the Administrator policy (else 403)."""

    def decorate(view):
        @wraps(view)
        def checked(request, *args, **kwargs):
            services.require_administrator(request.user)
            return view(request, *args, **kwargs)

        return login_required(require_http_methods(list(methods))(checked))

    return decorate


def _render(request, template: str, context: dict):
    """Render in the viewer's time zone, with the Admin Portal highlighted in the sidebar."""
    with timezone.override(services.viewer_zone(request.user)):
        return render(request, template, {"active_nav": "adminportal", **context})


def _apply_error(request, error: AdminError, form) -> None:
    if error.field and error.field in form.fields:
        form.add_error(error.field, error.message)
    else:
        form.add_error(None, error.message)


# --- Overview ------------------------------------------------------------------------------------------------


@admin_view("GET")
def home(request):
    health = services.ingestion_health()
    today = timezone.localtime(timezone.now(), services.viewer_zone(request.user)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return _render(
        request,
        "adminportal/home.html",
        {
            "section": "home",
            "active_users": User.objects.filter(is_active=True).count(),
            "inactive_users": User.objects.filter(is_active=False).count(),
            "notifications_on": FeatureSetting.is_on(FeatureSetting.Key.INBOX_NOTIFICATIONS),
            "lines": SendingLine.objects.filter(is_active=True).count(),
            "addresses": InboundAddress.objects.filter(is_active=True).count(),
            "events_today": AuditEvent.objects.filter(at__gte=today).count(),
            "health": health,
        },
    )


# --- Users ---------------------------------------------------------------------------------------------------


def _role_names() -> dict[str, str]:
    return {role.key: role.name for role in services.published_roles()}


@admin_view("GET")
def users(request):
    query = " ".join(request.GET.get("q", "").split())[:100]
    status = request.GET.get("status", "active")
    qs = User.objects.prefetch_related("regions").order_by("first_name", "last_name", "username")
    if status == "active":
        qs = qs.filter(is_active=True)
    elif status == "deactivated":
        qs = qs.filter(is_active=False)
    else:
        status = "all"
    if query:
        q = Q(username__icontains=query) | Q(first_name__icontains=query) | Q(last_name__icontains=query)
        q |= Q(email__icontains=query)
        parts = query.split(" ")
        if len(parts) == 2:
            q |= Q(first_name__iexact=parts[0], last_name__iexact=parts[1])
        qs = qs.filter(q)
    page = Paginator(qs, USERS_PAGE_SIZE).get_page(request.GET.get("page"))
    role_names = _role_names()
    for person in page.object_list:
        person.role_name = role_names.get(person.role, "")
    return _render(
        request,
        "adminportal/users.html",
        {"section": "users", "page": page, "query": query, "status": status},
    )


def _details(data: dict) -> UserDetails:
    return UserDetails(
        first_name=data["first_name"].strip(),
        last_name=data["last_name"].strip(),
        email=data["email"],
        title=data["title"].strip(),
        time_zone=data["time_zone"],
        role=data["role"],
        regions=list(data["regions"]),
        direct_line=data["direct_line"],
        email_alias=data["email_alias"],
    )


@admin_view("GET", "POST")
def user_new(request):
    if request.method == "POST":
        form = UserForm(request.POST)
        if form.is_valid():
            try:
                user = services.create_user(
                    actor=request.user,
                    username=form.cleaned_data["username"],
                    details=_details(form.cleaned_data),
                    password=form.cleaned_data["password"],
                    request=request,
                )
            except AdminError as error:
                _apply_error(request, error, form)
            else:
                if user.has_usable_password():
                    messages.success(request, f"Created {user.full_name}. They can sign in now.")
                else:
                    messages.success(
                        request, f"Created {user.full_name} and emailed an invitation to {user.email}."
                    )
                return redirect("adminportal:user_detail", pk=user.pk)
    else:
        form = UserForm()
    return _render(request, "adminportal/user_new.html", {"section": "users", "form": form})


def _user_context(request, user: User, form) -> dict:
    return {
        "section": "users",
        "subject": user,
        "form": form,
        "granted": services.granted_patients(user),
        "open_count": services.open_assignments(user).count(),
        "role_name": _role_names().get(user.role, ""),
        "invitation_pending": not user.has_usable_password(),
    }


@admin_view("GET", "POST")
def user_detail(request, pk: int):
    user = get_object_or_404(User, pk=pk)
    if request.method == "POST":
        form = UserForm(request.POST, user=user)
        if form.is_valid():
            try:
                changed = services.update_user(
                    actor=request.user, user=user, details=_details(form.cleaned_data), request=request
                )
            except AdminError as error:
                _apply_error(request, error, form)
            else:
                if changed:
                    messages.success(request, f"Saved {user.full_name}.")
                else:
                    messages.info(request, "Nothing changed.")
                return redirect("adminportal:user_detail", pk=user.pk)
    else:
        form = UserForm(
            user=user,
            initial={
                "first_name": user.first_name,
                "last_name": user.last_name,
                "email": user.email,
                "title": user.title,
                "time_zone": user.time_zone,
                "role": user.role,
                "regions": list(user.regions.all()),
                "direct_line": services.current_direct_line(user),
                "email_alias": services.current_email_alias(user),
            },
        )
    return _render(request, "adminportal/user_detail.html", _user_context(request, user, form))


@admin_view("POST")
def user_deactivate(request, pk: int):
    user = get_object_or_404(User, pk=pk)
    try:
        services.deactivate_user(actor=request.user, user=user, request=request)
    except AdminError as error:
        messages.error(request, error.message)
        return redirect("adminportal:user_detail", pk=user.pk)
    return redirect("adminportal:user_deactivated", pk=user.pk)


@admin_view("GET")
def user_deactivated(request, pk: int):
    """The deactivation result: the user's open assignments, each linked, to reassign."""
    user = get_object_or_404(User, pk=pk)
    if user.is_active:
        return redirect("adminportal:user_detail", pk=user.pk)
    return _render(
        request,
        "adminportal/user_deactivated.html",
        {"section": "users", "subject": user, "assignments": services.open_assignments(user)[:200]},
    )


@admin_view("POST")
def user_reactivate(request, pk: int):
    user = get_object_or_404(User, pk=pk)
    try:
        services.reactivate_user(actor=request.user, user=user, request=request)
    except AdminError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Reactivated {user.full_name}. They can sign in again.")
    return redirect("adminportal:user_detail", pk=user.pk)


@admin_view("POST")
def user_invite(request, pk: int):
    user = get_object_or_404(User, pk=pk)
    try:
        services.resend_invitation(actor=request.user, user=user, request=request)
    except AdminError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Emailed a new invitation to {user.email}.")
    return redirect("adminportal:user_detail", pk=user.pk)


@admin_view("GET")
def grant_search(request, pk: int):
    """Patient search for a grant (HTMX partial; a full page without HTMX so the URL works on reload)."""
    user = get_object_or_404(User, pk=pk)
    form = PatientSearchForm(request.GET)
    query = form.cleaned_data["q"] if form.is_valid() else ""
    granted = set(services.granted_patients(user).values_list("pk", flat=True))
    context = {
        "section": "users",
        "subject": user,
        "query": query,
        "results": services.find_patients(query),
        "granted_ids": granted,
    }
    if request.htmx:
        return _render(request, "adminportal/_grant_results.html", context)
    return _render(request, "adminportal/grant_search.html", context)


@admin_view("POST")
def grant_add(request, pk: int):
    user = get_object_or_404(User, pk=pk)
    form = GrantForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors.get("patient", ["Choose a patient."])))
        return redirect("adminportal:user_detail", pk=user.pk)
    patient = form.cleaned_data["patient"]
    if services.grant_patient_access(actor=request.user, user=user, patient=patient, request=request):
        messages.success(request, f"{user.full_name} can now see {patient.full_name} ({patient.mrn}).")
    else:
        messages.info(request, f"{user.full_name} could already see {patient.full_name} through a grant.")
    return redirect(reverse("adminportal:user_detail", args=[user.pk]) + "#patient-access")


@admin_view("POST")
def grant_remove(request, pk: int, patient_pk: int):
    user = get_object_or_404(User, pk=pk)
    patient = get_object_or_404(Patient, pk=patient_pk)
    if services.revoke_patient_access(actor=request.user, user=user, patient=patient, request=request):
        messages.success(request, f"Removed {user.full_name}'s grant to see {patient.full_name}.")
    else:
        messages.info(request, f"{user.full_name} had no grant for {patient.full_name}.")
    return redirect(reverse("adminportal:user_detail", args=[user.pk]) + "#patient-access")


# --- Feature settings ----------------------------------------------------------------------------------------


def _setting_forms(bound: dict | None = None) -> dict:
    """One form per setting, built from the stored (or default) state; ``bound`` replaces one with a bound form."""
    forms = {}
    for key, form_class in SETTING_FORMS.items():
        if bound and key in bound:
            forms[key.value] = bound[key]
            continue
        is_enabled, value = services.feature_state(key)
        initial = {"is_enabled": is_enabled, **value}
        if key == FeatureSetting.Key.CHAT_BUSINESS_HOURS:
            initial.setdefault("time_zone", settings.TIME_ZONE)
        forms[key.value] = form_class(initial=initial, prefix=key.value)
    return forms


def _settings_page(request, forms: dict):
    rows = {row.key: row for row in FeatureSetting.objects.select_related("updated_by")}
    return _render(
        request,
        "adminportal/settings.html",
        {"section": "settings", "forms": forms, "rows": rows, "days": DAYS},
    )


@admin_view("GET")
def settings_page(request):
    return _settings_page(request, _setting_forms())


@admin_view("POST")
def setting_update(request, key: str):
    try:
        setting_key = FeatureSetting.Key(key)
    except ValueError:
        raise Http404("No such setting.") from None
    form = SETTING_FORMS[setting_key](request.POST, prefix=key)
    if not form.is_valid():
        return _settings_page(request, _setting_forms({setting_key: form}))
    changed = services.update_feature_setting(
        actor=request.user,
        key=setting_key,
        is_enabled=form.cleaned_data["is_enabled"],
        value=form.value(),
        request=request,
    )
    if changed:
        messages.success(request, f"Saved {setting_key.label}.")
    else:
        messages.info(request, f"{setting_key.label}: nothing changed.")
    return redirect(reverse("adminportal:settings") + f"#{key}")


# --- Sending lines and inbound addresses ---------------------------------------------------------------------


def _owned_list(request, *, model, form, template: str, section: str):
    items = model.objects.select_related("owner").order_by("-is_active", "label", "pk")
    return _render(request, template, {"section": section, "items": items, "form": form})


@admin_view("GET", "POST")
def lines(request):
    if request.method == "POST":
        form = SendingLineForm(request.POST)
        if form.is_valid():
            try:
                line, _ = services.save_sending_line(
                    actor=request.user, line=None, request=request, **form.cleaned_data
                )
            except AdminError as error:
                _apply_error(request, error, form)
            else:
                messages.success(request, f"Added sending line {line.display_name} ({line.number}).")
                return redirect("adminportal:lines")
        return _owned_list(
            request,
            model=SendingLine,
            form=form,
            template="adminportal/lines.html",
            section="lines",
        )
    return _owned_list(
        request, model=SendingLine, form=SendingLineForm(), template="adminportal/lines.html", section="lines"
    )


@admin_view("GET", "POST")
def line_edit(request, pk: int):
    line = get_object_or_404(SendingLine, pk=pk)
    if request.method == "POST":
        form = SendingLineForm(request.POST)
        if form.is_valid():
            try:
                _, changed = services.save_sending_line(
                    actor=request.user, line=line, request=request, **form.cleaned_data
                )
            except AdminError as error:
                _apply_error(request, error, form)
            else:
                if changed:
                    messages.success(request, "Saved the sending line.")
                else:
                    messages.info(request, "Nothing changed.")
                return redirect("adminportal:lines")
    else:
        form = SendingLineForm(
            initial={
                "number": line.number,
                "label": line.label,
                "is_active": line.is_active,
                "owner": line.owner,
            }
        )
    return _render(request, "adminportal/line_edit.html", _line_context(line, form))


def _line_context(line: SendingLine, form) -> dict:
    senders = list(services.line_senders(line))
    role_names = _role_names()
    choices = line_sender_choices(senders)
    for person in [*senders, *choices]:
        person.role_name = role_names.get(person.role, "")
    return {
        "section": "lines",
        "item": line,
        "form": form,
        "senders": senders,
        "sender_choices": choices,
        "owner_is_sender": line.owner_id in {person.pk for person in senders},
    }


def _senders_url(line: SendingLine) -> str:
    return reverse("adminportal:line_edit", args=[line.pk]) + "#senders"


@admin_view("POST")
def line_sender_add(request, pk: int):
    """Who may send: add a user. The first sender restricts the line to its senders (and its owner)."""
    line = get_object_or_404(SendingLine, pk=pk)
    form = LineSenderForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors.get("user", ["Choose a person."])) + " Nothing changed.")
        return redirect(_senders_url(line))
    user = form.cleaned_data["user"]
    try:
        added = services.add_line_sender(actor=request.user, line=line, user=user, request=request)
    except AdminError as error:
        messages.error(request, f"{error.message} Nothing changed.")
    else:
        if added:
            messages.success(request, f"{user.full_name} may now send from {line.display_name}.")
        else:
            messages.info(request, f"{user.full_name} could already send from {line.display_name}.")
    return redirect(_senders_url(line))


@admin_view("POST")
def line_sender_remove(request, pk: int, user_pk: int):
    line = get_object_or_404(SendingLine, pk=pk)
    user = get_object_or_404(User, pk=user_pk)
    if services.remove_line_sender(actor=request.user, line=line, user=user, request=request):
        if services.line_senders(line).exists():
            messages.success(request, f"{user.full_name} may no longer send from {line.display_name}.")
        else:
            messages.success(
                request,
                f"{user.full_name} may no longer send from {line.display_name}. "
                "It has no senders left, so everyone with Inbox access may use it again.",
            )
    else:
        messages.info(request, f"{user.full_name} was not among the senders of {line.display_name}.")
    return redirect(_senders_url(line))


def _address_kwargs(data: dict) -> dict:
    return {
        "email": data["address"],
        "label": data["label"],
        "is_active": data["is_active"],
        "owner": data["owner"],
    }


@admin_view("GET", "POST")
def addresses(request):
    if request.method == "POST":
        form = InboundAddressForm(request.POST)
        if form.is_valid():
            try:
                address, _ = services.save_inbound_address(
                    actor=request.user, address=None, request=request, **_address_kwargs(form.cleaned_data)
                )
            except AdminError as error:
                _apply_error(request, error, form)
            else:
                messages.success(request, f"Added inbound address {address.address}.")
                return redirect("adminportal:addresses")
        return _owned_list(
            request,
            model=InboundAddress,
            form=form,
            template="adminportal/addresses.html",
            section="addresses",
        )
    return _owned_list(
        request,
        model=InboundAddress,
        form=InboundAddressForm(),
        template="adminportal/addresses.html",
        section="addresses",
    )


@admin_view("GET", "POST")
def address_edit(request, pk: int):
    address = get_object_or_404(InboundAddress, pk=pk)
    if request.method == "POST":
        form = InboundAddressForm(request.POST)
        if form.is_valid():
            try:
                _, changed = services.save_inbound_address(
                    actor=request.user, address=address, request=request, **_address_kwargs(form.cleaned_data)
                )
            except AdminError as error:
                _apply_error(request, error, form)
            else:
                if changed:
                    messages.success(request, "Saved the inbound address.")
                else:
                    messages.info(request, "Nothing changed.")
                return redirect("adminportal:addresses")
    else:
        form = InboundAddressForm(
            initial={
                "address": address.address,
                "label": address.label,
                "is_active": address.is_active,
                "owner": address.owner,
            }
        )
    return _render(
        request,
        "adminportal/address_edit.html",
        {"section": "addresses", "item": address, "form": form},
    )


# --- Audit log -----------------------------------------------------------------------------------------------


def _object_label(object_type: str) -> str:
    """ "inbox.sendingline" → "Sending line" (the model's verbose name), or the label itself for a removed model."""
    if not object_type:
        return ""
    try:
        return capfirst(apps.get_model(object_type)._meta.verbose_name)
    except (LookupError, ValueError):
        return object_type


def _audit_filters(request, form: AuditFilterForm) -> AuditFilters:
    data = form.cleaned_data
    since, until = form.bounds(services.viewer_zone(request.user))
    return AuditFilters(
        actor=data.get("actor"),
        patient=data.get("patient"),
        action=data.get("action") or "",
        since=since,
        until=until,
    )


def _filter_query(request) -> str:
    """The filter part of the query string, for the pager and the CSV link."""
    params = request.GET.copy()
    for name in ("after", "before"):
        params.pop(name, None)
    return params.urlencode()


@admin_view("GET")
def audit_log(request):
    form = AuditFilterForm(request.GET or None)
    if request.GET and not form.is_valid():
        return _render(
            request,
            "adminportal/audit.html",
            {"section": "audit", "form": form, "page": None, "query": _filter_query(request)},
        )
    filters = _audit_filters(request, form) if request.GET else AuditFilters()
    try:
        page = services.audit_page(
            filters, after=request.GET.get("after", ""), before=request.GET.get("before", "")
        )
    except ValueError:
        return HttpResponseBadRequest("That page link is malformed; go back to the newest events.")
    for event in page.rows:
        event.change_label = services.change_label(event)
        event.object_label = _object_label(event.object_type)
    return _render(
        request,
        "adminportal/audit.html",
        {
            "section": "audit",
            "form": form,
            "page": page,
            "filters": filters,
            "query": _filter_query(request),
        },
    )


@admin_view("GET")
def audit_export(request):
    """The filtered audit log as CSV, streamed in keyset batches."""
    form = AuditFilterForm(request.GET or None)
    if request.GET and not form.is_valid():
        errors = "; ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items())
        return HttpResponseBadRequest(f"The filters are not valid, nothing was exported: {errors}")
    filters = _audit_filters(request, form) if request.GET else AuditFilters()
    stream = (
        services.audit_csv_async(filters) if isinstance(request, ASGIRequest) else services.audit_csv(filters)
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(stream, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-log-{stamp}.csv"'
    response["Cache-Control"] = "no-store"
    return response


# --- Ingestion health ----------------------------------------------------------------------------------------


@admin_view("GET")
def ingestion(request):
    return _render(
        request,
        "adminportal/ingestion.html",
        {"section": "ingestion", "health": services.ingestion_health(), "stuck_minutes": 1},
    )


@admin_view("POST")
def ingestion_reprocess(request, pk: int):
    raw = get_object_or_404(RawInbound.objects.defer("raw"), pk=pk)
    try:
        raw = services.reprocess_inbound(actor=request.user, raw=raw, request=request)
    except AdminError as error:
        messages.error(request, error.message)
        return redirect("adminportal:ingestion")
    if raw.processed_at is not None:
        messages.success(request, f"Re-processed {raw}: it is filed now.")
    elif raw.error:
        messages.error(request, f"Re-processed {raw}, and it failed again: {raw.error[:300]}")
    else:
        messages.info(request, f"Queued {raw} for processing again.")
    return redirect("adminportal:ingestion")


# --- Invitations (public: the signed link is the credential) ---------------------------------------------------


class InviteAcceptView(auth_views.PasswordResetConfirmView):
    template_name = "adminportal/invite_accept.html"
    success_url = reverse_lazy("adminportal:invite_done")
    post_reset_login = False


@require_GET
def invite_done(request):
    return render(request, "adminportal/invite_done.html")
