"""The Care Portal home page. Views stay thin: parse input, call a selector or service, pick a template.
The Inbox lives in ``careportal.views.inbox``, patients in ``careportal.views.patients``."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from designer.models import MenuItem
from designer.selectors import role_access
from inbox.folders import Folder
from inbox.selectors import FolderFilters, folder_communications

from ..access import patients_visible_to


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
            "show_simulator": settings.DEMO_ENABLED,  # the demo's patient simulator (/demo/patient/)
        },
    )
