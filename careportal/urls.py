from django.urls import include, path

from .views import shell

app_name = "careportal"

urlpatterns = [
    path("", shell.home, name="home"),
    path("inbox/", include("careportal.urls_inbox")),
    path("patients/", include("careportal.urls_patients")),
]
