"""Where the Inbox list is — folder, filters, the open communication — read from and written to the URL, and the
plumbing every Inbox view shares (access to the page, 404 for what a user may not see, HTMX responses)."""

import dataclasses
import functools
import json
from functools import wraps
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import Resolver404, resolve, reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme

from designer.models import MenuItem, MessageTemplate
from inbox.errors import FolderNotAllowed
from inbox.folders import Folder
from inbox.models import Attachment, Communication
from inbox.selectors import FolderFilters, folders_for

from ..forms import filter_query, folder_filters
from ..models import Patient
from .common import require_menu

# Search order when a communication is opened by a link without a folder (notifications, redirects).
DEEP_LINK_FOLDERS = {
    "assigned": [Folder.ASSIGNED_TO_ME],
    "unrecognized": [Folder.CARE_TEAM_UNRECOGNIZED, Folder.ALL_UNRECOGNIZED, Folder.MY_UNRECOGNIZED],
    "linked": [Folder.CARE_TEAM_DIRECTED, Folder.ALL_DIRECTED, Folder.PRIMARY_CONTACT],
}


# --- Where the list is: folder, filters and the open communication, all in the URL ----------------------------


@dataclasses.dataclass(frozen=True)
class ListState:
    folder: Folder
    filters: FolderFilters = dataclasses.field(default_factory=FolderFilters)
    open_id: int | None = None
    # "Search all inboxes" (``?all=1``): the search runs over every folder the user has; ``folder`` is the one it
    # was started from (where "Back" returns). Its rows say which folders they are in.
    everywhere: bool = False

    @functools.cached_property
    def path(self) -> str:
        return reverse("careportal:inbox_folder", args=[self.folder.inbox, self.folder.slug])

    def _with_query(self, base: str, **extra) -> str:
        query = filter_query(self.folder, self.filters, all=1 if self.everywhere else None, **extra)
        return f"{base}?{query}" if query else base

    @property
    def url(self) -> str:
        """This list with its open communication, as the address bar shows it."""
        return self._with_query(self.path, c=self.open_id)

    @functools.cached_property
    def list_url(self) -> str:
        return self._with_query(self.path)

    def open_url(self, pk: int) -> str:
        # Every row of a list asks for this: the filters' query is built once (``list_url``), the id appended last
        # exactly as ``filter_query`` would.
        return f"{self.list_url}{'&' if '?' in self.list_url else '?'}c={int(pk)}"

    @property
    def rows_url(self) -> str:
        return self._with_query(reverse("careportal:inbox_rows", args=[self.folder.inbox, self.folder.slug]))

    def more_url(self, cursor: str) -> str:
        base = reverse("careportal:inbox_rows", args=[self.folder.inbox, self.folder.slug])
        return self._with_query(base, cursor=cursor)

    @property
    def counts_url(self) -> str:
        return self._with_query(
            reverse("careportal:inbox_counts", args=[self.folder.inbox, self.folder.slug])
        )

    @property
    def is_filtered(self) -> bool:
        default = FolderFilters()
        return (
            self.filters.statuses != default.statuses
            or self.filters.channels != default.channels
            or bool(self.filters.query)
            or (self.filters.unassigned_only and self.folder.is_shared)
        )

    @property
    def restore_url(self) -> str:
        """This list with every chip of each group that has none on turned back on (the empty state's link)."""
        filters = self.filters
        if not filters.statuses:
            filters = dataclasses.replace(filters, statuses=FolderFilters().statuses)
        if not filters.channels:
            filters = dataclasses.replace(filters, channels=FolderFilters().channels)
        return dataclasses.replace(self, filters=filters).list_url

    @property
    def searches_everywhere(self) -> bool:
        """The list is a search of all inboxes (a term is typed); without a term it is the folder."""
        return self.everywhere and bool(self.filters.query)

    @property
    def everywhere_url(self) -> str:
        """This search over every folder the user has ("Search all inboxes")."""
        return everywhere(self.folder, self.filters).list_url

    @property
    def folder_url(self) -> str:
        """The folder this search of all inboxes started from, with the same search and filters."""
        return dataclasses.replace(self, everywhere=False, open_id=None).list_url

    def moved_to(self, folder: Folder) -> "ListState":
        return ListState(folder=folder, filters=self.filters, open_id=self.open_id)


def everywhere(folder: Folder, filters: FolderFilters, open_id: int | None = None) -> ListState:
    """A search of all inboxes started from ``folder``: "unassigned only" is a folder's filter, not applied."""
    filters = dataclasses.replace(filters, unassigned_only=False)
    return ListState(folder=folder, filters=filters, open_id=open_id, everywhere=True)


