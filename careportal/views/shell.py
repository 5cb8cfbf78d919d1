"""Care Portal pages. Views stay thin: parse input, call a selector or service, pick a template."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from designer.models import MenuItem
from designer.selectors import role_access
from inbox.folders import Folder
from inbox.selectors import FolderFilters, folder_communications, folder_counts, folders_for

from ..access import patients_visible_to


def _require_menu(user, item: MenuItem) -> None:
    """A page behind a sidebar item exists for a user only when their published role menu holds it."""
    if item not in role_access(user).menu:
        raise Http404("This page is not in your role's menu.")


@login_required
@require_GET
def home(request):
    user = request.user
    access = role_access(user)
    now = timezone.localtime()
    greeting = "morning" if now.hour < 12 else "afternoon" if now.hour < 18 else "evening"
    inbox_summary = None
    if access.has_inbox:
        open_assigned = folder_communications(
            user=user, folder=Folder.ASSIGNED_TO_ME, filters=FolderFilters(statuses=frozenset({"open"}))
        ).count()
        inbox_summary = {"open_assigned": open_assigned}
    patient_count = patients_visible_to(user).count() if MenuItem.PATIENTS in access.menu else None
    return render(
        request,
        "careportal/home.html",
        {
            "active_nav": "home",
            "greeting": greeting,
            "today": now,
            "inbox_summary": inbox_summary,
            "patient_count": patient_count,
        },
    )


@login_required
@require_GET
def inbox(request):
    _require_menu(request.user, MenuItem.INBOX)
    folders = folders_for(request.user)
    return redirect("careportal:inbox_folder", inbox=folders[0].inbox, folder=folders[0].slug)


@login_required
@require_GET
def inbox_folder(request, inbox: str, folder: str):
    _require_menu(request.user, MenuItem.INBOX)
    try:
        current = Folder(f"{inbox}/{folder}")
    except ValueError:
        raise Http404("No such folder.") from None
    allowed = folders_for(request.user)
    if current not in allowed:
        raise Http404("This folder is not available to you.")
    filters = FolderFilters(unassigned_only=request.GET.get("unassigned") == "1", query=request.GET.get("q", "").strip())
    communications = folder_communications(user=request.user, folder=current, filters=filters).select_related(
        "patient", "contact", "sending_line", "assignee"
    )
    counts = folder_counts(user=request.user, filters=filters)
    nav = [{"folder": f, "count": counts[f]} for f in allowed]
    return render(
        request,
        "careportal/inbox/page.html",
        {
            "active_nav": "inbox",
            "current": current,
            "nav": nav,
            "filters": filters,
            "rows": communications[:50],
        },
    )


@login_required
@require_GET
def patient_list(request):
    _require_menu(request.user, MenuItem.PATIENTS)
    query = request.GET.get("q", "").strip()
    patients = patients_visible_to(request.user).order_by("last_name", "first_name", "pk")
    if query:
        patients = patients.filter(
            Q(first_name__icontains=query) | Q(last_name__icontains=query) | Q(mrn__iexact=query)
        )
    page = Paginator(patients, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "careportal/patients/list.html",
        {"active_nav": "patients", "page": page, "query": query},
    )
