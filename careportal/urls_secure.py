"""The patient-facing secure message page (namespace ``secure``, under ``/secure/``). Not login-protected: every
URL carries the signed link, and reading needs a session verified with a one-time code."""

from django.urls import path

from .views import secure

app_name = "secure"

urlpatterns = [
    path("<str:token>/", secure.start, name="start"),
    path("<str:token>/code/", secure.send_code, name="send_code"),
    path("<str:token>/verify/", secure.verify, name="verify"),
    path("<str:token>/messages/", secure.thread, name="thread"),
    path("<str:token>/reply/", secure.reply, name="reply"),
    path("<str:token>/attachments/<int:attachment_pk>/", secure.attachment, name="attachment"),
    path("<str:token>/sign-out/", secure.sign_out, name="sign_out"),
]
