"""Template tags of the Care Portal's WebSocket: where it is, and how often the page says it is still there."""

from django import template
from django.conf import settings

register = template.Library()

SOCKET_PATH = "/ws/portal/"


@register.simple_tag(takes_context=True)
def live_socket_path(context) -> str:
    """The socket path for a signed-in user on a page served by the ASGI server (which also serves the socket);
    empty otherwise — a page from a WSGI server (``inbox_project.wsgi``, pytest-django's live server) has no socket
    to connect to, and works as plain HTTP."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if request is None or not hasattr(request, "scope") or not getattr(user, "is_authenticated", False):
        return ""
    return SOCKET_PATH


@register.simple_tag
def live_heartbeat_seconds() -> int:
    return int(getattr(settings, "LIVE_HEARTBEAT_SECONDS", 10))