def list_state(folder: Folder, params) -> ListState:
    """The list that query parameters (``?status=…&q=…&all=1&c=…``) describe in ``folder``."""
    filters, open_id = folder_filters(params), int_or_none(params.get("c"))
    if params.get("all") == "1":
        return everywhere(folder, filters, open_id)
    return ListState(folder=folder, filters=filters, open_id=open_id)


def folder_or_404(user, inbox: str, folder: str) -> Folder:
    try:
        current = Folder(f"{inbox}/{folder}")
    except ValueError:
        raise Http404("No such folder.") from None
    if current not in folders_for(user):
        raise Http404("This folder is not available to you.")
    return current


def int_or_none(value) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() else None


def request_state(request, inbox: str, folder: str) -> ListState:
    return list_state(folder_or_404(request.user, inbox, folder), request.GET)


def state_from_url(user, address: str) -> ListState | None:
    """The Inbox list a page address shows (folder, filters, open communication), or ``None`` when the address is
    not a folder page or names a folder the user does not have. Shared by HTMX requests (``HX-Current-URL``) and
    the WebSocket subscription, so both read the page the same way."""
    url = urlsplit(address or "")
    try:
        match = resolve(url.path)
        if match.view_name == "careportal:inbox_folder":
            folder = folder_or_404(user, match.kwargs["inbox"], match.kwargs["folder"])
            return list_state(folder, QueryDict(url.query))
    except (Resolver404, Http404):
        pass
    return None


def current_state(request) -> ListState:
    """The list the browser shows (from ``HX-Current-URL``), or the user's first folder with default filters."""
    state = state_from_url(request.user, request.headers.get("HX-Current-URL", ""))
    return state or ListState(folder=folders_for(request.user)[0])


def deep_link(user, communication: Communication) -> str:
    """A folder page URL that opens ``communication`` (for links that carry no folder)."""
    allowed = folders_for(user)
    if communication.assignee_id == user.pk:
        preference = DEEP_LINK_FOLDERS["assigned"]
    elif communication.is_unrecognized:
        preference = DEEP_LINK_FOLDERS["unrecognized"]
    else:
        preference = DEEP_LINK_FOLDERS["linked"]
    folder = next((f for f in preference if f in allowed), allowed[0])
    return ListState(folder=folder).open_url(communication.pk)


def next_url(request, communication: Communication) -> str:
    """Where a form post without JavaScript returns to: the list it came from, else a deep link."""
    target = request.POST.get("next", "")
    if target.startswith("/inbox/") and url_has_allowed_host_and_scheme(target, allowed_hosts=None):
        return target
    return deep_link(request.user, communication)


# --- Plumbing ---------------------------------------------------------------------------------------------


def inbox_view(view):
    """The role's published menu holds Inbox; an id the user may not see is a 404 exactly like one that does not
    exist; times render in the viewer's time zone; responses that differ for HTMX say so (``Vary``)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        require_menu(request.user, MenuItem.INBOX)
        try:
            with timezone.override(time_zone(request.user)):
                response = view(request, *args, **kwargs)
        except (
            Communication.DoesNotExist,
            Attachment.DoesNotExist,
            MessageTemplate.DoesNotExist,
            Patient.DoesNotExist,
            FolderNotAllowed,
        ):
            raise Http404("Not found.") from None
        patch_vary_headers(response, ("HX-Request",))
        return response

    return wrapper


def time_zone(user):
    try:
        return ZoneInfo(user.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.get_default_timezone()


def is_partial(request) -> bool:
    """An HTMX request gets a partial; a history restore (back button after a cache miss) gets the page."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def changed(
    response: HttpResponse, *communications: Communication, list_changed: bool = False
) -> HttpResponse:
    """Tell the page which communications changed: it refreshes their rows and the folder counts."""
    events = {"inbox:changed": {"ids": [c.pk for c in communications]}}
    if list_changed:
        events["inbox:listchanged"] = {"ids": [c.pk for c in communications]}
    response["HX-Trigger"] = json.dumps(events)
    return response


def unprocessable(request, template: str, context: dict, *, target: str, swap: str) -> HttpResponse:
    """Re-render the partial a refused action came from, with its message (422: nothing changed)."""
    response = render(request, template, context, status=422)
    response["HX-Retarget"] = target
    response["HX-Reswap"] = swap
    return response


def form_error(form) -> str:
    for errors in form.errors.values():
        return str(errors[0])
    return "Please check the form."
