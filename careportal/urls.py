from django.urls import path

from . import views

app_name = "careportal"

urlpatterns = [
    path("", views.home, name="home"),
    path("inbox/", views.inbox, name="inbox"),
    path("inbox/<slug:inbox>/<slug:folder>/", views.inbox_folder, name="inbox_folder"),
    path("patients/", views.patient_list, name="patients"),
]
