from django.urls import path

from .views import shell

urlpatterns = [
    path("", shell.patient_list, name="patients"),
]
