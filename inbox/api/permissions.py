"""Who may use the Inbox API: a signed-in (or token-bearing) user whose published role holds Inbox API."""

from rest_framework.permissions import BasePermission

from designer.models import Policy
from designer.selectors import has_policy


class HoldsInboxApi(BasePermission):
    """Anonymous → 401 (DRF answers ``NotAuthenticated``); authenticated without the policy → 403. Which patients and
    communications the user then sees is the one access rule, applied by the selectors and services."""

    message = "Your role does not hold the Inbox API policy."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return has_policy(user, Policy.INBOX_API)
