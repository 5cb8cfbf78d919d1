"""The Inbox page and its partials (namespace ``careportal``, under ``/inbox/``)."""

from django.urls import path

from .views import inbox, notes

urlpatterns = [
    path("", inbox.inbox, name="inbox"),
    path("new/", inbox.communication_new, name="communication_new"),
    path("c/<int:pk>/", inbox.communication, name="communication"),
    path("c/<int:pk>/row/", inbox.communication_row, name="communication_row"),
    path("c/<int:pk>/header/", inbox.communication_header, name="communication_header"),
    path("c/<int:pk>/messages/", inbox.communication_messages, name="communication_messages"),
    path("c/<int:pk>/reply/", inbox.communication_reply, name="communication_reply"),
    path("c/<int:pk>/status/", inbox.communication_status, name="communication_status"),
    path("c/<int:pk>/assign/", inbox.communication_assign, name="communication_assign"),
    path("c/<int:pk>/link/", inbox.communication_link, name="communication_link"),
    path("c/<int:pk>/note/", notes.communication_note, name="communication_note"),
    path("c/<int:pk>/mentions/", notes.mention_options, name="mention_options"),
    path("c/<int:pk>/templates/<int:template_pk>/", inbox.template_fill, name="template_fill"),
    path(
        "c/<int:pk>/attachments/<int:attachment_pk>/", inbox.attachment_download, name="attachment_download"
    ),
    # Folder routes last: "c/12/" would also match <slug>/<slug>/.
    path("<slug:inbox>/<slug:folder>/", inbox.inbox_folder, name="inbox_folder"),
    path("<slug:inbox>/<slug:folder>/rows/", inbox.inbox_rows, name="inbox_rows"),
    path("<slug:inbox>/<slug:folder>/counts/", inbox.inbox_counts, name="inbox_counts"),
]
