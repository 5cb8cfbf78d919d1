"""Designer pages, mounted at ``/designer/`` (namespace ``designer``)."""

from django.urls import path

from . import views

app_name = "designer"

urlpatterns = [
    path("", views.home, name="home"),
    path("versions/<int:number>/", views.version_detail, name="version"),
    path("versions/<int:number>/restore/", views.version_restore, name="version_restore"),
    path("draft/", views.draft, name="draft"),
    path("draft/open/", views.draft_open, name="draft_open"),
    path("draft/publish/", views.draft_publish, name="draft_publish"),
    path("draft/discard/", views.draft_discard, name="draft_discard"),
    # "new-…" routes sit outside roles/<key>/ and templates/<key>/, so no role or template key can shadow them.
    path("draft/new-role/", views.role_new, name="role_new"),
    path("draft/roles/<slug:key>/", views.role_edit, name="role_edit"),
    path("draft/roles/<slug:key>/remove/", views.role_remove, name="role_remove"),
    path("draft/new-template/", views.template_new, name="template_new"),
    path("draft/template-preview/", views.template_preview, name="template_preview"),
    path("draft/templates/<slug:key>/", views.template_edit, name="template_edit"),
    path("draft/templates/<slug:key>/remove/", views.template_remove, name="template_remove"),
]
