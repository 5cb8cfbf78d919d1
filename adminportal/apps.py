from django.apps import AppConfig


class AdminPortalConfig(AppConfig):
    name = "adminportal"
    verbose_name = "Admin Portal"

    def ready(self):
        from . import signals  # noqa: F401  (sign-in/out audit glue)
