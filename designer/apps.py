from django.apps import AppConfig


class DesignerConfig(AppConfig):
    name = "designer"
    verbose_name = "Designer"

    def ready(self):
        from . import signals  # noqa: F401 — connects the receivers
