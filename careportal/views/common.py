"""Checks shared by every Care Portal view module."""

from django.http import Http404

from designer.models import MenuItem
from designer.selectors import role_access


def require_menu(user, item: MenuItem) -> None:
    """A page behind a sidebar item exists for a user only when their published role menu holds it.

    A missing item is a 404, not a 403: the page is simply not part of that role's portal.
    """
    if item not in role_access(user).menu:
        raise Http404("This page is not in your role's menu.")
