from django.urls import path

from .views import shell

urlpatterns = [
    path("", shell.inbox, name="inbox"),
    path("<slug:inbox>/<slug:folder>/", shell.inbox_folder, name="inbox_folder"),
]
