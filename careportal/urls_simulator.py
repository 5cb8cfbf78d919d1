"""The demo patient simulator (namespace ``simulator``, under ``/demo/``): 404 unless demo features are on."""

from django.urls import path

from .views import simulator

app_name = "simulator"

urlpatterns = [
    path("patient/", simulator.page, name="page"),
    path("patient/threads/", simulator.threads, name="threads"),
    path("patient/sms/", simulator.send_sms, name="sms"),
    path("patient/email/", simulator.send_email, name="email"),
    path("patient/chat/", simulator.open_chat, name="chat"),
]
