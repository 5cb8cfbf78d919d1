from django.apps import AppConfig


class CarePortalConfig(AppConfig):
    name = "careportal"
    verbose_name = "Care Portal"
