"""WebSocket routes of the Care Portal: every portal tab's live updates, and the patient's live chat."""

from django.urls import path

from .consumers import PortalConsumer
from .consumers_chat import PatientChatConsumer

websocket_urlpatterns: list = [
    path("ws/portal/", PortalConsumer.as_asgi()),  # every Care Portal tab: live partials, presence
    path("ws/chat/<str:token>/", PatientChatConsumer.as_asgi()),  # the patient's live chat page
]
