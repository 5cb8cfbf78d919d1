"""Framework glue: sign-in, sign-out and failed sign-in become audit events."""

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from inbox.audit import Action, record


@receiver(user_logged_in)
def audit_sign_in(sender, request, user, **kwargs):
    record(actor=user, action=Action.SIGN_IN, request=request)


@receiver(user_logged_out)
def audit_sign_out(sender, request, user, **kwargs):
    if user is not None:
        record(actor=user, action=Action.SIGN_OUT, request=request)


@receiver(user_login_failed)
def audit_sign_in_failed(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))[:150]
    record(
        actor=None,
        actor_label=username,
        action=Action.SIGN_IN_FAILED,
        request=request,
        detail={"username": username},
    )
