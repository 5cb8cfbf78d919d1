"""Drop the cached published roles (``designer.selectors._published_roles``) whenever configuration rows change:
after the transaction commits, so no process caches the state a publish is replacing."""

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .selectors import forget_published_roles

CONFIGURATION = ("designer.ConfigVersion", "designer.Role", "designer.RoleMenuItem", "designer.PolicyGrant")


def _forget(sender, **kwargs):
    forget_published_roles()  # at once (this transaction's own later reads) …
    transaction.on_commit(
        forget_published_roles
    )  # … and after commit (reads that cached the old state meanwhile)


for model in CONFIGURATION:
    receiver(post_save, sender=model, dispatch_uid=f"forget-roles-save-{model}")(_forget)
    receiver(post_delete, sender=model, dispatch_uid=f"forget-roles-delete-{model}")(_forget)
