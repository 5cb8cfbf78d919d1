"""WebSocket routes of the Care Portal (the real-time consumers arrive with the real-time issue)."""

from django.urls import path

from .consumers import PortalConsumer
from .consumers_chat import PatientChatConsumer

websocket_urlpatterns: list = [
    path(
        "ws/portal/", PortalConsumer.as_asgi()
    ),  # every Care Portal tab: live rows, counts, conversation, presence
    path("ws/chat/<str:token>/", PatientChatConsumer.as_asgi()),  # the patient's live chat page
]
