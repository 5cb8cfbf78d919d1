"""Admin Portal pages, mounted at ``/admin-portal/`` (namespace ``adminportal``)."""

from django.urls import path

from . import integrations, views

app_name = "adminportal"

urlpatterns = [
    path("", views.home, name="home"),
    path("users/", views.users, name="users"),
    path("users/new/", views.user_new, name="user_new"),
    path("users/<int:pk>/", views.user_detail, name="user_detail"),
    path("users/<int:pk>/deactivate/", views.user_deactivate, name="user_deactivate"),
    path("users/<int:pk>/deactivated/", views.user_deactivated, name="user_deactivated"),
    path("users/<int:pk>/reactivate/", views.user_reactivate, name="user_reactivate"),
    path("users/<int:pk>/invite/", views.user_invite, name="user_invite"),
    path("users/<int:pk>/grants/", views.grant_add, name="grant_add"),
    path("users/<int:pk>/grants/search/", views.grant_search, name="grant_search"),
    path("users/<int:pk>/grants/<int:patient_pk>/remove/", views.grant_remove, name="grant_remove"),
    path("settings/", views.settings_page, name="settings"),
    path("settings/<slug:key>/", views.setting_update, name="setting_update"),
    path("lines/", views.lines, name="lines"),
    path("lines/<int:pk>/", views.line_edit, name="line_edit"),
    path("lines/<int:pk>/senders/", views.line_sender_add, name="line_sender_add"),
    path("lines/<int:pk>/senders/<int:user_pk>/remove/", views.line_sender_remove, name="line_sender_remove"),
    path("addresses/", views.addresses, name="addresses"),
    path("addresses/<int:pk>/", views.address_edit, name="address_edit"),
    path("audit/", views.audit_log, name="audit"),
    path("audit/export.csv", views.audit_export, name="audit_export"),
    path("ingestion/", views.ingestion, name="ingestion"),
    path("integrations/", integrations.integrations, name="integrations"),
    path("integrations/tokens/", integrations.token_create, name="token_create"),
    path("integrations/tokens/<int:pk>/revoke/", integrations.token_revoke, name="token_revoke"),
    path("integrations/webhooks/", integrations.webhook_create, name="webhook_create"),
    path("integrations/webhooks/<int:pk>/", integrations.webhook_detail, name="webhook_detail"),
    path("integrations/webhooks/<int:pk>/resume/", integrations.webhook_resume, name="webhook_resume"),
    path("integrations/webhooks/<int:pk>/toggle/", integrations.webhook_toggle, name="webhook_toggle"),
    path("ingestion/<int:pk>/reprocess/", views.ingestion_reprocess, name="ingestion_reprocess"),
    # Public: a new user sets their password from the emailed link.
    path("invite/<uidb64>/<token>/", views.InviteAcceptView.as_view(), name="invite_accept"),
    path("invite/done/", views.invite_done, name="invite_done"),
]
