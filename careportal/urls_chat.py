"""The patient-facing live chat page (namespace ``chat``, under ``/chat/``). Not login-protected: every URL carries
the signed link, which is the credential. Its WebSocket is ``/ws/chat/<token>/`` (``careportal.routing``)."""

from django.urls import path

from .views import chat

app_name = "chat"

urlpatterns = [
    path("<str:token>/", chat.page, name="page"),
    path("<str:token>/send/", chat.send, name="send"),
    path("<str:token>/attachments/<int:attachment_pk>/", chat.attachment, name="attachment"),
]
