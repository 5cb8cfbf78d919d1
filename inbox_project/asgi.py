"""ASGI entry point: HTTP through Django, WebSockets (careportal.routing) through Channels."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inbox_project.settings")
django.setup(set_prefix=False)  # what django.core.asgi.get_asgi_application() does first

from inbox_project.handlers import SyncChainASGIHandler  # noqa: E402

django_asgi_app = SyncChainASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from careportal.routing import websocket_urlpatterns  # noqa: E402
from inbox_project.embedded import schedule_smtp  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# `make run` only (INBOX_EMBEDDED_SMTP=1): the SMTP receiver on this process's event loop (inbox_project.embedded).
schedule_smtp()
