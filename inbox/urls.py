"""Provider webhooks, mounted under ``/hooks/``."""

from django.urls import path

from . import views

app_name = "hooks"

urlpatterns = [
    path("email/inbound/", views.email_inbound, name="email_inbound"),
    path("sms/twilio/", views.twilio_sms, name="twilio_sms"),
    path("sms/twilio/status/", views.twilio_status, name="twilio_status"),
]
