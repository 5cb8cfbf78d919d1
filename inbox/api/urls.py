"""``/api/v1/`` (namespace ``api``) and the OpenAPI schema and Swagger UI at ``/api/schema/`` and ``/api/docs/``."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import IsAuthenticated

from . import schema, views  # noqa: F401 (schema registers the OpenAPI auth extensions)

app_name = "api"

v1 = [
    path("inboxes/", views.InboxesView.as_view(), name="inboxes"),
    path(
        "folders/<str:inbox>/<str:folder>/communications/",
        views.FolderCommunicationsView.as_view(),
        name="folder",
    ),
    path("communications/<int:pk>/", views.CommunicationView.as_view(), name="communication"),
    path(
        "communications/<int:pk>/attachments/<int:attachment_id>/",
        views.AttachmentView.as_view(),
        name="attachment",
    ),
    path("communications/<int:pk>/send/", views.SendView.as_view(), name="send"),
    path("communications/<int:pk>/status/", views.StatusView.as_view(), name="status"),
    path("communications/<int:pk>/assign/", views.AssignView.as_view(), name="assign"),
    path("communications/<int:pk>/assignees/", views.AssigneesView.as_view(), name="assignees"),
    path("communications/<int:pk>/link/", views.LinkView.as_view(), name="link"),
    path("patients/", views.PatientsView.as_view(), name="patients"),
    path("sending-lines/", views.SendingLinesView.as_view(), name="sending_lines"),
    path("templates/", views.TemplatesView.as_view(), name="templates"),
    # Last: unknown addresses are 404 problems; "[\s\S]", not ".", so a path with an encoded newline is one too.
    re_path(r"^[\s\S]*$", views.NotFoundView.as_view(), name="not_found"),
]

urlpatterns = [
    path("v1/", include(v1)),
    # The reference holds no patient data: any signed-in user (or token) may read it; anonymous → 401.
    path("schema/", SpectacularAPIView.as_view(permission_classes=[IsAuthenticated]), name="schema"),
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="api:schema",
            permission_classes=[IsAuthenticated],
            template_name="adminportal/integrations/swagger_ui.html",  # no inline style (Content-Security-Policy)
        ),
        name="docs",
    ),
]
