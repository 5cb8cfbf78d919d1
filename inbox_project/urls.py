"""Top-level URLs: the Care Portal, sign-in, health endpoints and Django admin."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from adminportal import idle

from . import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            template_name="registration/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/session/", idle.session_status, name="session_status"),
    path("admin/", admin.site.urls),
    path("hooks/", include("inbox.urls")),
    path("api/", include("inbox.api.urls")),
    path("designer/", include("designer.urls")),
    path("admin-portal/", include("adminportal.urls")),
    path("secure/", include("careportal.urls_secure")),
    path("chat/", include("careportal.urls_chat")),
    path("demo/", include("careportal.urls_simulator")),
    path("", include("careportal.urls")),
]
