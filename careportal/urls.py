from django.urls import include, path

from .views import chat, shell

app_name = "careportal"

urlpatterns = [
    path("", shell.home, name="home"),
    path("inbox/", include("careportal.urls_inbox")),
    path("patients/<int:pk>/chat-invite/", chat.chat_invite, name="chat_invite"),
    path("patients/", include("careportal.urls_patients")),
    path("notifications/", include("careportal.urls_notifications")),
]
