from django.urls import path

from .views import patients

urlpatterns = [
    path("", patients.patient_list, name="patients"),
    path("<int:pk>/", patients.patient_detail, name="patient_detail"),
    path("<int:pk>/panel/", patients.patient_panel, name="patient_panel"),
    path("<int:pk>/edit/", patients.patient_edit, name="patient_edit"),
    path("<int:pk>/communications/", patients.patient_communications, name="patient_communications"),
    path("<int:pk>/encounters/<int:encounter_pk>/", patients.encounter_detail, name="encounter_detail"),
]
