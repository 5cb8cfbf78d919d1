"""The project package as an app, only so the sign-in lockout's signal receiver is connected at start-up."""

from django.apps import AppConfig


class ProjectSecurityConfig(AppConfig):
    name = "inbox_project"
    verbose_name = "Security"

    def ready(self):
        from . import security  # noqa: F401  (connects the lockout audit receiver)
