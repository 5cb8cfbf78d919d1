"""WebSocket routes: the patient's live chat (the Care Portal's own socket arrives with the real-time issue)."""

from django.urls import path

from .consumers_chat import PatientChatConsumer

websocket_urlpatterns: list = [
    path("ws/chat/<str:token>/", PatientChatConsumer.as_asgi()),  # the patient's live chat page
]
