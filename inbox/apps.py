from django.apps import AppConfig
from django.db.models.signals import post_migrate


class InboxConfig(AppConfig):
    name = "inbox"
    verbose_name = "Inbox"

    def ready(self):
        from inbox.audit_integrity import protect_audit_log

        # After every migrate (and flush): a rebuilt SQLite table has lost its triggers until this runs again.
        post_migrate.connect(protect_audit_log, sender=self, dispatch_uid="inbox.protect_audit_log")
